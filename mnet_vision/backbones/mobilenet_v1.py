"""MobileNet V1 (Howard et al. 2017), written from the paper's Table 1.

No library ships V1 with the paper's knobs (width multiplier with TF-slim rounding, the Table 4
"conv" and Table 5 "shallow" variants, endpoint taps), so it is written here. Module names follow
the TF endpoints: ``conv0`` is the full 3x3 stem, ``conv1``..``conv13`` are depthwise-separable
blocks, each a ``dw`` then ``pw`` :class:`ConvBNAct`.

Resolution multiplier: any input size works. Every conv uses padding ``k // 2``, so a stride-2
layer maps ``n`` to ``ceil(n / 2)`` (the same output size as TF's SAME padding) and the final
map of a ``H x W`` input is ``ceil(H / 32) x ceil(W / 32)``; sizes need not be multiples of 32.

Padding: the same sizes are not the same values. TF's ``SAME`` pads a stride-2 3x3 conv of an even
input only at the bottom/right (``k // 2`` on both sides shifts every output by one input pixel), so
weights trained in TF need ``padding="tf_same"`` (:class:`TFSameConv2d`) to give TF's outputs.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.backbones.taps import Tap, select_taps

# (output channels at alpha 1, stride) for conv1..conv13, Table 1. Layer 13's depthwise conv has
# stride 1: the paper prints s2 but its input is already 7x7 (docs/classification.md, Variants).
V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)
STEM_CHANNELS = 32
SHALLOW_REMOVED = frozenset({7, 8, 9, 10, 11})  # Table 5: the five 14x14x512 blocks
VARIANTS = ("standard", "conv", "shallow")
ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6}
PADDINGS = ("symmetric", "tf_same")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF ``SAME`` padding ``(before, after)`` of one spatial axis: output ``ceil(size / stride)``,
    total padding ``max((out - 1) * stride + kernel - size, 0)``, the odd pixel after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class TFSameConv2d(nn.Conv2d):
    """A ``Conv2d`` padded as TF's ``SAME`` for the size of each input (bottom/right get the odd
    pixel), then run unpadded. Only strided convs need it: for stride 1 and an odd kernel TF's
    padding is ``k // 2`` on both sides, PyTorch's own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{**kwargs, "padding": 0})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel_size[0], self.stride[0])
        left, right = same_padding(x.shape[-1], self.kernel_size[1], self.stride[1])
        return super().forward(F.pad(x, (left, right, top, bottom)))


def conv2d(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False,
           padding: str = "symmetric") -> nn.Conv2d:
    """A ``kernel x kernel`` conv that keeps ``ceil(n / stride)`` pixels: padding ``k // 2``
    (``symmetric``) or TF's ``SAME`` (``tf_same``, a :class:`TFSameConv2d` where it differs)."""
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; choose one of {list(PADDINGS)}")
    if padding == "tf_same" and stride > 1:
        return TFSameConv2d(in_ch, out_ch, kernel, stride, groups=groups, bias=bias)
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, groups=groups, bias=bias)


def scaled_depth(channels: int, alpha: float, min_depth: int = 8) -> int:
    """TF-slim width rounding: ``max(int(channels * alpha), min_depth)``."""
    return max(int(channels * alpha), min_depth)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation; a Sequential so BN folding finds conv+bn pairs."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, groups: int,
                 activation: type[nn.Module], bn_eps: float, bn_momentum: float, padding: str = "symmetric"):
        super().__init__()
        self.conv = conv2d(in_ch, out_ch, kernel, stride, groups=groups, padding=padding)
        self.bn = nn.BatchNorm2d(out_ch, eps=bn_eps, momentum=bn_momentum)
        self.act = activation(inplace=True)


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 (carries the stride) then pointwise 1x1, each with BN and activation."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, **kw):
        super().__init__()
        self.dw = ConvBNAct(in_ch, in_ch, 3, stride, groups=in_ch, **kw)
        self.pw = ConvBNAct(in_ch, out_ch, 1, 1, groups=1, **kw)


class MobileNetV1(nn.Module):
    """MobileNet V1 body returning the requested taps.

    Args:
        alpha: width multiplier, 0 < alpha <= 4; channels become ``max(int(c * alpha), min_depth)``.
        variant: ``standard`` (Table 1), ``conv`` (Table 4: each dw+pw pair replaced by one full 3x3
            conv) or ``shallow`` (Table 5: blocks conv7..conv11 removed).
        activation: ``relu`` (the paper) or ``relu6`` (the TF release and timm).
        taps: names of the feature maps ``forward`` returns (``conv0``..``conv13``).
        min_depth: smallest channel count the width multiplier may produce (TF-slim: 8).
        bn_eps, bn_momentum: BatchNorm settings (PyTorch convention; TF checkpoints use eps 1e-3).
        padding: ``symmetric`` (``k // 2`` on every side) or ``tf_same`` (TF's ``SAME``: what weights
            trained in TF need; see the module docstring).

    ``forward(x)`` takes ``(N, 3, H, W)`` float images and returns ``{tap: (N, C, ceil(H/s), ceil(W/s))}``;
    computation stops after the deepest requested tap. ``tap_info`` lists every tap with its
    channels and stride; ``out_taps`` the requested ones.
    """

    def __init__(self, alpha: float = 1.0, variant: str = "standard", activation: str = "relu6",
                 taps: Sequence[str] = ("conv13",), min_depth: int = 8, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.1, in_channels: int = 3, padding: str = "symmetric"):
        super().__init__()
        if not (0 < alpha <= 4):
            raise ValueError(f"MobileNetV1: alpha must be in (0, 4], got {alpha}")
        if variant not in VARIANTS:
            raise ValueError(f"MobileNetV1: unknown variant {variant!r}; choose one of {list(VARIANTS)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"MobileNetV1: unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
        if padding not in PADDINGS:
            raise ValueError(f"MobileNetV1: unknown padding {padding!r}; choose one of {list(PADDINGS)}")
        self.alpha, self.variant, self.activation, self.padding = alpha, variant, activation, padding
        kw = dict(activation=ACTIVATIONS[activation], bn_eps=bn_eps, bn_momentum=bn_momentum, padding=padding)

        layers: dict[str, nn.Module] = {}
        tap_info: dict[str, Tap] = {}
        channels, stride = scaled_depth(STEM_CHANNELS, alpha, min_depth), 2
        layers["conv0"] = ConvBNAct(in_channels, channels, 3, 2, groups=1, **kw)
        tap_info["conv0"] = Tap(channels, stride)
        for index, (base_out, block_stride) in enumerate(V1_BLOCKS, start=1):
            if variant == "shallow" and index in SHALLOW_REMOVED:
                continue
            out = scaled_depth(base_out, alpha, min_depth)
            if variant == "conv":
                layers[f"conv{index}"] = ConvBNAct(channels, out, 3, block_stride, groups=1, **kw)
            else:
                layers[f"conv{index}"] = DepthwiseSeparable(channels, out, block_stride, **kw)
            channels, stride = out, stride * block_stride
            tap_info[f"conv{index}"] = Tap(channels, stride)
        self.features = nn.Sequential(OrderedDict(layers))
        self.tap_info = tap_info
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He init as torchvision's MobileNets: PyTorch's default
                nn.init.kaiming_normal_(module.weight, mode="fan_out")  # scale trains a deep plain net slowly
        self.out_taps = select_taps(tap_info, taps, "MobileNetV1")
        names = list(tap_info)
        self._last = max(names.index(t) for t in self.out_taps)

    def stages_after(self, tap: str) -> list[nn.Module]:
        """The backbone's own layers after ``tap``, in order (``conv12``, ``conv13`` after ``conv11``).

        The modules themselves, not copies: a Faster-RCNN box head runs them on RoI crops so their
        (ImageNet) weights are used and counted once. Their output has
        ``tap_info["conv13"].channels`` channels.
        """
        names = list(self.tap_info)
        if tap not in self.tap_info:
            raise ValueError(f"MobileNetV1.stages_after: unknown tap {tap!r}; available taps: {names}")
        if tap == names[-1]:
            raise ValueError(f"MobileNetV1.stages_after: {tap!r} is the last stage, no layers follow it; "
                             f"choose one of {names[:-1]}")
        return [getattr(self.features, name) for name in names[names.index(tap) + 1:]]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i, (name, layer) in enumerate(self.features.named_children()):
            x = layer(x)
            if name in self.out_taps:
                out[name] = x
            if i == self._last:
                break
        return out
