"""Image classification head: global average pool, dropout, fully connected (Table 1's last rows);
and :class:`AttributeOutputsHead`, the same pooled features feeding several named outputs (binary
attributes, regressions such as age, multi-class outputs such as gender or expression)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mnet_vision.backbones.taps import Tap


class ClassifierHead(nn.Module):
    """Average-pools one tap, applies dropout and an FC layer to ``num_classes`` logits.

    Args:
        in_taps: the backbone's requested taps; exactly one (normally ``conv13``).
        num_classes: output classes.
        dropout: drop probability before the FC layer (TF-slim MobileNet: keep 0.999).

    ``forward(features)`` takes ``{tap: (N, C, H, W)}`` and returns ``(N, num_classes)`` logits.
    """

    def __init__(self, in_taps: Mapping[str, Tap], num_classes: int, dropout: float = 0.001):
        super().__init__()
        if len(in_taps) != 1:
            raise ValueError(f"ClassifierHead takes exactly one tap, got {list(in_taps)}")
        if num_classes < 1:
            raise ValueError(f"ClassifierHead: num_classes must be >= 1, got {num_classes}")
        (self.tap, info), = in_taps.items()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = _small_linear(info.channels, num_classes)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.pool(features[self.tap]).flatten(1)
        return self.fc(self.dropout(x))


def _small_linear(in_features: int, out_features: int) -> nn.Linear:
    fc = nn.Linear(in_features, out_features)
    nn.init.normal_(fc.weight, 0, 0.01)  # small outputs at start, as torchvision's MobileNets
    nn.init.zeros_(fc.bias)
    return fc


#: the output name of the binary attributes' logits (the attribute task's, as with :class:`ClassifierHead`)
BINARY_OUTPUT = "logits"


class AttributeOutputsHead(nn.Module):
    """Average-pools one tap, applies dropout, then one FC layer per named output.

    Args:
        in_taps: the backbone's requested taps; exactly one (normally ``conv13``).
        num_attributes: K binary attributes, as K logits under ``"logits"`` (0: none).
        regression: ``name -> {"center": c, "scale": s}``: a real-valued output in its own unit (age in
            years), ``c + s * fc(x)``: the FC predicts the standardised value, at the scale of a logit,
            so a fresh head answers about ``c`` and an adaptive optimiser's steps (about its learning
            rate per weight) move the output by a fraction of ``s`` (in years, a bias from 0 would need
            thousands of steps to reach an adult's age, the weights hundreds to span the ages).
        categorical: ``name -> class names``: a multi-class output's logits, one per class.
        dropout: drop probability before the FC layers.

    ``forward(features)`` takes ``{tap: (N, C, H, W)}`` and returns ``{"logits": (N, K), <regression>:
    (N,), <categorical>: (N, classes)}`` (``"logits"`` only when K > 0).
    """

    def __init__(self, in_taps: Mapping[str, Tap], num_attributes: int = 0,
                 regression: Mapping[str, Mapping[str, float]] | None = None,
                 categorical: Mapping[str, Sequence[str]] | None = None, dropout: float = 0.001):
        super().__init__()
        if len(in_taps) != 1:
            raise ValueError(f"AttributeOutputsHead takes exactly one tap, got {list(in_taps)}")
        regression, categorical = dict(regression or {}), dict(categorical or {})
        names = [*regression, *categorical]
        if num_attributes < 0 or not (num_attributes or names):
            raise ValueError(f"AttributeOutputsHead needs num_attributes >= 1 or a regression or categorical output, "
                             f"got num_attributes={num_attributes} and no other output")
        clash = [n for n in names if n == BINARY_OUTPUT or names.count(n) > 1]
        if clash:
            raise ValueError(f"AttributeOutputsHead: output names must be distinct and not {BINARY_OUTPUT!r} "
                             f"(the binary attributes'), got {sorted(set(clash))}")
        for name, spec in regression.items():
            if set(spec) != {"center", "scale"} or not float(spec["scale"]) > 0:
                raise ValueError(f"AttributeOutputsHead: regression output {name!r} needs {{center, scale > 0}}, "
                                 f"got {dict(spec)}")
        for name, classes in categorical.items():
            if len(classes) < 2:
                raise ValueError(f"AttributeOutputsHead: categorical output {name!r} needs 2 or more class names, "
                                 f"got {list(classes)}")
        (self.tap, info), = in_taps.items()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        widths = {name: 1 for name in regression} | {name: len(classes) for name, classes in categorical.items()}
        if num_attributes:
            widths = {BINARY_OUTPUT: num_attributes} | widths
        self.fc = nn.ModuleDict({name: _small_linear(info.channels, width) for name, width in widths.items()})
        self.regression = {name: (float(spec["center"]), float(spec["scale"])) for name, spec in regression.items()}

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = self.dropout(self.pool(features[self.tap]).flatten(1))
        out = {}
        for name, fc in self.fc.items():
            if name in self.regression:
                center, scale = self.regression[name]
                out[name] = center + scale * fc(x)[:, 0]
            else:
                out[name] = fc(x)
        return out
