"""face-api's ``TinyXception`` (``src/xception/TinyXception.ts``): the body of its age/gender net, an
Xception-like entry flow / middle flow / exit flow of separable convs. 112x112 -> 7x7x512.

- entry flow: ``relu(conv_in)`` (3x3, stride 2, bias), then reduction blocks 0 (32 -> 64, its input
  not activated) and 1 (64 -> 128);
- middle flow: ``num_main_blocks`` main blocks (128 -> 128): three ``relu -> separable conv`` plus the
  input;
- exit flow: a reduction block (128 -> 256), then ``relu(separable conv)`` (256 -> 512).

A reduction block: ``[relu] -> sep conv -> relu -> sep conv -> maxpool 3x3/2 SAME``, plus a 1x1
stride-2 ``expansion_conv`` (with bias) of the block's input. Every padding is TF's ``SAME``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mnet_vision.backbones.faceapi_layers import FaceApiNormalize, SeparableConv, tf_same_max_pool
from mnet_vision.backbones.mobilenet_v1 import conv2d
from mnet_vision.backbones.taps import Tap, select_taps


class ReductionBlock(nn.Module):
    """``(N, in_ch, H, W)`` -> ``(N, out_ch, ceil(H/2), ceil(W/2))``; ``activate_input``: ReLU first."""

    def __init__(self, in_ch: int, out_ch: int, activate_input: bool = True):
        super().__init__()
        self.activate_input = activate_input
        self.separable_conv0 = SeparableConv(in_ch, out_ch)
        self.separable_conv1 = SeparableConv(out_ch, out_ch)
        # 1x1 stride 2 SAME pads nothing on an even input (and one pixel after on an odd one)
        self.expansion_conv = conv2d(in_ch, out_ch, 1, 2, bias=True, padding="tf_same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(x) if self.activate_input else x
        out = self.separable_conv1(torch.relu(self.separable_conv0(out)))
        return tf_same_max_pool(out, 3, 2) + self.expansion_conv(x)


class MainBlock(nn.Module):
    """``x + sep(relu(sep(relu(sep(relu(x))))))``, channels kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.separable_conv0 = SeparableConv(channels, channels)
        self.separable_conv1 = SeparableConv(channels, channels)
        self.separable_conv2 = SeparableConv(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.separable_conv0(torch.relu(x))
        out = self.separable_conv1(torch.relu(out))
        return self.separable_conv2(torch.relu(out)) + x


class EntryFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = conv2d(3, 32, 3, 2, bias=True, padding="tf_same")
        self.reduction_block_0 = ReductionBlock(32, 64, activate_input=False)
        self.reduction_block_1 = ReductionBlock(64, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction_block_1(self.reduction_block_0(torch.relu(self.conv_in(x))))


class ExitFlow(nn.Module):
    def __init__(self):
        super().__init__()
        self.reduction_block = ReductionBlock(128, 256)
        self.separable_conv = SeparableConv(256, 512)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.separable_conv(self.reduction_block(x)))


class TinyXception(nn.Module):
    """face-api's age/gender body returning the requested taps.

    ``forward(x)``: ``(N, 3, H, W)`` RGB in [0, 1] (face-api: 112x112) -> ``{tap: map}``, taps
    ``entry_flow`` (128 channels, stride 8), ``middle_flow`` (128, 8), ``exit_flow`` (512, 16).
    face-api's normalisation is the first layer; its 7x7 average pool is the head's.
    """

    def __init__(self, num_main_blocks: int = 2, taps: Sequence[str] = ("exit_flow",)):
        super().__init__()
        self.normalize = FaceApiNormalize()
        self.entry_flow = EntryFlow()
        self.middle_flow = nn.Sequential(*[MainBlock(128) for _ in range(num_main_blocks)])
        self.exit_flow = ExitFlow()
        self.tap_info = {"entry_flow": Tap(128, 8), "middle_flow": Tap(128, 8), "exit_flow": Tap(512, 16)}
        self.out_taps = select_taps(self.tap_info, taps, "TinyXception")

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        x = self.entry_flow(self.normalize(x))
        for name in ("entry_flow", "middle_flow", "exit_flow"):
            if name != "entry_flow":
                x = getattr(self, name)(x)
            if name in self.out_taps:
                out[name] = x
            if len(out) == len(self.out_taps):
                return out
        return out
