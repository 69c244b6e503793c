"""torchvision's MobileNet V2 / V3 bodies behind the same tap interface as :class:`MobileNetV1`.

The body is torchvision's own ``features`` module, kept under the same attribute name, so a
torchvision state dict's ``features.*`` keys load unchanged. Taps are ``features.<i>`` for every
stage, plus two aliases that heads written for V1 use: ``conv11`` is the last stride-16 map and
``conv13`` the final map (stride 32), matching V1's ``conv11``/``conv13`` roles in SSD and
Faster-RCNN.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from mnet_vision.backbones.taps import Tap, select_taps

ARCHS = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small")


def _measure_taps(features: nn.Sequential) -> tuple[dict[str, Tap], dict[str, int]]:
    """Channels and stride of every stage, measured with one small forward pass, and the stage
    index of every tap name (aliases included)."""
    size = 224
    x = torch.zeros(1, 3, size, size)
    taps: dict[str, Tap] = {}
    was_training = features.training
    features.eval()
    with torch.no_grad():
        for i, layer in enumerate(features):
            x = layer(x)
            taps[f"features.{i}"] = Tap(x.shape[1], size // x.shape[-1])
    features.train(was_training)
    stage = {name: i for i, name in enumerate(taps)}
    stage["conv11"] = max(i for name, i in stage.items() if taps[name].stride == 16)
    stage["conv13"] = len(features) - 1
    taps["conv11"] = taps[f"features.{stage['conv11']}"]
    taps["conv13"] = taps[f"features.{stage['conv13']}"]
    return taps, stage


class TorchvisionMobileNet(nn.Module):
    """torchvision MobileNet V2 / V3-Large / V3-Small body returning the requested taps.

    Args:
        arch: one of ``mobilenet_v2``, ``mobilenet_v3_large``, ``mobilenet_v3_small``.
        alpha: width multiplier, passed as torchvision's ``width_mult`` (0 < alpha <= 4).
        taps: names of the maps ``forward`` returns (see ``tap_info``).
    """

    def __init__(self, arch: str = "mobilenet_v2", alpha: float = 1.0, taps: Sequence[str] = ("conv13",)):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"TorchvisionMobileNet: unknown arch {arch!r}; choose one of {list(ARCHS)}")
        if not (0 < alpha <= 4):
            raise ValueError(f"TorchvisionMobileNet: alpha must be in (0, 4], got {alpha}")
        self.arch, self.alpha = arch, alpha
        model = getattr(torchvision.models, arch)(weights=None, width_mult=alpha)
        self.features = model.features
        self.tap_info, stage = _measure_taps(self.features)
        self._stage = stage  # tap name (aliases included) -> index into features
        self.out_taps = select_taps(self.tap_info, taps, f"TorchvisionMobileNet({arch})")
        self._requested = {name: stage[name] for name in self.out_taps}
        self._last = max(self._requested.values())

    def stages_after(self, tap: str) -> list[nn.Module]:
        """The backbone's own stages after ``tap``'s stage (``features[i + 1:]``), in order.

        The modules themselves, not copies: a Faster-RCNN box head runs them on RoI crops so their
        (ImageNet) weights are used and counted once. Their output has the last stage's channels
        (``tap_info["conv13"].channels``).
        """
        if tap not in self._stage:
            raise ValueError(f"TorchvisionMobileNet({self.arch}).stages_after: unknown tap {tap!r}; "
                             f"available taps: {list(self.tap_info)}")
        index = self._stage[tap]
        if index == len(self.features) - 1:
            raise ValueError(f"TorchvisionMobileNet({self.arch}).stages_after: {tap!r} is the last stage "
                             f"(features.{index}), no stages follow it")
        return list(self.features[index + 1:])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        stage_out: dict[int, torch.Tensor] = {}
        wanted = set(self._requested.values())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in wanted:
                stage_out[i] = x
            if i == self._last:
                break
        return {name: stage_out[i] for name, i in self._requested.items()}
