"""face-api's input pipeline for its face nets (``NetInput.toBatchTensor(size, isCenterInputs=true)``)
and the inverse mapping of its landmarks (``FaceLandmark68NetBase.postProcess``), for our ports.

``toBatchTensor`` pads a face crop with black to a square, centred (``padToSquare``: ``round(diff / 2)``
pixels after the image, the rest before, JS rounding half up), then, unless the square already has
the net's side, resizes it with ``tf.image.resizeBilinear(alignCorners=false, halfPixelCenters=false)``
(:func:`mnet_vision.heads.letterbox.tf_legacy_resize_bilinear`, as tfjs's cpu kernel computes it).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mnet_vision.heads.letterbox import tf_legacy_resize_bilinear

#: The side of the square each face-api net takes, in pixels.
INPUT_SIZES = {"landmarks68": 112, "expression": 112, "age_gender": 112, "descriptor": 150}


def _pad_after(diff: int) -> int:
    return math.floor(diff * 0.5 + 0.5)  # JS Math.round: half up


def faceapi_net_input(rgb: np.ndarray, size: int) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB face crop -> ``(3, size, size)`` float32 in [0, 1]: face-api's centred
    ``padToSquare`` then its legacy bilinear resize (skipped when the square is ``size`` already)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"faceapi_net_input expects an (H, W, 3) uint8 RGB crop of at least 1x1 pixels, "
                         f"got {rgb.dtype} of shape {rgb.shape}")
    image = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float()  # a copy: the crop may be a read-only view
    h, w = rgb.shape[:2]
    diff = abs(h - w)
    after = _pad_after(diff)
    pad = (0, 0, diff - after, after) if w > h else (diff - after, after, 0, 0)
    image = F.pad(image, pad)
    if image.shape[-1] != size:
        image = tf_legacy_resize_bilinear(image, size, size)
    return image / 255.0


def landmarks_in_crop(relative: torch.Tensor, width: int, height: int, size: int = 112) -> torch.Tensor:
    """``(..., 68, 2)`` landmarks in fractions of the padded square (the net's output) -> pixels of the
    ``width x height`` crop, as face-api's ``postProcess`` and ``FaceLandmarks68`` compute them (its padding
    offset ``|w - h| / 2`` in resized pixels, unrounded)."""
    scale = size / max(width, height)
    w, h = width * scale, height * scale
    pad_x = abs(w - h) / 2 if w < h else 0.0
    pad_y = abs(w - h) / 2 if h < w else 0.0
    x = (relative[..., 0] * size - pad_x) / w * width
    y = (relative[..., 1] * size - pad_y) / h * height
    return torch.stack([x, y], dim=-1)
