import numpy as np
import pytest
import torch

from mnet_vision.data.transforms import apply_seeded, classification_eval_transform, classification_train_transform


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
