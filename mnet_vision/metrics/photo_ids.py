"""Per-photo metric states gathered from processes that scored some photos twice.

Lightning's ``DistributedSampler`` pads a split to a multiple of the process count by handing its
first photos out again, so a cat state gathered from every process holds those photos twice. Each
sample carries its ``index`` in the split; metrics keep one row per index.
"""
from __future__ import annotations

import numpy as np
import torch


def check_photo_ids(photo_ids: torch.Tensor, count: int) -> None:
    """``photo_ids`` must be one id per scored photo."""
    if photo_ids.shape != (count,):
        raise ValueError(f"photo_ids must give one id per photo: shape {tuple(photo_ids.shape)} for {count} photos")


def once_each(photo_ids: torch.Tensor) -> np.ndarray:
    """Positions of each id's first row, in id order: the rows to keep so that every photo counts once
    (and the result does not depend on the order the processes' batches came in)."""
    return np.unique(photo_ids.cpu().numpy(), return_index=True)[1]
