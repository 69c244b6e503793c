"""Counted skips of unreadable samples.

A long run must not die on one bad image: a dataset returns a *skip record* in place of the
sample, :func:`collate_skipping` drops it from the batch and lists its path under
``batch["skipped"]``, and :class:`mnet_vision.training.callbacks.SkippedSamplesReport` counts and
reports the skips at the end of each epoch. This works across DataLoader worker processes,
since the record travels with the batch. ``strict`` datasets raise instead.
"""
from __future__ import annotations

import logging
from typing import Any

from torch.utils.data import default_collate

from mnet_vision.images import MAX_PIXELS, ImageReadError, read_rgb
from mnet_vision.data.transforms import apply_seeded

log = logging.getLogger(__name__)

SKIPPED = "skipped"


def skip_record(path: str, error: Exception) -> dict[str, Any]:
    """What a dataset returns for a sample it could not read (non-strict mode)."""
    log.warning("skipping unreadable sample %s: %s", path, error)
    return {SKIPPED: path, "error": str(error)}


def read_or_skip(path: str, transform, seed: int, strict: bool, max_pixels: int | None = MAX_PIXELS) -> Any:
    """The image at ``path`` through ``transform`` seeded with ``seed`` (``apply_seeded``; no
    transform: the ``uint8`` array); if it cannot be read (or has more than ``max_pixels`` pixels,
    see :func:`read_rgb`), a skip record, or the error when ``strict``.
    Callers tell the two apart with ``isinstance(result, dict)``."""
    try:
        image = read_rgb(path, max_pixels)
    except ImageReadError as err:
        if strict:
            raise
        return skip_record(path, err)
    return image if transform is None else apply_seeded(transform, seed, image=image)["image"]


def collate_skipping(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` over the readable samples; ``batch["skipped"]`` lists the paths of the
    others. A batch whose samples were all skipped has no other keys."""
    good = [s for s in samples if SKIPPED not in s]
    batch: dict[str, Any] = default_collate(good) if good else {}
    batch[SKIPPED] = [s[SKIPPED] for s in samples if SKIPPED in s]
    return batch
