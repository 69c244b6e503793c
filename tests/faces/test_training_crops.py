"""Training crops for distillation: seeded augmented views in the identity layout, faces at the border,
linked identity sets, a real photo's faces, and bad input."""
import logging

import numpy as np
import pytest
from PIL import Image

from mnet_vision.data.identities import IdentityFolderDataset
from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.faces.training_crops import (
    Jitter,
    PhotoFace,
    augmented_view,
    link_identities,
    photo_faces,
    write_training_crops,
)
from tests.helpers.pretrained import faceapi_package


def _face(box=(40, 30, 50, 50), k=0) -> PhotoFace:
    rgb = np.random.default_rng(0).integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    return PhotoFace("photos/party.jpg", k, rgb, box)


def test_views_are_seeded_files_in_the_identity_layout(tmp_path):
    faces = [_face(k=0), _face(box=(100, 60, 40, 40), k=1)]
    assert write_training_crops(faces, tmp_path / "a", variants=3, size=32, progress=False) == 6
    write_training_crops(faces, tmp_path / "b", variants=3, size=32, progress=False)
    dataset = IdentityFolderDataset(tmp_path / "a" / "train")  # what the data module reads
    assert sorted({p.split("/")[-2] for p, _ in dataset.samples}) == ["party_face0", "party_face1"]
    for path, _ in dataset.samples:
        a = np.asarray(Image.open(path))
        assert a.shape == (32, 32, 3)
        np.testing.assert_array_equal(a, np.asarray(Image.open(str(path).replace("/a/", "/b/"))))


def test_no_jitter_cuts_the_box_itself():
    face = _face(box=(40, 30, 64, 64))
    still = Jitter(scale=0, rotate=0, shift=0, flip=0, color=0, hue=0)
    view = augmented_view(face, 64, still, np.random.default_rng(0))
    np.testing.assert_array_equal(view, face.rgb[30:94, 40:104])


def test_a_face_over_the_border_repeats_the_edge_pixels():
    face = _face(box=(-20, 90, 60, 60))  # a quarter of it outside the photo
    view = augmented_view(face, 48, Jitter(), np.random.default_rng(0))
    assert view.shape == (48, 48, 3) and view.dtype == np.uint8


def test_linked_identities_sit_beside_the_real_ones(tmp_path):
    for name in ("id00000", "id00001", "id00002"):
        (tmp_path / "synthetic" / "train" / name).mkdir(parents=True)
    assert link_identities(tmp_path / "synthetic" / "train", tmp_path / "mixed" / "train", "synthetic_", limit=2) == 2
    assert sorted(p.name for p in (tmp_path / "mixed" / "train").iterdir()) == ["synthetic_id00000",
                                                                                "synthetic_id00001"]
    assert link_identities(tmp_path / "synthetic" / "train", tmp_path / "mixed" / "train", "synthetic_") == 3
    with pytest.raises(FileNotFoundError, match="holds no identity folders"):
        link_identities(tmp_path / "nowhere", tmp_path / "mixed" / "train")


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="variants=0 must be >= 1"):
        write_training_crops([_face()], tmp_path, variants=0)


def test_a_real_photos_faces_and_an_unreadable_file(tmp_path, caplog):
    photo = faceapi_package() / "demo" / "sample1.jpg"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    with caplog.at_level(logging.WARNING):
        faces = photo_faces(FacePipeline(describer=None), [photo, broken], progress=False)
    assert [f.identity for f in faces] == ["sample1_face0", "sample1_face1", "sample1_face2"]
    assert all(w > 150 and h > 150 for *_, w, h in (f.box for f in faces))  # ~210 px faces in that photo
    assert "skipped 1 unreadable image(s)" in caplog.text and "broken.jpg" in caplog.text
