import json

import numpy as np
import pytest
from PIL import Image

from mnet_vision.data.synthetic.generate import MARKER
from mnet_vision.data.synthetic.attributes import (ATTRIBUTE_NAMES, _plan, draw_attribute_image, draw_attribute_labels,
                                                   make_attributes_dataset)

SPLITS = {"train": 12, "val": 4, "test": 4}
K = len(ATTRIBUTE_NAMES)
COL = {name: k for k, name in enumerate(ATTRIBUTE_NAMES)}
# The rate each attribute has by construction (see _plan); 4000 draws put a rate within 0.035 of it
# (> 4 standard deviations).
EXPECTED_RATE = {"has_circle": 0.440, "has_square": 0.452, "has_triangle": 0.422, "has_star": 0.071,
                 "multiple_objects": 0.45, "large_object": 0.319, "red_object": 0.291, "blue_object": 0.291,
                 "striped_object": 0.153, "outlined": 0.35, "object_in_top_half": 0.5, "dark_background": 0.396,
                 "textured_background": 0.4, "framed": 0.2, "blurry": 0.0875, "low_contrast": 0.131, "warm_tint": 0.225}


def _make(root, **kw):
    kw = {"splits": SPLITS, "image_size": 32, "unknown_rate": 0.3, "seed": 3, **kw}
    return make_attributes_dataset(root, **kw)


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def _rows(root):
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    return {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[2:]}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("attrs") / "celeba")


def test_same_seed_same_bytes_other_seed_differs(root, tmp_path):
    again = _make(tmp_path / "again")
    assert _files(root) == _files(again)
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in _files(root))
    other = _make(tmp_path / "other", seed=4)
    assert (other / "list_attr_celeba.txt").read_bytes() != (root / "list_attr_celeba.txt").read_bytes()
    assert (other / "img_align_celeba/000001.png").read_bytes() != (root / "img_align_celeba/000001.png").read_bytes()


def test_images_do_not_depend_on_unknown_rate(root, tmp_path):
    known = _make(tmp_path / "known", unknown_rate=0.0)
    images = [f for f in _files(root) if f.suffix == ".png"]
    assert all((root / f).read_bytes() == (known / f).read_bytes() for f in images)
    for name, values in _rows(root).items():
        assert all(v == k for v, k in zip(values, _rows(known)[name]) if v != 0)


def test_files_are_celeba_format(root):
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "20" and len(lines) == 2 + 20
    assert lines[1] == " ".join(ATTRIBUTE_NAMES) + " "  # CelebA's trailing space
    assert tuple(lines[1].split()) == ATTRIBUTE_NAMES
    partition = dict(line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines())
    names = [f"{n:06d}.png" for n in range(1, 21)]
    assert [line.split()[0] for line in lines[2:]] == list(partition) == names
    assert list(partition.values()) == ["0"] * 12 + ["1"] * 4 + ["2"] * 4
    for line, name in zip(lines[2:], names):
        values = [int(v) for v in line.split()[1:]]
        assert len(values) == K and set(values) <= {-1, 0, 1}
        assert line == name + "".join(f" {v:2d}" for v in values)  # "000001.png -1  1 ..."
        assert partition[name] == "0" or 0 not in values  # unknown labels only in train
        image = Image.open(root / "img_align_celeba" / name)
        assert image.size == (32, 32) and image.mode == "RGB"
    train = np.array([_rows(root)[n] for n in names[:12]])
    assert 0.15 < (train == 0).mean() < 0.45  # unknown_rate 0.3
    assert json.loads((root / MARKER).read_text())["kind"] == "attributes"
    assert _make(root) == root  # a finished set is left alone


def test_rows_hold_the_drawn_labels(root):
    rows = _rows(root)
    for split, i, number in [(0, 0, 1), (1, 0, 13), (2, 3, 20)]:  # CelebA numbers across the splits
        name = f"{number:06d}.png"
        image, labels = draw_attribute_image(np.random.default_rng([3, split, i]), 32)
        assert np.array_equal(np.asarray(Image.open(root / "img_align_celeba" / name)), image)
        assert all(v in (0, 2 * label - 1) for v, label in zip(rows[name], labels))
        assert np.array_equal(draw_attribute_labels(np.random.default_rng([3, split, i])), labels)


def test_rates_and_correlations():
    labels = np.array([draw_attribute_labels(np.random.default_rng([0, 0, i])) for i in range(4000)])
    assert labels.dtype == np.int8 and set(np.unique(labels)) == {0, 1}
    rates = dict(zip(ATTRIBUTE_NAMES, labels.mean(0)))
    assert set(EXPECTED_RATE) == set(ATTRIBUTE_NAMES)
    for name, rate in rates.items():
        assert abs(rate - EXPECTED_RATE[name]) < 0.035, (name, rate)
    assert rates["has_star"] < 0.12 and rates["blurry"] < 0.12
    single, blurry = labels[:, COL["multiple_objects"]] == 0, labels[:, COL["blurry"]] == 1
    large, faded = labels[:, COL["large_object"]], labels[:, COL["low_contrast"]]
    assert large[single].mean() > large[~single].mean() + 0.2
    assert faded[blurry].mean() > faded[~blurry].mean() + 0.15


def test_graded_attributes_threshold_their_quantities():
    for i in range(300):
        plan = _plan(np.random.default_rng([6, 0, i]))
        graded, flags = plan.graded, plan.flags
        assert flags["large_object"] == (graded["radius"] >= 0.25)
        assert flags["object_in_top_half"] == (graded["height"] < 0.5)
        assert flags["dark_background"] == (graded["value"] < 0.4)
        assert flags["blurry"] == (graded["blur"] >= 0.8) and flags["low_contrast"] == (graded["contrast"] < 0.6)
        assert flags["warm_tint"] == (graded["warmth"] >= 0.5)


def test_pixels_show_the_labels():
    """Checks that hold for every image: a frame (unblurred) is one colour all round; a background
    called dark is dark in the corners (no object reaches them; HSV value at most 0.44 plus noise
    and a mild, unlabelled cast), a light one light; with no colour cast at all, an image has vivid
    red (blue) pixels when it is labelled red_object (blue_object) and not otherwise, but for a rare
    blend of a near-miss hue with the background at an object's edge."""
    checked = dict.fromkeys(("framed", "dark", "light", "red", "blue"), 0)
    colour_errors = 0
    for i in range(300):
        image, labels = draw_attribute_image(np.random.default_rng([5, 0, i]), 32)
        plan = _plan(np.random.default_rng([5, 0, i]))
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and labels.shape == (K,)
        has = {name: bool(labels[k]) for name, k in COL.items()}
        x = image.astype(np.float32)
        if has["framed"] and not has["blurry"]:
            ring = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
            assert ring.std(0).max() < 1, i
            checked["framed"] += 1
        if not has["framed"] and not has["textured_background"]:
            value = x.max(2)
            corners = np.mean([value[:2, :2], value[:2, -2:], value[-2:, :2], value[-2:, -2:]])
            # over 3000 images at 32 and 64 px: dark <= 133, light >= 97
            assert corners < 140 if has["dark_background"] else corners > 85, i
            checked["dark" if has["dark_background"] else "light"] += 1
        if plan.graded["warmth"] == 0:
            hsv = np.asarray(Image.fromarray(image).convert("HSV")).astype(np.float32)
            hue, vivid = hsv[..., 0] * 360 / 256, (hsv[..., 1] > 0.4 * 255) & (hsv[..., 2] > 0.2 * 255)
            red = (vivid & ((hue < 12) | (hue > 348))).sum()
            blue = (vivid & (hue > 216) & (hue < 244)).sum()
            colour_errors += (red >= 3) != has["red_object"] or (blue >= 3) != has["blue_object"]
            checked["red"] += has["red_object"]
            checked["blue"] += has["blue_object"]
    assert colour_errors <= 3, colour_errors  # measured: 2 in 1634 images
    assert min(checked.values()) >= 20, checked  # every check ran on enough images


def test_other_parameters_are_an_error(root):
    with pytest.raises(ValueError, match="delete it or point data.root elsewhere"):
        _make(root, unknown_rate=0.1)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="train"):
        make_attributes_dataset(tmp_path / "a", splits={"val": 1, "train": 1, "test": 1})
    with pytest.raises(ValueError, match="train"):
        make_attributes_dataset(tmp_path / "b", splits={"train": 1, "val": 1})
    with pytest.raises(ValueError, match="image_size"):
        make_attributes_dataset(tmp_path / "c", image_size=16)
    with pytest.raises(ValueError, match="unknown_rate"):
        make_attributes_dataset(tmp_path / "d", unknown_rate=1.0)
    assert not any(tmp_path.iterdir())  # nothing was written
