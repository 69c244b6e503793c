"""deploy.preprocess against the PyTorch eval path it replaces: albumentations' classification eval
transform, and our detectors' torchvision transform (squash, letterbox, TF legacy bilinear)."""
import numpy as np
import pytest
import torch

from mnet_vision.data.transforms import apply_seeded, classification_eval_transform
from mnet_vision.deploy.preprocess import (
    classification_input,
    detection_input,
    model_input,
    tf_legacy_resize_bilinear,
    torch_bilinear_resize,
)
from mnet_vision.heads.letterbox import LetterboxTransform
from mnet_vision.heads.letterbox import tf_legacy_resize_bilinear as torch_tf_legacy

# (H, W): wider, taller, square, smaller than the input size, odd sizes
SHAPES = [(37, 53), (61, 29), (40, 40), (17, 23), (96, 64)]


def _images(seed: int = 0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SHAPES]


@pytest.mark.parametrize("size,crop_fraction,mean,std", [
    (32, 0.875, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    (24, 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (20, 0.6, (0.1, 0.2, 0.3), (0.9, 0.5, 0.25)),
])
def test_classification_input_is_albumentations_eval_transform(size, crop_fraction, mean, std):
    transform = classification_eval_transform(size, crop_fraction, mean, std)
    images = _images()
    ours = classification_input(images, size, crop_fraction, mean, std)
    theirs = np.stack([apply_seeded(transform, 0, image=im)["image"].numpy() for im in images])
    assert ours.dtype == np.float32 and ours.shape == (len(images), 3, size, size)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(37, 53), (300, 300), (7, 90), (200, 150)])
def test_torch_bilinear_resize_is_interpolate(shape):
    rng = np.random.default_rng(1)
    image = rng.standard_normal((3, *shape)).astype(np.float32)
    for out in [(32, 32), (300, 300), (45, 13)]:
        theirs = torch.nn.functional.interpolate(torch.from_numpy(image)[None], size=out, mode="bilinear",
                                                 align_corners=False)[0].numpy()
        np.testing.assert_allclose(torch_bilinear_resize(image, *out), theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("padded", [None, "square"])
def test_tf_legacy_resize_is_the_torch_port(padded):
    rng = np.random.default_rng(2)
    for h, w in SHAPES:
        image = rng.random((3, h, w), dtype=np.float32)
        to = (max(h, w),) * 2 if padded else None
        theirs = torch_tf_legacy(torch.from_numpy(image), 32, 32, padded_to=to).numpy()
        np.testing.assert_allclose(tf_legacy_resize_bilinear(image, 32, 32, padded_to=to), theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("resize,method", [("squash", "bilinear"), ("letterbox", "bilinear"),
                                           ("squash", "tf_legacy_bilinear"), ("letterbox", "tf_legacy_bilinear")])
def test_detection_input_is_the_detectors_transform(resize, method):
    size, mean, std = 32, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    transform = LetterboxTransform(size, mean, std, resize, method).eval()
    images = _images(3)
    with torch.no_grad():
        batch, _ = transform([torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))).float() / 255.0
                              for im in images])
    ours = detection_input(images, size, mean, std, resize, method)
    assert [tuple(s) for s in batch.image_sizes] == [(size, size)] * len(images)
    tol = 1e-6 if method == "tf_legacy_bilinear" else 1e-5
    np.testing.assert_allclose(ours, batch.tensors.numpy(), rtol=0, atol=tol)


def test_model_input_dispatches_on_the_metadata():
    images = _images(4)
    settings = {"kind": "detection", "size": 24, "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "letterbox",
                "method": "tf_legacy_bilinear"}
    np.testing.assert_array_equal(model_input(images, settings),
                                  detection_input(images, 24, [0.5] * 3, [0.5] * 3, "letterbox", "tf_legacy_bilinear"))
    settings = {"kind": "classification", "size": 16, "crop_fraction": 0.8, "mean": [0.5] * 3, "std": [0.5] * 3}
    np.testing.assert_array_equal(model_input(images, settings), classification_input(images, 16, 0.8))
    with pytest.raises(ValueError, match="preprocess kind 'audio'"):
        model_input(images, {"kind": "audio"})


@pytest.mark.parametrize("bad,match", [
    (np.zeros((8, 8), np.uint8), r"image 0: expected an \(H, W, 3\) RGB uint8 array, got a uint8 array of shape"),
    (np.zeros((8, 8, 3), np.float32), "got a float32 array"),
    (np.zeros((0, 8, 3), np.uint8), "empty image"),
    ([[1, 2, 3]], "got a list"),
])
def test_bad_images_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        classification_input([bad], 8)
    with pytest.raises(ValueError, match=match):
        detection_input([bad], 8, [0.5] * 3, [0.5] * 3)


def test_unknown_resize_settings_are_errors():
    with pytest.raises(ValueError, match="unknown resize 'crop'"):
        detection_input(_images()[:1], 8, [0.5] * 3, [0.5] * 3, resize="crop")
    with pytest.raises(ValueError, match="unknown resize method 'cubic'"):
        detection_input(_images()[:1], 8, [0.5] * 3, [0.5] * 3, method="cubic")
