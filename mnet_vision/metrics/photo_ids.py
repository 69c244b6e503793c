"""Per-photo metric states gathered from processes that scored some photos twice.

Lightning's ``DistributedSampler`` pads a split to a multiple of the process count by handing its
first photos out again, so a cat state gathered from every process holds those photos twice. Each
sample carries its ``index`` in the split; metrics keep one row per index (:class:`PhotoValues`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def check_photo_ids(photo_ids: torch.Tensor, count: int) -> None:
    """``photo_ids`` must be one id per scored photo."""
    if photo_ids.shape != (count,):
        raise ValueError(f"photo_ids must give one id per photo: shape {tuple(photo_ids.shape)} for {count} photos")


def once_each(photo_ids: torch.Tensor) -> np.ndarray:
    """Positions of each id's first row, in id order: the rows to keep so that every photo counts once
    (and the result does not depend on the order the processes' batches came in)."""
    return np.unique(photo_ids.cpu().numpy(), return_index=True)[1]


class PhotoValues(Metric):
    """Named per-photo values gathered over batches and processes: ``update(name, values,
    photo_ids)``; ``compute() -> {name: (N,) float64 array}`` for the names updated, in photo id
    order, each photo once."""

    full_state_update = False

    def __init__(self, names: Sequence[str]):
        super().__init__()
        self.names = list(names)
        for name in self.names:
            self.add_state(f"values_{name}", default=[], dist_reduce_fx="cat")
            self.add_state(f"ids_{name}", default=[], dist_reduce_fx="cat")

    def update(self, name: str, values: torch.Tensor, photo_ids: torch.Tensor) -> None:
        check_photo_ids(photo_ids, len(values))
        getattr(self, f"values_{name}").append(values.double())
        getattr(self, f"ids_{name}").append(photo_ids.long())

    def compute(self) -> dict[str, np.ndarray]:
        gathered = {}
        for name in self.names:
            values, ids = getattr(self, f"values_{name}"), getattr(self, f"ids_{name}")
            if len(values):  # a list of batches; one tensor once synced across processes
                gathered[name] = dim_zero_cat(values).cpu().numpy()[once_each(dim_zero_cat(ids))]
        return gathered
