"""The layers face-api's nets share, as TF.js runs them: its input normalisation, its separable conv
(depthwise then pointwise, one bias after both) and TF's ``SAME`` max pooling.

face-api writes these in tfjs-core ops (``src/common/depthwiseSeparableConv.ts``, ``src/ops/normalize.ts``);
PyTorch has no single module for either, so they are written here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.backbones.mobilenet_v1 import conv2d, same_padding

#: face-api's ``meanRgb`` (every net of the package subtracts it, then divides by 255), in pixel values.
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)


class FaceApiNormalize(nn.Module):
    """``(N, 3, H, W)`` RGB in [0, 1] -> ``(x * 255 - meanRgb) / 255``: face-api's ``normalize(x,
    meanRgb).div(255)`` on pixel values, for our [0, 1] image convention."""

    def __init__(self, mean_rgb: tuple[float, float, float] = FACEAPI_MEAN_RGB):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean_rgb, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 255.0 - self.mean) / 255.0


class SeparableConv(nn.Module):
    """``tf.separableConv2d(x, depthwise 3x3, pointwise 1x1, stride, 'same') + bias``: the depthwise
    conv carries the stride and TF's ``SAME`` padding, the bias sits on the pointwise conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.depthwise = conv2d(in_ch, in_ch, 3, stride, groups=in_ch, bias=False, padding="tf_same")
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def tf_same_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """``tf.maxPool(x, kernel, stride, 'same')``: padded at the bottom/right as TF pads, the padding
    never the maximum."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), kernel, stride)
