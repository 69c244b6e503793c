"""TF.js-style detector input: letterbox (pad to a square at the bottom/right) and TF's legacy
bilinear resize, inside torchvision's detection transform.

torchvision's ``GeneralizedRCNNTransform`` squashes every image to ``size x size`` with half-pixel
bilinear interpolation. Models trained in TF and run by face-api / TF.js see something else: the
image padded with black to a square at the bottom/right (``padToSquare``), then
``tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false)`` (TF 1's default: source pixel
``i * in / out``, no half-pixel offset). :class:`LetterboxTransform` gives a detector exactly that
input, maps target boxes into it for training, and maps predicted boxes back (one scale for both
axes, clipped to the original image).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.transform import GeneralizedRCNNTransform

RESIZES = ("squash", "letterbox")
RESIZE_METHODS = ("bilinear", "tf_legacy_bilinear")


def tf_legacy_resize_bilinear(image: Tensor, height: int, width: int,
                              padded_to: tuple[int, int] | None = None) -> Tensor:
    """``(C, H, W)`` -> ``(C, height, width)`` as TF's ``resize_bilinear`` with ``align_corners`` and
    ``half_pixel_centers`` false, as tfjs's cpu kernel computes it: source row ``r * H / height``
    (in double precision), its floor and ``min(ceil, H - 1)`` neighbours, lerp along x then y. The
    lerps run in ``image.dtype`` (tfjs: in double, rounded once to float32; the difference is float32
    rounding, ~1e-7 relative, and halves the cost of this step on a 2-core CPU).

    ``padded_to``: resize the image as if zero-padded at the bottom/right to ``(H', W')`` first
    (TF.js's ``padToSquare``), without building the padded copy."""
    if image.dim() != 3:
        raise ValueError(f"tf_legacy_resize_bilinear expects a (C, H, W) tensor, got shape {tuple(image.shape)}")
    in_h, in_w = image.shape[-2:]
    src_h, src_w = padded_to if padded_to is not None else (in_h, in_w)
    if src_h < in_h or src_w < in_w:
        raise ValueError(f"padded_to {padded_to} is smaller than the image ({in_h}, {in_w})")

    def taps(size_in: int, size_src: int, size_out: int) -> tuple[Tensor, ...]:
        source = torch.arange(size_out, dtype=torch.float64, device=image.device) * (size_src / size_out)
        low = source.floor().clamp(min=0)
        high = source.ceil().clamp(max=size_src - 1)
        frac = (source - low).to(image.dtype)
        low, high = low.long(), high.long()
        # indices into the padding read zeros: gather a real pixel, then multiply it by 0
        return (low.clamp(max=size_in - 1), (low < size_in).to(image.dtype), high.clamp(max=size_in - 1),
                (high < size_in).to(image.dtype), frac)

    top, top_in, bottom, bottom_in, row_frac = taps(in_h, src_h, height)
    left, left_in, right, right_in, col_frac = taps(in_w, src_w, width)
    upper = image[:, top] * top_in[None, :, None]  # rows first: the column gathers then touch height rows
    lower = image[:, bottom] * bottom_in[None, :, None]
    corners = [rows[:, :, cols] * inside[None, None, :]
               for rows in (upper, lower) for cols, inside in ((left, left_in), (right, right_in))]
    top_left, top_right, bottom_left, bottom_right = corners
    col_frac = col_frac[None, None, :]
    upper = top_left + (top_right - top_left) * col_frac
    lower = bottom_left + (bottom_right - bottom_left) * col_frac
    return upper + (lower - upper) * row_frac[None, :, None]


class LetterboxTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform with a choice of resize: ``squash`` (its own: each axis
    to ``size``) or ``letterbox`` (pad to a square of side ``max(H, W)`` at the bottom/right with
    black, then resize to ``size``); ``method`` ``bilinear`` (PyTorch, half-pixel centres) or
    ``tf_legacy_bilinear`` (:func:`tf_legacy_resize_bilinear`). Images are resized before they are
    normalised, as TF.js does, so the padding is black in pixel values."""

    def __init__(self, size: int, image_mean: list[float], image_std: list[float], resize: str = "squash",
                 method: str = "bilinear"):
        if resize not in RESIZES:
            raise ValueError(f"unknown resize {resize!r}; choose one of {list(RESIZES)}")
        if method not in RESIZE_METHODS:
            raise ValueError(f"unknown resize method {method!r}; choose one of {list(RESIZE_METHODS)}")
        super().__init__(size, size, image_mean, image_std, size_divisible=1, fixed_size=(size, size))
        self.size, self.letterbox, self.method = size, resize == "letterbox", method

    def forward(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None):
        if not self.letterbox and self.method == "bilinear":
            return super().forward(images, targets)
        resized, new_targets = [], None if targets is None else []
        for i, image in enumerate(images):
            target = None if targets is None else dict(targets[i])
            image, target = self._resize(image, target)
            resized.append(image)
            if new_targets is not None:
                new_targets.append(target)
        # GeneralizedRCNNTransform normalises, then resizes; its resize is now the identity
        return super().forward(resized, new_targets)

    def _resize(self, image: Tensor, target: dict[str, Tensor] | None) -> tuple[Tensor, dict[str, Tensor] | None]:
        h, w = image.shape[-2:]
        sh, sw = (max(h, w),) * 2 if self.letterbox else (h, w)  # the square, black at the bottom/right
        if self.method == "tf_legacy_bilinear":
            if (h, w) != (self.size, self.size):
                image = tf_legacy_resize_bilinear(image, self.size, self.size, padded_to=(sh, sw))
        else:
            if (sh, sw) != (h, w):
                image = torch.nn.functional.pad(image, (0, sw - w, 0, sh - h))
            if (sh, sw) != (self.size, self.size):
                image = torch.nn.functional.interpolate(image[None], size=(self.size, self.size), mode="bilinear",
                                                        align_corners=False)[0]
        if target is not None and "boxes" in target:
            target["boxes"] = target["boxes"] * target["boxes"].new_tensor([self.size / sw, self.size / sh] * 2)
        return image, target

    def resize(self, image: Tensor, target: dict[str, Tensor] | None = None):
        if not self.letterbox and self.method == "bilinear":
            return super().resize(image, target)
        return image, target  # done in forward, before normalisation

    def postprocess(self, result: list[dict[str, Tensor]], image_shapes: list[tuple[int, int]],
                    original_image_sizes: list[tuple[int, int]]) -> list[dict[str, Tensor]]:
        if self.training or not self.letterbox:
            return super().postprocess(result, image_shapes, original_image_sizes)
        for pred, (h, w) in zip(result, original_image_sizes):
            boxes = pred["boxes"] * (max(h, w) / self.size)  # the square's side in original pixels
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            pred["boxes"] = boxes
        return result

