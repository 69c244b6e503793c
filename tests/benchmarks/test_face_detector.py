"""The pretrained face detector's speed benchmark: both of our paths timed on the real photos, and
face-api's row saying why when Node cannot run (its own timing is a benchmark, not a test)."""
import math

from mnet_vision.benchmarks import face_detector
from tests.helpers.pretrained import faceapi_package


def test_our_two_paths_are_timed_and_reported(monkeypatch):
    faceapi_package()
    monkeypatch.setenv("PATH", "/nonexistent")  # no node: face-api's row explains itself
    rows = face_detector.compare_face_detectors(repeats=1, warmup=0)
    assert [r["model"] for r in rows] == [face_detector.EAGER, face_detector.FOLDED, "face-api 1.7.15 (Node)"]
    assert all(r["ms_per_photo"] > 0 for r in rows[:2]) and math.isnan(rows[2]["ms_per_photo"])
    assert "not measured: no node, npm" in rows[2]["note"]
    table = face_detector.report(rows, {"repeats": 1, "warmup": 0})
    assert "| mnet_vision faceapi_ssd (BN folded, channels_last) |" in table and "1.00x" in table
