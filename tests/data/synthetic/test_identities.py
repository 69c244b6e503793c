import json

import numpy as np
import pytest

from mnet_vision.data.lfw import read_lfw_pairs
from mnet_vision.data.synthetic.faces import draw_identity
from mnet_vision.data.synthetic.generate import MARKER
from mnet_vision.data.synthetic.identities import identity_photo, identity_sample_grid, make_identity_dataset

IDENTITIES = {"train": 4, "val": 3, "test": 3}
PER_IDENTITY = {"train": 3, "val": 2, "test": 2}


def _make(root, **kw):
    kw = {"identities": IDENTITIES, "per_identity": PER_IDENTITY, "image_size": 24, "pairs_per_fold": 3, **kw}
    return make_identity_dataset(root, **kw)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("ids") / "faces")


def test_same_seed_same_bytes(root, tmp_path):
    again = _make(tmp_path / "again")
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_images_differ_between_and_within_identities():
    a, b = (identity_photo(0, 0, i, 0, 32) for i in (0, 1))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, identity_photo(0, 0, 0, 1, 32))  # another capture of the same person
    assert draw_identity(np.random.default_rng([0, 0, 0])) != draw_identity(np.random.default_rng([0, 0, 1]))
    assert not np.array_equal(a, identity_photo(1, 0, 0, 0, 32))  # the seed matters


def test_layout_is_lfw_naming_with_disjoint_people(root):
    people = {split: sorted(p.name for p in (root / split).iterdir()) for split in IDENTITIES}
    assert people == {"train": ["id00000", "id00001", "id00002", "id00003"],
                      "val": ["id00004", "id00005", "id00006"], "test": ["id00007", "id00008", "id00009"]}
    assert sorted(p.name for p in (root / "val" / "id00004").iterdir()) == ["id00004_0001.png", "id00004_0002.png"]
    assert len(list((root / "train").rglob("*.png"))) == 12
    assert json.loads((root / MARKER).read_text())["kind"] == "identities"
    assert not (root / "pairs_train.txt").exists()
    assert _make(root) == root  # a finished set is left alone


@pytest.mark.parametrize("split", ["val", "test"])
def test_pairs_files_are_lfw_format(root, split):
    text = (root / f"pairs_{split}.txt").read_text().splitlines()
    assert text[0] == "10\t3" and len(text) == 1 + 10 * 6
    assert all(len(line.split("\t")) in (3, 4) for line in text[1:])
    pairs = read_lfw_pairs(root / f"pairs_{split}.txt", root / split, ext="png")
    assert (pairs.sets, pairs.pairs_per_set, len(pairs), pairs.missing) == (10, 3, 60, [])
    assert pairs.issame == ([True] * 3 + [False] * 3) * 10
    for a, b, same in zip(pairs.first, pairs.second, pairs.issame):
        assert a != b and (a.parent == b.parent) == same


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="same splits"):
        make_identity_dataset(tmp_path / "a", identities={"train": 2}, per_identity={"val": 2})
    with pytest.raises(ValueError, match="at least 2 identities with at least 2 images"):
        _make(tmp_path / "b", per_identity={"train": 2, "val": 1, "test": 2})
    assert not (tmp_path / "b").exists()  # the failed run left nothing behind


def test_sample_grid_tiles_the_photos():
    grid = identity_sample_grid(rows=2, cols=3, image_size=16)
    assert grid.shape == (32, 48, 3)
    assert np.array_equal(grid[16:, 32:], identity_photo(0, 0, 1, 2, 16))
