"""tools/face_fidelity.py as a user runs it: a tiny student distilled from face-api's descriptor (a real
Lightning fit with the live teacher), then measured on a real demo photo's faces (one subprocess: the
tool's imports cost seconds); its default photos, fetched from their packages."""
import json

import pytest
from omegaconf import OmegaConf

from mnet_vision.cli.face_fidelity import packaged_photos
from mnet_vision.config import CONF_DIR, compose
from mnet_vision.training import train
from tests.helpers.cli import run_tool
from tests.helpers.configs import tiny_identity_overrides
from tests.helpers.pretrained import face_recognition_package, faceapi_package

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


def test_the_default_photos_are_the_packaged_ones():
    faceapi_package()  # skip, with the reason, where either package cannot be fetched
    face_recognition_package()
    photos = packaged_photos(OmegaConf.load(CONF_DIR / "face_fidelity.yaml").packaged_photos)
    assert [p.name for p in photos] == [*(f"sample{k}.jpg" for k in range(1, 7)), "biden.jpg", "obama.jpg",
                                        "obama2.jpg", "obama3.jpg"]
    assert all(p.is_file() for p in photos)
    with pytest.raises(SystemExit, match=r"the default photos \(packaged_photos\): .* has no file tests/none.jpg"):
        packaged_photos({"face_recognition_images": ["tests/none.jpg"]})
