import albumentations as A
import numpy as np
import pytest
import torch

from mnet_vision.data.transforms import (DETECTION_KINDS, FiveCropEval, RandomZoomOut, SSDRandomCrop, apply_seeded,
                                         classification_eval_transform, classification_train_transform,
                                         detection_bbox_params, detection_eval_transform, detection_train_transform)


def _image():
    return np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)


def test_train_output_is_normalised_chw():
    x = apply_seeded(classification_train_transform(32), 0, image=_image())["image"]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0


def test_eval_is_center_crop_of_resized():
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 40:] = 255  # right half white
    x = apply_seeded(classification_eval_transform(20, crop_fraction=1.0), 0, image=image)["image"]
    assert x.shape == (3, 20, 20)
    assert x[:, :, 0].max() == -1.0 and x[:, :, -1].min() == 1.0  # the centre square straddles the edge


def test_five_crops_are_the_corners_and_the_centre():
    # an 8x12 image already at its eval size (4 / 0.5 = 8 on the shorter side): quadrant-coloured
    # squares in the corners, so each corner crop is one flat colour and the centre is the plain crop
    image = np.zeros((8, 12, 3), np.uint8)
    for value, (y, x) in zip((10, 20, 30, 40), ((0, 0), (0, 8), (4, 0), (4, 8))):
        image[y:y + 4, x:x + 4] = value
    image[2:6, 4:8] = 99
    crops = apply_seeded(FiveCropEval(4, crop_fraction=0.5, mean=(0, 0, 0), std=(1, 1, 1)), 0, image=image)["image"]
    assert crops.shape == (5, 3, 4, 4) and crops.dtype == torch.float32
    assert [torch.unique(c).mul(255).round().tolist() for c in crops[:4]] == [[10], [20], [30], [40]]
    centre = apply_seeded(classification_eval_transform(4, 0.5, (0, 0, 0), (1, 1, 1)), 0, image=image)["image"]
    assert torch.equal(crops[4], centre) and torch.unique(centre).mul(255).round().tolist() == [99]


def test_same_seed_same_augmentation():
    t = classification_train_transform(24)
    a = apply_seeded(t, 3, image=_image())["image"]
    b = apply_seeded(t, 3, image=_image())["image"]
    c = apply_seeded(t, 4, image=_image())["image"]
    assert torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_bad_crop_scale(bad):
    with pytest.raises(ValueError, match="min_crop_scale"):
        classification_train_transform(32, min_crop_scale=bad)


# --- detection ---------------------------------------------------------------------------------------
H, W = 60, 80
BOXES = np.array([[10, 10, 30, 40], [50, 5, 75, 25], [0, 40, 20, 60]], np.float32)  # (N, 4) xyxy pixels
LABELS = np.array([1, 2, 3], np.int64)


def _detection_image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _check_boxes(out, height, width):
    """Boxes are non-degenerate, inside the image, and one label each."""
    boxes = np.asarray(out["bboxes"], np.float64).reshape(-1, 4)
    assert len(boxes) == len(out["labels"])
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
    assert set(np.asarray(out["labels"]).tolist()) <= set(LABELS.tolist())


def test_ssd_crop_boxes_stay_valid_and_inside():
    crop = A.Compose([SSDRandomCrop()], bbox_params=detection_bbox_params())
    shapes = set()
    for seed in range(200):
        out = apply_seeded(crop, seed, image=_detection_image(), bboxes=BOXES, labels=LABELS)
        _check_boxes(out, *out["image"].shape[:2])
        shapes.add(out["image"].shape)
    assert len(shapes) > 50  # it does crop, at many sizes


def test_ssd_pipeline_boxes_stay_valid_and_inside():
    t = detection_train_transform("ssd")
    for seed in range(100):
        out = apply_seeded(t, seed, image=_detection_image(), bboxes=BOXES, labels=LABELS)
        image = out["image"]
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert 0.0 <= image.min() and image.max() <= 1.0
        # zoom-out: at most 4x per side; crop: at least 10% of the area
        assert 0.1 <= image.shape[1] * image.shape[2] / (H * W) <= 16
        _check_boxes(out, *image.shape[1:])


def test_ssd_pipeline_same_seed_same_output():
    t = detection_train_transform("ssd")
    a, b, c = (apply_seeded(t, s, image=_detection_image(), bboxes=BOXES, labels=LABELS) for s in (3, 3, 4))
    assert torch.equal(a["image"], b["image"]) and np.array_equal(a["bboxes"], b["bboxes"])
    assert np.array_equal(a["labels"], b["labels"])
    assert a["image"].shape != c["image"].shape or not torch.equal(a["image"], c["image"])


def test_full_coverage_option_keeps_a_whole_box():
    crop = SSDRandomCrop(min_object_covered=(1.0,), random_coef=0.0)
    data = {"bboxes": BOXES / np.array([W, H, W, H], np.float32)}  # albumentations' normalised xyxy
    cropped = 0
    for seed in range(200):
        crop.set_random_seed(seed)
        x1, y1, x2, y2 = crop.get_params_dependent_on_data({"shape": (H, W, 3)}, data)["crop_coords"]
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
        if (x1, y1, x2, y2) != (0, 0, W, H):
            cropped += 1
            eps = 1e-3  # normalising the boxes moves them by float rounding
            inside = ((BOXES[:, 0] >= x1 - eps) & (BOXES[:, 1] >= y1 - eps)
                      & (BOXES[:, 2] <= x2 + eps) & (BOXES[:, 3] <= y2 + eps))
            assert inside.any(), (x1, y1, x2, y2)
    assert cropped > 100


def test_crop_drops_boxes_whose_centre_is_outside():
    # Window: the left half (x < 40). Box 0 (centre x 20) stays; box 1 (centre x 62.5) goes;
    # box 2 (x 30..70, centre x 50) is a quarter inside but its centre is not: goes.
    boxes = np.array([[10, 10, 30, 40], [50, 5, 75, 25], [30, 30, 70, 50]], np.float32)

    class LeftHalf(SSDRandomCrop):
        def get_params_dependent_on_data(self, params, data):
            return {"crop_coords": (0, 0, W // 2, H)}

    out = A.Compose([LeftHalf()], bbox_params=detection_bbox_params())(
        image=_detection_image(), bboxes=boxes, labels=LABELS)
    assert out["image"].shape == (H, W // 2, 3)
    np.testing.assert_allclose(out["bboxes"], [[10, 10, 30, 40]], atol=1e-4)
    assert out["labels"].tolist() == [1]


def test_zoom_out_shifts_box_and_keeps_size():
    image = np.full((H, W, 3), 255, np.uint8)  # white image on a grey canvas: its position is visible
    t = A.Compose([RandomZoomOut(side_range=(2.0, 2.0), fill=(127, 127, 127), p=1.0)],
                  bbox_params=detection_bbox_params())
    for seed in range(5):
        out = apply_seeded(t, seed, image=image, bboxes=BOXES, labels=LABELS)
        canvas = out["image"]
        assert canvas.shape == (2 * H, 2 * W, 3)
        ys, xs = np.nonzero(canvas[:, :, 0] == 255)
        top, left = ys.min(), xs.min()
        assert (ys.max() - top + 1, xs.max() - left + 1) == (H, W) and len(ys) == H * W
        assert np.all(canvas[:, :, 0][canvas[:, :, 0] != 255] == 127)
        np.testing.assert_allclose(out["bboxes"], BOXES + np.array([left, top, left, top]), atol=1e-3)
        assert out["labels"].tolist() == LABELS.tolist()


@pytest.mark.parametrize("kind", DETECTION_KINDS)
def test_image_without_boxes(kind):
    t = detection_train_transform(kind)
    shapes = set()
    for seed in range(20):
        out = apply_seeded(t, seed, image=_detection_image(), bboxes=np.zeros((0, 4), np.float32),
                           labels=np.zeros((0,), np.int64))
        assert np.asarray(out["bboxes"]).reshape(-1, 4).shape == (0, 4) and len(out["labels"]) == 0
        assert out["image"].dtype == torch.float32
        shapes.add(tuple(out["image"].shape))
    assert (len(shapes) > 1) == (kind == "ssd")  # only the SSD pipeline changes the size


def test_flip_mirrors_or_keeps_boxes():
    t = detection_train_transform("flip")
    mirrored = np.stack([W - BOXES[:, 2], BOXES[:, 1], W - BOXES[:, 0], BOXES[:, 3]], axis=1)
    seen = set()
    for seed in range(10):
        out = apply_seeded(t, seed, image=_detection_image(), bboxes=BOXES, labels=LABELS)
        flipped = not np.allclose(out["bboxes"], BOXES, atol=1e-3)
        np.testing.assert_allclose(out["bboxes"], mirrored if flipped else BOXES, atol=1e-3)
        seen.add(flipped)
    assert seen == {True, False}


def test_eval_keeps_boxes_and_scales_to_unit_range():
    image = _detection_image()
    out = detection_eval_transform()(image=image, bboxes=BOXES, labels=LABELS)
    x = out["image"]
    assert x.shape == (3, H, W) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x, torch.from_numpy(image).permute(2, 0, 1).float() / 255)
    # albumentations normalises boxes internally: equal up to float rounding, not bit for bit
    np.testing.assert_allclose(out["bboxes"], BOXES, rtol=0, atol=1e-4)
    assert out["labels"].tolist() == LABELS.tolist()


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match="ssd, flip, none"):
        detection_train_transform("mosaic")


@pytest.mark.parametrize("make", [lambda: SSDRandomCrop(area_range=(0.0, 1.0)),
                                  lambda: SSDRandomCrop(min_object_covered=(1.5,)),
                                  lambda: RandomZoomOut(side_range=(0.5, 2.0))])
def test_bad_parameters_raise(make):
    with pytest.raises(ValueError):
        make()
