"""Image classification head: global average pool, dropout, fully connected (Table 1's last rows)."""
from __future__ import annotations

from collections.abc import Mapping

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
        self.fc = nn.Linear(info.channels, num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)  # small logits at start, as torchvision's MobileNets
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.pool(features[self.tap]).flatten(1)
        return self.fc(self.dropout(x))
