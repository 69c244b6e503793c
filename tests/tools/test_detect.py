"""tools/detect.py pretrained=faceapi_ssd: real photos in, faces boxed and written, no training."""
import json
import os
import subprocess
import sys

from tests.helpers.cli import REPO, run_tool
from tests.helpers.pretrained import faceapi_package


def test_pretrained_face_detector_through_the_tool(tmp_path):
    photo = faceapi_package() / "demo" / "sample1.jpg"
    out = run_tool("detect.py", "pretrained=faceapi_ssd", f"input={photo}", f"out={tmp_path / 'faces'}", "score=0.5")
    assert "3 detections in 1 images" in out.stdout
    (entry,) = json.loads((tmp_path / "faces" / "detections.json").read_text())
    assert entry["width"] == 1920 and entry["height"] == 1280
    assert [d["label"] for d in entry["detections"]] == ["face"] * 3
    assert (tmp_path / "faces" / "sample1.jpg.png").stat().st_size > 0


def test_ckpt_or_pretrained_not_both_nor_neither(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args in (["input=x"], ["ckpt=a.ckpt", "pretrained=faceapi_ssd", "input=x"]):
        result = subprocess.run([sys.executable, str(REPO / "tools" / "detect.py"), *args, f"out={tmp_path}"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and "give ckpt=<checkpoint> or pretrained=<name>" in result.stderr
