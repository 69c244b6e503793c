"""Augmentation pipelines (albumentations).

Classification pipelines produce normalised float CHW tensors: scaled to [-1, 1] by default
(``mean = std = 0.5``), as in the TensorFlow release of MobileNet; set ``mean``/``std`` to the
ImageNet statistics for weights trained that way (timm).

Detection pipelines produce float CHW tensors in [0, 1] without mean/std normalisation (torchvision's
detectors normalise inside the model) and ``pascal_voc`` boxes (``(N, 4)`` xyxy pixels) with their
``labels``; they do not resize (the detector resizes every image itself). The SSD pipeline uses two
transforms defined here: :class:`RandomZoomOut` (SSD's "expand") and :class:`SSDRandomCrop`.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.augmentations.crops.transforms import BaseCrop
from albumentations.core.transforms_interface import BaseTransformInitSchema
from albumentations.pytorch import ToTensorV2
from pydantic import Field, model_validator

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


class FiveCropEval:
    """Test-time multi-crop (TIB GeoEstimation's protocol): resize the shorter side to
    ``size / crop_fraction``, then take the four corner squares and the central one of side
    ``size`` (torchvision's ``FiveCrop`` order: top-left, top-right, bottom-left, bottom-right,
    centre), each normalised: ``{"image": (5, 3, size, size)}``. The centre crop is
    :func:`classification_eval_transform`'s. Deterministic; called like an albumentations pipeline."""

    crops = 5

    def __init__(self, size: int, crop_fraction: float = 0.875, mean: Sequence[float] = TF_MEAN,
                 std: Sequence[float] = TF_STD):
        self.size = size
        self.resize = classification_eval_transform(size, crop_fraction, mean, std)[0]
        self.finish = A.Compose([A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()])

    def set_random_seed(self, seed: int) -> None:
        """Nothing is random (:func:`apply_seeded` seeds every transform)."""

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        image = self.resize(image=image)["image"]
        h, w, s = image.shape[0], image.shape[1], self.size
        corners = [(0, 0), (0, w - s), (h - s, 0), (h - s, w - s), ((h - s) // 2, (w - s) // 2)]
        return {"image": torch.stack([self.finish(image=np.ascontiguousarray(image[y:y + s, x:x + s]))["image"]
                                      for y, x in corners])}


def apply_seeded(transform: A.BasicTransform, seed: int, **data: Any) -> dict[str, Any]:
    """Apply an albumentations transform with its random state set from ``seed``.

    albumentations keeps its own random state, untouched by ``seed_everything``; seeding it per
    sample (seeds from :class:`mnet_vision.data.sampling.EpochSampler`) makes augmentation
    reproducible across runs, worker counts and resumes.
    """
    transform.set_random_seed(seed)
    return transform(**data)


# --- detection -------------------------------------------------------------------------------------

#: Values of ``kind`` accepted by :func:`detection_train_transform`.
DETECTION_KINDS = ("ssd", "flip", "none")


class RandomZoomOut(A.Pad):
    """SSD's "expand" step, as torchvision's ``RandomZoomOut``: place the image at a uniformly random
    position on a canvas ``r`` times its height and width (``r`` uniform in ``side_range``) filled
    with ``fill``; boxes, masks and keypoints shift with the image and keep their size.

    The output is larger than the input (up to ``side_range[1]`` times per side). ``A.Pad`` does the
    padding; this class only draws the per-side amounts (``A.PadIfNeeded`` with a random position
    would need a fixed target size, not one relative to the image).

    Args:
        side_range: ``(min, max)`` canvas side as a multiple of the image side, ``1 <= min <= max``.
        fill: canvas colour of the image, one value per channel or a scalar (image dtype units).
        fill_mask: canvas value of masks.
        p: probability of zooming out.
    """

    class InitSchema(BaseTransformInitSchema):
        side_range: tuple[float, float]
        fill: tuple[float, ...] | float
        fill_mask: tuple[float, ...] | float

        @model_validator(mode="after")
        def _check_side_range(self) -> RandomZoomOut.InitSchema:
            if not 1.0 <= self.side_range[0] <= self.side_range[1]:
                raise ValueError(f"side_range must satisfy 1 <= min <= max, got {self.side_range}")
            return self

    def __init__(self, side_range: tuple[float, float] = (1.0, 4.0), fill: tuple[float, ...] | float = 0,
                 fill_mask: tuple[float, ...] | float = 0, p: float = 0.5):
        super().__init__(padding=0, fill=fill, fill_mask=fill_mask, border_mode=cv2.BORDER_CONSTANT, p=p)
        self.side_range = side_range

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        # Not A.Pad's (padding, border_mode): those are fixed here, and serialisation must round-trip.
        return ("side_range", "fill", "fill_mask")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, int]:
        """Per-side padding in pixels: ``pad_top``, ``pad_bottom``, ``pad_left``, ``pad_right``."""
        height, width = params["shape"][:2]
        ratio = self.py_random.uniform(*self.side_range)
        canvas_h, canvas_w = int(height * ratio), int(width * ratio)
        left = int((canvas_w - width) * self.py_random.random())
        top = int((canvas_h - height) * self.py_random.random())
        return {"pad_top": top, "pad_bottom": canvas_h - height - top,
                "pad_left": left, "pad_right": canvas_w - width - left}


class SSDRandomCrop(BaseCrop):
    """The SSD paper's patch sampler as the TF Object Detection API's ``ssd_random_crop``.

    Per call: with probability ``random_coef`` keep the whole image; otherwise pick one
    ``min_object_covered`` option uniformly and try up to ``max_trials`` random windows (area a
    uniform fraction of the image area in ``area_range``, width/height uniform in
    ``aspect_ratio_range``, position uniform) until one covers at least that fraction of the area
    of at least one box (TF's ``sample_distorted_bounding_box``); if none does, keep the whole
    image. Without boxes the whole image stands in for the box (TF's
    ``use_image_if_no_bounding_boxes``), so such images are still cropped. Windows are integer pixels.

    Boxes: those whose centre is not strictly inside the window are dropped, with their labels, in
    :meth:`apply_to_bboxes` (the SSD paper's rule, as in its Caffe code and torchvision's
    ``RandomIoUCrop``; TF's API instead drops boxes with less than ``min_object_covered`` of their
    area in the window). Kept boxes are clipped to the window by the ``Compose``'s ``BboxParams``
    filtering, whose ``min_area`` drops what became degenerate. A crop may keep no box (as in TF).

    Args:
        min_object_covered: the options, each in [0, 1]; 0 accepts any window.
        aspect_ratio_range: ``(min, max)`` window width / height.
        area_range: ``(min, max)`` window area as a fraction of the image area, in (0, 1].
        random_coef: probability of keeping the whole image.
        max_trials: windows tried per call before falling back to the whole image.
        p: probability of applying the transform at all (leave at 1; ``random_coef`` is SSD's knob).
    """

    class InitSchema(BaseTransformInitSchema):
        min_object_covered: Annotated[tuple[Annotated[float, Field(ge=0, le=1)], ...], Field(min_length=1)]
        aspect_ratio_range: tuple[float, float]
        area_range: tuple[float, float]
        random_coef: float = Field(ge=0, le=1)
        max_trials: int = Field(ge=1)

        @model_validator(mode="after")
        def _check_ranges(self) -> SSDRandomCrop.InitSchema:
            if not 0 < self.aspect_ratio_range[0] <= self.aspect_ratio_range[1]:
                raise ValueError(f"aspect_ratio_range must satisfy 0 < min <= max, got {self.aspect_ratio_range}")
            if not 0 < self.area_range[0] <= self.area_range[1] <= 1:
                raise ValueError(f"area_range must satisfy 0 < min <= max <= 1, got {self.area_range}")
            return self

    def __init__(self, min_object_covered: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
                 aspect_ratio_range: tuple[float, float] = (0.5, 2.0), area_range: tuple[float, float] = (0.1, 1.0),
                 random_coef: float = 0.15, max_trials: int = 100, p: float = 1.0):
        super().__init__(p=p)
        self.min_object_covered = tuple(min_object_covered)
        self.aspect_ratio_range = aspect_ratio_range
        self.area_range = area_range
        self.random_coef = random_coef
        self.max_trials = max_trials  # TF's sample_distorted_bounding_box makes 100 attempts

    def get_params_dependent_on_data(self, params: dict[str, Any],
                                     data: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
        """``crop_coords``: the window ``(x_min, y_min, x_max, y_max)`` in integer pixels.

        ``data["bboxes"]`` holds the boxes in albumentations' internal format: ``(N, 4 + k)``,
        xyxy normalised by the image size, then ``k`` encoded label columns.
        """
        height, width = params["shape"][:2]
        whole = (0, 0, width, height)
        if self.py_random.random() < self.random_coef:
            return {"crop_coords": whole}
        min_covered = self.py_random.choice(self.min_object_covered)
        bboxes = data.get("bboxes")
        if bboxes is None or len(bboxes) == 0:
            boxes = np.array([[0.0, 0.0, width, height]])
        else:
            boxes = np.asarray(bboxes, dtype=np.float64)[:, :4] * (width, height, width, height)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        for _ in range(self.max_trials):
            area = self.py_random.uniform(*self.area_range) * height * width
            aspect = self.py_random.uniform(*self.aspect_ratio_range)
            w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
            if not (1 <= w <= width and 1 <= h <= height):
                continue  # this shape does not fit the image: another trial
            x = self.py_random.randint(0, width - w)
            y = self.py_random.randint(0, height - h)
            inter_w = np.clip(np.minimum(boxes[:, 2], x + w) - np.maximum(boxes[:, 0], x), 0, None)
            inter_h = np.clip(np.minimum(boxes[:, 3], y + h) - np.maximum(boxes[:, 1], y), 0, None)
            # ">=" on the same float expressions: a box fully inside gives exactly 1.0
            if np.any(inter_w * inter_h >= min_covered * areas):
                return {"crop_coords": (x, y, x + w, y + h)}
        return {"crop_coords": whole}

    def apply_to_bboxes(self, bboxes: np.ndarray, crop_coords: tuple[int, int, int, int],
                        **params: Any) -> np.ndarray:
        """Drop the boxes whose centre is not strictly inside the window, then shift the rest.

        ``bboxes``: ``(N, 4 + k)`` normalised xyxy plus label columns, so labels go with their box.
        """
        height, width = params["shape"][:2]
        x_min, y_min, x_max, y_max = crop_coords
        cx = (bboxes[:, 0] + bboxes[:, 2]) * (width / 2)
        cy = (bboxes[:, 1] + bboxes[:, 3]) * (height / 2)
        inside = (x_min < cx) & (cx < x_max) & (y_min < cy) & (cy < y_max)
        return super().apply_to_bboxes(bboxes[inside], crop_coords, **params)


def detection_bbox_params() -> A.BboxParams:
    """Box handling of the detection pipelines: ``pascal_voc`` boxes with a ``labels`` field,
    clipped to the image; boxes under 1 px² (e.g. zero width or height after a crop) are dropped
    with their labels, on input and after every geometric step."""
    return A.BboxParams(format="pascal_voc", label_fields=["labels"], clip=True, filter_invalid_bboxes=True,
                        min_area=1.0)


def _detection_compose(steps: list[A.BasicTransform]) -> A.Compose:
    """``steps`` then conversion to a float32 CHW tensor in [0, 1], with :func:`detection_bbox_params`."""
    with warnings.catch_warnings():
        # Without a geometric step albumentations warns that the bbox processor has nothing to do;
        # it still clips and filters the boxes, which is what we want of it here.
        warnings.filterwarnings("ignore", message="Got processor for bboxes, but no transform to process it")
        return A.Compose([*steps, A.ToFloat(max_value=255), ToTensorV2()], bbox_params=detection_bbox_params())


def detection_train_transform(kind: str = "ssd", fill: tuple[int, int, int] = (127, 127, 127)) -> A.Compose:
    """Training augmentation for detection on uint8 RGB ``(H, W, 3)`` images.

    Call with ``image``, ``bboxes`` (``(N, 4)`` xyxy pixels) and ``labels`` (``(N,)``); returns the
    image as a ``(3, H', W')`` float32 tensor in [0, 1] (not normalised, not resized) and the
    surviving boxes and labels.

    Kinds:
        ``ssd``: photometric distortion (torchvision's ``RandomPhotometricDistort`` ranges, p=0.5),
            :class:`RandomZoomOut` onto a ``fill`` canvas (p=0.5), :class:`SSDRandomCrop`,
            horizontal flip (p=0.5), as torchvision's SSD recipe with TF's crop sampler.
        ``flip``: horizontal flip only (the Faster R-CNN recipe).
        ``none``: no augmentation.
    """
    if kind == "ssd":
        steps = [
            A.ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05, p=0.5),
            RandomZoomOut(side_range=(1.0, 4.0), fill=fill, p=0.5),
            SSDRandomCrop(),
            A.HorizontalFlip(p=0.5),
        ]
    elif kind == "flip":
        steps = [A.HorizontalFlip(p=0.5)]
    elif kind == "none":
        steps = []
    else:
        raise ValueError(f"unknown detection augmentation {kind!r}; valid kinds: {', '.join(DETECTION_KINDS)}")
    return _detection_compose(steps)


def detection_eval_transform() -> A.Compose:
    """Evaluation pipeline for detection: the uint8 RGB image as a ``(3, H, W)`` float32 tensor in
    [0, 1]; boxes (``(N, 4)`` xyxy pixels) and labels pass through (up to float rounding), except
    boxes under 1 px² (:func:`detection_bbox_params`)."""
    return _detection_compose([])
