"""tools/face_fidelity.py as a user runs it: a tiny student distilled from face-api's descriptor (a real
Lightning fit with the live teacher), then measured on a real demo photo's faces (one subprocess: the
tool's imports cost seconds)."""
import json

from mnet_vision.config import compose
from mnet_vision.training import train
from tests.helpers.cli import run_tool
from tests.helpers.configs import tiny_identity_overrides
from tests.helpers.pretrained import faceapi_package

DISTILL = ["distill=embedding_l2", "distill/teacher=faceapi", "distill.teacher.normalize=true", "trainer.max_epochs=2",
           "trainer.check_val_every_n_epoch=2"]


def test_a_distilled_student_measured_on_real_faces(tmp_path):
    photo = faceapi_package() / "demo" / "sample1.jpg"
    data = tmp_path / "data"
    student = train(compose(tiny_identity_overrides(data, *DISTILL, "task.embedding_dim=128")), run_dir=tmp_path / "a")
    args = [f"photos=[{photo}]", f"calibration={data}/train/*/*.png", "max_calibration=8", f"out={tmp_path / 'out'}",
            f"picture={tmp_path / 'pairs.png'}"]
    result = run_tool("face_fidelity.py", f"students={{tiny 128:{student['best_checkpoint']}}}", *args)
    assert "3 held-out faces in 1 photos" in result.stdout and "| tiny 128 | 32 |" in result.stdout
    record = json.loads((tmp_path / "out" / "fidelity.json").read_text())
    row = record["rows"][0]
    assert record["faces"] == ["sample1#0", "sample1#1", "sample1#2"] and row["pairs"] == 3
    assert -1 <= row["cosine_min"] <= row["cosine_mean"] <= 1 and set(row["nn"]) == {"1", "5"}
    assert row["train_images"] == 4 * 16  # 2 epochs x 2 steps x 16 images
    assert (tmp_path / "pairs.png").stat().st_size > 1000
    assert record["all_different_agreement"] == 1 - row["teacher_same"] / 3
