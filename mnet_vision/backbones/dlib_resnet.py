"""dlib's face-recognition ResNet as face-api ported it (``src/faceRecognitionNet/``): the body of the
128-D face descriptor. Not a MobileNet: a teacher. 150x150 -> 2x2x256.

Every conv carries a bias and a per-channel ``scale`` layer after it (dlib's affine layers, in place of
BatchNorm): ``conv -> + bias -> * scale.weight + scale.bias [-> relu]``.

- ``conv32_down``: 7x7/2 conv, TF ``VALID`` (150 -> 72), relu; then a 3x3/2 ``VALID`` max pool (-> 35);
- residual blocks ``conv32_1..3``, ``conv64_1..3``, ``conv128_1..2``, ``conv256_1..2``:
  ``relu(x + conv2(relu(conv1(x))))``, 3x3 stride 1 (``SAME``: PyTorch's symmetric padding 1);
- down blocks ``conv64_down``, ``conv128_down``, ``conv256_down``, ``conv256_down_out``: ``conv1`` is
  3x3/2 ``VALID``; the shortcut is a 2x2/2 ``VALID`` average pool of the input, its channels padded
  with zeros to the block's and the residual branch zero-padded at the bottom/right where the pool
  keeps more pixels (35 -> 17, 17 -> 8, 8 -> 3 vs 4, 4 -> 1 vs 2): ``residualDown`` as face-api
  writes it.

The descriptor head (``heads.faceapi.DescriptorHead``) averages the last map and applies a
bias-free 256 -> 128 linear layer.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.backbones.faceapi_layers import FaceApiNormalize
from mnet_vision.backbones.taps import Tap, select_taps

#: The blocks in order: (name, in channels, out channels, down). ``conv32_down`` is the stem.
BLOCKS = (("conv32_1", 32, 32, False), ("conv32_2", 32, 32, False), ("conv32_3", 32, 32, False),
          ("conv64_down", 32, 64, True), ("conv64_1", 64, 64, False), ("conv64_2", 64, 64, False),
          ("conv64_3", 64, 64, False), ("conv128_down", 64, 128, True), ("conv128_1", 128, 128, False),
          ("conv128_2", 128, 128, False), ("conv256_down", 128, 256, True), ("conv256_1", 256, 256, False),
          ("conv256_2", 256, 256, False), ("conv256_down_out", 256, 256, True))


class ChannelScale(nn.Module):
    """``x * weight + bias`` per channel (dlib's affine layer, face-api's ``scale``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ScaledConv(nn.Module):
    """face-api's ``convLayer``: conv (with bias) then :class:`ChannelScale`, optionally relu.
    ``valid``: no padding (TF ``VALID``), else ``k // 2`` (TF ``SAME`` at stride 1, odd k)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, relu: bool, valid: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=0 if valid else kernel // 2, bias=True)
        self.scale = ChannelScale(out_ch)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.scale(self.conv(x))
        return torch.relu(out) if self.relu else out


class ResidualBlock(nn.Module):
    """``residual`` / ``residualDown``: ``(N, in_ch, H, W)`` -> ``(N, out_ch, H', W')`` with ``H' = H``, or
    ``floor(H / 2)`` when ``down``."""

    def __init__(self, in_ch: int, out_ch: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = ScaledConv(in_ch, out_ch, 3, 2 if down else 1, relu=True, valid=down)
        self.conv2 = ScaledConv(out_ch, out_ch, 3, 1, relu=False, valid=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        if not self.down:
            return torch.relu(out + x)
        pooled = F.avg_pool2d(x, 2, 2)
        if out.shape[-2:] != pooled.shape[-2:]:
            out = F.pad(out, (0, pooled.shape[-1] - out.shape[-1], 0, pooled.shape[-2] - out.shape[-2]))
        if pooled.shape[1] != out.shape[1]:
            pooled = F.pad(pooled, (0, 0, 0, 0, 0, out.shape[1] - pooled.shape[1]))
        return torch.relu(pooled + out)


class DlibResNet(nn.Module):
    """The descriptor's body returning the requested taps.

    ``forward(x)``: ``(N, 3, H, W)`` RGB in [0, 1] (face-api: 150x150) -> ``{tap: map}``, one tap per
    block (``conv32_down`` .. ``conv256_down_out``; channels and nominal stride in ``tap_info``; the
    ``VALID`` convs make the real sizes 35, 17, 8, 4, 2 at 150). face-api's normalisation (its mean RGB,
    /255) is the first layer.
    """

    def __init__(self, taps: Sequence[str] = ("conv256_down_out",)):
        super().__init__()
        self.normalize = FaceApiNormalize()
        self.conv32_down = ScaledConv(3, 32, 7, 2, relu=True, valid=True)
        tap_info, stride = {"conv32_down": Tap(32, 4)}, 4
        for name, in_ch, out_ch, down in BLOCKS:
            self.add_module(name, ResidualBlock(in_ch, out_ch, down))
            stride *= 2 if down else 1
            tap_info[name] = Tap(out_ch, stride)
        self.tap_info = tap_info
        self.out_taps = select_taps(tap_info, taps, "DlibResNet")
        self._last = max(list(tap_info).index(t) for t in self.out_taps)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = F.max_pool2d(self.conv32_down(self.normalize(x)), 3, 2)
        out = {"conv32_down": x} if "conv32_down" in self.out_taps else {}
        for i, (name, *_rest) in enumerate(BLOCKS, start=1):
            if i > self._last:
                break
            x = getattr(self, name)(x)
            if name in self.out_taps:
                out[name] = x
        return out
