"""face-api's ``FaceFeatureExtractor``: the body its 68-point landmark net and its expression net
share (``src/faceFeatureExtractor/``). Four dense blocks of separable convs, each halving the input:
112x112 -> 7x7x256.

A dense block (``denseBlock4``): ``out1 = relu(conv0(x))`` (a full 3x3 conv with bias in the first
block, a separable conv elsewhere; stride 2, TF ``SAME``), then three stride-1 separable convs, each
fed the ReLU of the sum of all the block's earlier outputs:
``out_k = conv_k(relu(out1 + ... + out_{k-1}))``; the block returns ``relu(out1 + ... + out4)``.
Sums are taken as face-api nests them (``out1 + (out2 + (out3 + out4)))``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnet_vision.backbones.faceapi_layers import FaceApiNormalize, SeparableConv
from mnet_vision.backbones.mobilenet_v1 import conv2d
from mnet_vision.backbones.taps import Tap, select_taps

DENSE_CHANNELS = (32, 64, 128, 256)


class DenseBlock(nn.Module):
    """``denseBlock4``: ``(N, in_ch, H, W)`` -> ``(N, out_ch, ceil(H/2), ceil(W/2))``."""

    def __init__(self, in_ch: int, out_ch: int, first: bool):
        super().__init__()
        self.conv0 = (conv2d(in_ch, out_ch, 3, 2, bias=True, padding="tf_same") if first
                      else SeparableConv(in_ch, out_ch, 2))
        self.conv1 = SeparableConv(out_ch, out_ch)
        self.conv2 = SeparableConv(out_ch, out_ch)
        self.conv3 = SeparableConv(out_ch, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = torch.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(torch.relu(out1 + out2))
        out4 = self.conv3(torch.relu(out1 + (out2 + out3)))
        return torch.relu(out1 + (out2 + (out3 + out4)))


class FaceApiDenseNet(nn.Module):
    """face-api's landmark/expression feature extractor, returning the requested taps.

    ``forward(x)``: ``(N, 3, H, W)`` RGB in [0, 1] (face-api's nets see 112x112) -> ``{tap: (N, C, H/s,
    W/s)}``, taps ``dense0``..``dense3`` (32, 64, 128, 256 channels; stride 2, 4, 8, 16). face-api's
    normalisation (:class:`~mnet_vision.backbones.faceapi_layers.FaceApiNormalize`) is the first layer.
    face-api's 7x7 average pool that ends its extractor belongs to the heads here (the age/gender net
    pools its own body the same way), so the taps stay feature maps.
    """

    def __init__(self, taps: Sequence[str] = ("dense3",)):
        super().__init__()
        self.normalize = FaceApiNormalize()
        in_ch, tap_info = 3, {}
        for i, out_ch in enumerate(DENSE_CHANNELS):
            self.add_module(f"dense{i}", DenseBlock(in_ch, out_ch, first=i == 0))
            tap_info[f"dense{i}"] = Tap(out_ch, 2 ** (i + 1))
            in_ch = out_ch
        self.tap_info = tap_info
        self.out_taps = select_taps(tap_info, taps, "FaceApiDenseNet")
        self._last = max(list(tap_info).index(t) for t in self.out_taps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x, out = self.normalize(x), {}
        for i in range(self._last + 1):
            x = getattr(self, f"dense{i}")(x)
            if f"dense{i}" in self.out_taps:
                out[f"dense{i}"] = x
        return out
