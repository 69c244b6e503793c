"""The input of an exported model from RGB ``uint8`` images, in numpy (and OpenCV for the one resize
that must be cv2's), equal to what our PyTorch eval path feeds the network.

- **Classification-like tasks** (:func:`classification_input`): the DataModule's eval transform,
  :func:`mnet_vision.data.transforms.classification_eval_transform` (albumentations): shorter side
  to ``round(size / crop_fraction)`` with ``cv2.INTER_LINEAR``, the central ``size`` square, then
  ``(x - mean * 255) / (std * 255)`` in float32 as albumentations' lookup table computes it.
  Equal to albumentations bit for bit (the same cv2 call, the same float32 table).
- **Detection** (:func:`detection_input`): torchvision's detection transform inside our detectors
  (:class:`mnet_vision.heads.letterbox.LetterboxTransform`): ``x / 255``; ``squash`` + ``bilinear``
  (torchvision's own) normalises FIRST and then resizes each axis to ``size`` as
  ``F.interpolate(mode="bilinear", align_corners=False)``; ``letterbox`` (padding to a square at the
  bottom/right with black) and/or ``tf_legacy_bilinear`` (TF 1's ``resize_bilinear``, no half-pixel
  centres) resize first and normalise after, as TF.js does.

Every function takes ``(H, W, 3)`` ``uint8`` arrays and returns float32 ``(N, 3, size, size)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2  # the classification transform is cv2's INTER_LINEAR resize (albumentations calls it)
import numpy as np

RESIZES = ("squash", "letterbox")
METHODS = ("bilinear", "tf_legacy_bilinear")


def check_image(image: np.ndarray, index: int) -> np.ndarray:
    """``image`` if it is an ``(H, W, 3)`` uint8 array with pixels, else a ``ValueError`` naming image ``index``."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = (f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise ValueError(f"image {index}: expected an (H, W, 3) RGB uint8 array, got a {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image {index}: empty image of shape {image.shape}")
    return image


def normalisation_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """``(3, 256)`` float32: each channel's normalised value of pixel ``0..255``, as albumentations'
    ``Normalize(max_pixel_value=255)`` computes it (``(v - mean * 255) * (1 / (std * 255))``, float32)."""
    mean_255 = np.array(mean, dtype=np.float32) * 255.0
    scale = np.reciprocal(np.array(std, dtype=np.float32) * 255.0)
    return (np.arange(256, dtype=np.float32)[None, :] - mean_255[:, None]) * scale[:, None]


def smallest_side_resize(image: np.ndarray, smallest: int) -> np.ndarray:
    """albumentations' ``SmallestMaxSize(max_size=smallest, interpolation=cv2.INTER_LINEAR)``:
    scale ``smallest / min(H, W)``, sides ``max(1, round(side * scale))``, cv2's bilinear resize."""
    h, w = image.shape[:2]
    scale = smallest / min(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    if (new_h, new_w) == (h, w):
        return image
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)


def classification_input(images: Sequence[np.ndarray], size: int, crop_fraction: float = 0.875,
                         mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)) -> np.ndarray:
    """``(N, 3, size, size)`` float32: the classification eval transform of each RGB uint8 image."""
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    table = normalisation_table(mean, std)
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for n, image in enumerate(images):
        resized = smallest_side_resize(check_image(image, n), round(size / crop_fraction))
        h, w = resized.shape[:2]
        top, left = (h - size) // 2, (w - size) // 2
        crop = resized[top:top + size, left:left + size]
        for c in range(3):
            out[n, c] = table[c][crop[:, :, c]]
    return out


def _torch_bilinear_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch's CPU ``upsample_bilinear2d`` (``align_corners=False``, no scale factor) along one
    axis, in float32 as it computes: scale ``in / out``, source ``scale * (i + 0.5) - 0.5`` clamped
    at 0, its floor (at most ``in - 1``) and the next pixel (none past the edge), weights
    ``1 - l`` and ``l``."""
    scale = np.float32(size_in) / np.float32(size_out)
    # PyTorch's kernel computes scale * (i + 0.5) - 0.5 as one fused multiply-add on CPUs with FMA:
    # the float64 product of two float32 is exact, so rounding once to float32 gives the same source
    # (without it, weights differ by up to 4e-6 when upscaling 90 -> 300)
    halves = np.arange(size_out, dtype=np.float32) + np.float32(0.5)
    source = (np.float64(scale) * halves.astype(np.float64) - 0.5).astype(np.float32)
    source = np.maximum(source, np.float32(0))
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    frac = np.clip(source - low.astype(np.float32), np.float32(0), np.float32(1))
    high = low + (low < size_in - 1)
    return low, high, np.float32(1) - frac, frac


def torch_bilinear_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``(C, H, W)`` float32 -> ``(C, height, width)`` as ``F.interpolate(image[None], (height,
    width), mode="bilinear", align_corners=False)[0]``: ``h0 (w0 x00 + w1 x01) + h1 (w0 x10 + w1 x11)``."""
    top, bottom, h0, h1 = _torch_bilinear_taps(image.shape[1], height)
    left, right, w0, w1 = _torch_bilinear_taps(image.shape[2], width)

    def across(rows: np.ndarray) -> np.ndarray:
        return w0 * rows[:, :, left] + w1 * rows[:, :, right]

    return h0[None, :, None] * across(image[:, top]) + h1[None, :, None] * across(image[:, bottom])


def tf_legacy_resize_bilinear(image: np.ndarray, height: int, width: int,
                              padded_to: tuple[int, int] | None = None) -> np.ndarray:
    """``(C, H, W)`` float32 -> ``(C, height, width)``: the numpy port of
    :func:`mnet_vision.heads.letterbox.tf_legacy_resize_bilinear` (TF's ``resize_bilinear`` without
    align_corners or half-pixel centres: source ``r * H / height`` in double, floor and
    ``min(ceil, H - 1)``, lerps along x then y in float32). ``padded_to``: as if zero-padded at the
    bottom/right to ``(H', W')`` first."""
    in_h, in_w = image.shape[-2:]
    src_h, src_w = padded_to if padded_to is not None else (in_h, in_w)
    if src_h < in_h or src_w < in_w:
        raise ValueError(f"padded_to {padded_to} is smaller than the image ({in_h}, {in_w})")

    def taps(size_in: int, size_src: int, size_out: int) -> tuple[np.ndarray, ...]:
        source = np.arange(size_out, dtype=np.float64) * (size_src / size_out)
        low = np.maximum(np.floor(source), 0)
        high = np.minimum(np.ceil(source), size_src - 1)
        frac = (source - low).astype(np.float32)
        low, high = low.astype(np.int64), high.astype(np.int64)
        # indices into the padding read zeros: gather a real pixel, then multiply it by 0
        return (np.minimum(low, size_in - 1), (low < size_in).astype(np.float32), np.minimum(high, size_in - 1),
                (high < size_in).astype(np.float32), frac)

    top, top_in, bottom, bottom_in, row_frac = taps(in_h, src_h, height)
    left, left_in, right, right_in, col_frac = taps(in_w, src_w, width)
    upper = image[:, top] * top_in[None, :, None]
    lower = image[:, bottom] * bottom_in[None, :, None]
    top_left, top_right, bottom_left, bottom_right = (
        rows[:, :, cols] * inside[None, None, :]
        for rows in (upper, lower) for cols, inside in ((left, left_in), (right, right_in)))
    col_frac = col_frac[None, None, :]
    upper = top_left + (top_right - top_left) * col_frac
    lower = bottom_left + (bottom_right - bottom_left) * col_frac
    return upper + (lower - upper) * row_frac[None, :, None]


def detection_input(images: Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float],
                    resize: str = "squash", method: str = "bilinear") -> np.ndarray:
    """``(N, 3, size, size)`` float32: each RGB uint8 image as our detector's transform feeds the
    network (module doc). The original sizes, which map boxes back, are the images' own shapes."""
    if resize not in RESIZES:
        raise ValueError(f"unknown resize {resize!r}; expected one of {list(RESIZES)}")
    if method not in METHODS:
        raise ValueError(f"unknown resize method {method!r}; expected one of {list(METHODS)}")
    mean32 = np.array(mean, dtype=np.float32)[:, None, None]
    std32 = np.array(std, dtype=np.float32)[:, None, None]
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for n, image in enumerate(images):
        chw = np.ascontiguousarray(check_image(image, n).transpose(2, 0, 1)).astype(np.float32) / np.float32(255)
        h, w = chw.shape[1:]
        if resize == "squash" and method == "bilinear":  # torchvision: normalise, then resize
            chw = (chw - mean32) / std32
            out[n] = chw if (h, w) == (size, size) else torch_bilinear_resize(chw, size, size)
            continue
        side = (max(h, w),) * 2 if resize == "letterbox" else (h, w)
        if method == "tf_legacy_bilinear":
            if (h, w) != (size, size):
                chw = tf_legacy_resize_bilinear(chw, size, size, padded_to=side)
        else:
            if side != (h, w):
                chw = np.pad(chw, ((0, 0), (0, side[0] - h), (0, side[1] - w)))
            if side != (size, size):
                chw = torch_bilinear_resize(chw, size, size)
        out[n] = (chw - mean32) / std32
    return out


def model_input(images: Sequence[np.ndarray], settings: Mapping[str, Any]) -> np.ndarray:
    """The input of an exported model from its ``mnet_vision.preprocess`` metadata ``settings``
    (``kind`` classification or detection, ``size``, ``crop_fraction``, ``mean``, ``std``, ``resize``,
    ``method``)."""
    kind = settings.get("kind")
    if kind == "classification":
        return classification_input(images, int(settings["size"]), float(settings.get("crop_fraction", 0.875)),
                                    settings["mean"], settings["std"])
    if kind == "detection":
        return detection_input(images, int(settings["size"]), settings["mean"], settings["std"],
                               str(settings.get("resize", "squash")), str(settings.get("method", "bilinear")))
    raise ValueError(f"preprocess kind {kind!r} is not one of ['classification', 'detection']")
