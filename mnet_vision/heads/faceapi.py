"""The fully connected ends of face-api's nets, on a backbone tap (``in_taps``, one map):

- :class:`LandmarkHead` (``face_landmark_68_model``): 7x7/2 average pool, fc 256 -> 136, the 68 points
  ``(x, y)`` in fractions of the (square) input;
- :class:`ExpressionHead` (``face_expression_model``): the same pool, fc 256 -> 7, softmax;
- :class:`AgeGenderHead` (``age_gender_model``): the same pool, fc 512 -> 1 (age in years) and
  fc 512 -> 2 (softmax: male, female);
- :class:`DescriptorHead` (``face_recognition_model``): spatial mean, bias-free fc 256 -> 128.

face-api's 7x7 ``VALID`` pool with stride 2 turns the 7x7 map of a 112x112 input into one vector; on
another input size the flattened width no longer matches the fc, which is refused naming the size.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.backbones.taps import Tap

#: face-api's ``FACE_EXPRESSION_LABELS``, in its output order.
EXPRESSIONS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
#: the gender output's order (face-api: ``probMale = gender[0]``).
GENDERS = ("male", "female")


def _one_tap(in_taps: Mapping[str, Tap], owner: str) -> tuple[str, Tap]:
    if len(in_taps) != 1:
        raise ValueError(f"{owner} takes one tap, got {list(in_taps)}")
    return next(iter(in_taps.items()))


def _pooled(features: torch.Tensor, in_features: int, owner: str) -> torch.Tensor:
    """face-api's ``avgPool(x, [7, 7], [2, 2], 'valid')`` flattened to ``(N, C)``."""
    if min(features.shape[-2:]) < 7:
        raise ValueError(f"{owner}: a {tuple(features.shape[-2:])} map is smaller than the 7x7 pool "
                         f"(face-api's nets take 112x112 inputs)")
    pooled = F.avg_pool2d(features, 7, 2).flatten(1)
    if pooled.shape[1] != in_features:
        raise ValueError(f"{owner}: the pooled {tuple(features.shape[-2:])} map gives {pooled.shape[1]} features, "
                         f"the fc takes {in_features} (face-api's nets take 112x112 inputs)")
    return pooled


class LandmarkHead(nn.Module):
    """``{tap: (N, 256, 7, 7)}`` -> ``(N, 68, 2)`` landmarks ``(x, y)`` in fractions of the input square
    (times the input side: pixels of the 112x112 input); face-api's raw net output, before its
    ``postProcess`` maps them onto the unpadded image."""

    def __init__(self, in_taps: Mapping[str, Tap], num_points: int = 68):
        super().__init__()
        self.tap, tap = _one_tap(in_taps, "LandmarkHead")
        self.fc = nn.Linear(tap.channels, 2 * num_points)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        out = self.fc(_pooled(features[self.tap], self.fc.in_features, "LandmarkHead"))
        return out.view(out.shape[0], -1, 2)


class ExpressionHead(nn.Module):
    """``{tap: (N, 256, 7, 7)}`` -> ``(N, 7)`` probabilities of :data:`EXPRESSIONS`."""

    def __init__(self, in_taps: Mapping[str, Tap], num_classes: int = len(EXPRESSIONS)):
        super().__init__()
        self.tap, tap = _one_tap(in_taps, "ExpressionHead")
        self.fc = nn.Linear(tap.channels, num_classes)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.softmax(self.fc(_pooled(features[self.tap], self.fc.in_features, "ExpressionHead")), dim=1)


class AgeGenderHead(nn.Module):
    """``{tap: (N, 512, 7, 7)}`` -> ``{"age": (N,) years, "gender": (N, 2) probabilities of`` :data:`GENDERS` ``}``."""

    def __init__(self, in_taps: Mapping[str, Tap]):
        super().__init__()
        self.tap, tap = _one_tap(in_taps, "AgeGenderHead")
        self.age = nn.Linear(tap.channels, 1)
        self.gender = nn.Linear(tap.channels, len(GENDERS))

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        pooled = _pooled(features[self.tap], self.age.in_features, "AgeGenderHead")
        return {"age": self.age(pooled)[:, 0], "gender": torch.softmax(self.gender(pooled), dim=1)}


class DescriptorHead(nn.Module):
    """``{tap: (N, 256, h, w)}`` -> ``(N, 128)`` face descriptors (not normalised: face-api compares
    them by Euclidean distance, 0.6 the usual same-person threshold)."""

    def __init__(self, in_taps: Mapping[str, Tap], embedding_dim: int = 128):
        super().__init__()
        self.tap, tap = _one_tap(in_taps, "DescriptorHead")
        self.fc = nn.Linear(tap.channels, embedding_dim, bias=False)

    def forward(self, features: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.fc(features[self.tap].mean(dim=(2, 3)))
