import json

import numpy as np
import pytest
from PIL import Image

from mnet_vision.data.synthetic.generate import MARKER
from mnet_vision.data.synthetic.shapes import SHAPES, draw_shape_image, make_shapes_dataset


def test_same_seed_same_images(tmp_path):
    a = make_shapes_dataset(tmp_path / "a", num_classes=3, splits={"train": 2}, image_size=24, seed=5)
    b = make_shapes_dataset(tmp_path / "b", num_classes=3, splits={"train": 2}, image_size=24, seed=5)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 6
    for rel in files:
        assert np.array_equal(np.asarray(Image.open(a / rel)), np.asarray(Image.open(b / rel)))


def test_layout_and_marker(tmp_path):
    root = make_shapes_dataset(tmp_path / "s", num_classes=4, splits={"train": 3, "val": 1}, image_size=16)
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(SHAPES[:4])
    assert len(list((root / "val").rglob("*.png"))) == 4
    assert json.loads((root / MARKER).read_text())["num_classes"] == 4
    # a second call finds the finished set and leaves it alone
    assert make_shapes_dataset(root, num_classes=4, splits={"train": 3, "val": 1}, image_size=16) == root


def test_other_parameters_are_an_error(tmp_path):
    root = make_shapes_dataset(tmp_path / "s", num_classes=2, splits={"train": 1}, image_size=16)
    with pytest.raises(ValueError, match="delete it or point data.root elsewhere"):
        make_shapes_dataset(root, num_classes=3, splits={"train": 1}, image_size=16)


def test_refuses_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="refusing"):
        make_shapes_dataset(tmp_path / "mine", num_classes=2, splits={"train": 1})
    assert (tmp_path / "mine" / "keep.txt").exists()


def test_draw_varies_with_rng():
    a = draw_shape_image("star", np.random.default_rng(0), 32)
    b = draw_shape_image("star", np.random.default_rng(1), 32)
    assert a.shape == (32, 32, 3) and not np.array_equal(a, b)
