"""Augmentation pipelines (albumentations) producing normalised float CHW tensors.

Images are scaled to [-1, 1] by default (``mean = std = 0.5``), as in the TensorFlow release of
MobileNet; set ``mean``/``std`` to the ImageNet statistics for weights trained that way (timm).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

TF_MEAN = (0.5, 0.5, 0.5)
TF_STD = (0.5, 0.5, 0.5)


def classification_train_transform(size: int, min_crop_scale: float = 0.25, hflip: bool = True,
                                   mean: Sequence[float] = TF_MEAN, std: Sequence[float] = TF_STD) -> A.Compose:
    """Inception-style random-resized crop with a limited minimum crop area (the paper limits
    small crops; Inception uses 0.08), optional horizontal flip, normalisation."""
    if not (0 < min_crop_scale <= 1):
        raise ValueError(f"min_crop_scale must be in (0, 1], got {min_crop_scale}")
    steps = [A.RandomResizedCrop(size=(size, size), scale=(min_crop_scale, 1.0), interpolation=cv2.INTER_LINEAR)]
    if hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    steps += [A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(steps)


def classification_eval_transform(size: int, crop_fraction: float = 0.875,
                                  mean: Sequence[float] = TF_MEAN, std: Sequence[float] = TF_STD) -> A.Compose:
    """Resize the shorter side to ``size / crop_fraction`` and take the central ``size`` square."""
    if not (0 < crop_fraction <= 1):
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    return A.Compose([
        A.SmallestMaxSize(max_size=round(size / crop_fraction), interpolation=cv2.INTER_LINEAR),
        A.CenterCrop(height=size, width=size),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ])


def apply_seeded(transform: A.BasicTransform, seed: int, **data: Any) -> dict[str, Any]:
    """Apply an albumentations transform with its random state set from ``seed``.

    albumentations keeps its own random state, untouched by ``seed_everything``; seeding it per
    sample (seeds from :class:`mnet_vision.data.sampling.EpochSampler`) makes augmentation
    reproducible across runs, worker counts and resumes.
    """
    transform.set_random_seed(seed)
    return transform(**data)
