"""The tap interface every backbone shares: named feature maps with known channels and stride.

Heads are built from these attributes (never from hard-coded channel numbers), so a head works on
MobileNet V1 at any width and on torchvision's V2/V3 alike.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Tap:
    """One feature map a backbone can return: its channel count and its stride in input pixels."""

    channels: int
    stride: int


def select_taps(available: Mapping[str, Tap], requested: Sequence[str], owner: str) -> dict[str, Tap]:
    """Return the requested taps in request order, or raise naming the unknown ones and the choices."""
    if isinstance(requested, str):
        requested = [requested]
    if not requested:
        raise ValueError(f"{owner}: at least one tap must be requested; available: {list(available)}")
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ValueError(f"{owner}: unknown tap(s) {unknown}; available taps: {list(available)}")
    return {name: available[name] for name in requested}
