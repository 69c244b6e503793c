"""FaceNet-style embedding head: pooled features -> Linear -> BatchNorm1d -> L2-normalise."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.backbones.taps import Tap


class EmbeddingHead(nn.Module):
    """Average-pools one tap and maps it to a unit-length ``dim``-D embedding.

    The layout is FaceNet's (and facenet-pytorch's ``last_linear -> last_bn -> normalize``): a
    bias-free Linear (the BatchNorm after it has the bias), BatchNorm1d, then L2 normalisation, so
    squared distances lie in [0, 4] and equal ``2 - 2 cos``.

    Args:
        in_taps: the backbone's requested taps; exactly one (normally ``conv13``).
        dim: embedding size (FaceNet: 128).
        dropout: drop probability on the pooled features (facenet-pytorch uses 0.6 for its large
            model; our small students train without).

    ``forward(features)`` takes ``{tap: (N, C, H, W)}`` and returns ``(N, dim)`` unit vectors.
    """

    def __init__(self, in_taps: Mapping[str, Tap], dim: int = 128, dropout: float = 0.0):
        super().__init__()
        if len(in_taps) != 1:
            raise ValueError(f"EmbeddingHead takes exactly one tap, got {list(in_taps)}")
        if dim < 1:
            raise ValueError(f"EmbeddingHead: dim must be >= 1, got {dim}")
        (self.tap, info), = in_taps.items()
        self.dim = dim
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(info.channels, dim, bias=False)
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        x = self.pool(features[self.tap]).flatten(1)
        # normalise in fp32: a half-precision norm of 128 squares loses the unit length
        return F.normalize(self.bn(self.linear(self.dropout(x))).float(), p=2, dim=1)
