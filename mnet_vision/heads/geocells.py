"""PlaNet's geo-cell classifier: one softmax over earth cells per partition, on the pooled features.

With several partitions (coarsest first, the last the finest, as TIB GeoEstimation's
coarse/middle/fine), a photo's score for a fine cell is the product of the probabilities that
every partition gives the cell containing it: the hierarchical prediction. The cells each output
stands for travel in the head's buffers (S2 ids, mean photo locations, each fine cell's ancestors),
so a checkpoint locates photos without the partition files it was trained with.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mnet_vision.backbones.taps import Tap
from mnet_vision.checkpoints import CheckpointMismatchError
from mnet_vision.geo.cells import GeoCellPartition, ancestor_index
from mnet_vision.geo.s2 import cell_centers, ids_to_tokens


class GeoCellHead(nn.Module):
    """Average-pools one tap, applies dropout and one FC layer per partition.

    Args:
        in_taps: the backbone's requested taps; exactly one (normally ``conv13``).
        num_cells: cells per partition, coarsest first; the last partition is the one photos are
            located in.
        dropout: drop probability before the FC layers.

    ``forward(features)`` returns a list of ``(N, num_cells[p])`` logits, one per partition.
    """

    def __init__(self, in_taps: Mapping[str, Tap], num_cells: Sequence[int], dropout: float = 0.001):
        super().__init__()
        if len(in_taps) != 1:
            raise ValueError(f"GeoCellHead takes exactly one tap, got {list(in_taps)}")
        self.num_cells = [int(n) for n in num_cells]
        if not self.num_cells or min(self.num_cells) < 1:
            raise ValueError(f"GeoCellHead: num_cells must list at least one partition of >= 1 cells, got {num_cells}")
        (self.tap, info), = in_taps.items()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifiers = nn.ModuleList(nn.Linear(info.channels, n) for n in self.num_cells)
        for fc in self.classifiers:
            nn.init.normal_(fc.weight, 0, 0.01)
            nn.init.zeros_(fc.bias)
        # Filled by set_partitions when training starts; restored with the weights from a checkpoint.
        for p, n in enumerate(self.num_cells):
            self.register_buffer(f"cell_ids_{p}", torch.zeros(n, dtype=torch.int64))  # S2 ids, uint64 bits
            self.register_buffer(f"cell_points_{p}", torch.zeros(n, 2, dtype=torch.float64))  # mean lat, lon
            self.register_buffer(f"cell_counts_{p}", torch.zeros(n, dtype=torch.int64))  # training photos
        self.register_buffer("ancestors", torch.zeros(self.num_cells[-1], len(self.num_cells), dtype=torch.int64))

    def forward(self, features: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        x = self.dropout(self.pool(features[self.tap]).flatten(1))
        return [fc(x) for fc in self.classifiers]

    def cell_points(self, p: int = -1) -> torch.Tensor:
        """``(C_p, 2)`` float64 mean photo location (lat, lon) of partition ``p``'s cells."""
        return getattr(self, f"cell_points_{p % len(self.num_cells)}")

    def cell_counts(self, p: int = -1) -> torch.Tensor:
        """``(C_p,)`` training photos in partition ``p``'s cells."""
        return getattr(self, f"cell_counts_{p % len(self.num_cells)}")

    def cell_ids(self, p: int = -1) -> np.ndarray:
        """Partition ``p``'s S2 cell ids (uint64)."""
        return getattr(self, f"cell_ids_{p % len(self.num_cells)}").cpu().numpy().view(np.uint64)

    def partition(self, p: int = -1, source: str = "checkpoint") -> GeoCellPartition:
        """Partition ``p`` as the head holds it (centres recomputed from the cell ids)."""
        p = p % len(self.num_cells)
        ids = self.cell_ids(p)
        points = self.cell_points(p).cpu().numpy()
        lat_center, lon_center = cell_centers(ids)
        return GeoCellPartition(ids, self.cell_counts(p).cpu().numpy(), points[:, 0], points[:, 1],
                                lat_center, lon_center, f"{source} partition {p}")

    @property
    def has_partitions(self) -> bool:
        return bool((self.cell_ids_0 != 0).all())  # 0 is no S2 cell

    def check_state_dict(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Called by :func:`mnet_vision.checkpoints.load_matching`: a checkpoint with other cell counts
        than this head's is a ``CheckpointMismatchError`` saying so."""
        biases = {int(k.split(".")[1]): v for k, v in state.items()
                  if k.startswith("classifiers.") and k.endswith(".bias")}
        found = [int(biases[p].shape[0]) for p in sorted(biases)]
        if not found or found == self.num_cells:  # nothing of ours to explain, or nothing to explain
            return
        raise CheckpointMismatchError(f"{source} was trained on partitions of {found} cells, but this model is built "
                                      f"for data.num_cells={self.num_cells}: use the checkpoint with the partitions "
                                      f"it was trained on (it holds their cells) and their counts")

    def set_partitions(self, partitions: Sequence[GeoCellPartition]) -> None:
        """Take the cells of ``partitions`` (coarsest first); when the head already has cells (from
        a checkpoint), check the files are the ones it was trained with instead. Errors name the file."""
        if len(partitions) != len(self.num_cells):
            raise ValueError(f"the model has {len(self.num_cells)} cell classifier(s) (data.num_cells="
                             f"{self.num_cells}) but {len(partitions)} partition file(s) were given: "
                             f"{[p.source for p in partitions]}")
        for p, (partition, n) in enumerate(zip(partitions, self.num_cells)):
            if len(partition) != n:
                raise ValueError(f"{partition.source} has {len(partition)} cells but the model's classifier {p} has "
                                 f"{n} outputs (data.num_cells={self.num_cells}); a checkpoint is used with the "
                                 f"partitions it was trained on")
        if self.has_partitions:
            for p, partition in enumerate(partitions):
                differ = np.flatnonzero(self.cell_ids(p) != partition.cell_ids)
                if len(differ):
                    k = int(differ[0])
                    raise ValueError(f"{partition.source} is not the partition this model was trained with: class {k} "
                                     f"is cell {partition.tokens[k]} there but "
                                     f"{ids_to_tokens(self.cell_ids(p)[k:k + 1])[0]} in the "
                                     f"model ({len(differ)} of {len(partition)} classes differ)")
            return
        fine = partitions[-1]
        for p, partition in enumerate(partitions):
            getattr(self, f"cell_ids_{p}").copy_(torch.from_numpy(partition.cell_ids.astype(np.uint64).view(np.int64)))
            points = np.stack([partition.lat_mean, partition.lon_mean], axis=1)
            getattr(self, f"cell_points_{p}").copy_(torch.from_numpy(points))
            getattr(self, f"cell_counts_{p}").copy_(torch.from_numpy(partition.counts.astype(np.int64)))
            self.ancestors[:, p] = torch.from_numpy(ancestor_index(fine, partition) if p < len(partitions) - 1
                                                    else np.arange(len(fine)))

    def log_probabilities(self, logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """:func:`hierarchical_log_probabilities` of this head's logits over its fine cells."""
        return hierarchical_log_probabilities(logits, self.ancestors)


def hierarchical_log_probabilities(logits: Sequence[torch.Tensor], ancestors: torch.Tensor) -> torch.Tensor:
    """``(N, C_fine)`` log-probabilities of the finest partition's cells from every partition's
    ``(N, C_p)`` logits: with one partition its log-softmax; with several the hierarchical product
    (each fine cell's probability times those of its ancestors, ``ancestors`` ``(C_fine, P)`` their
    classes), renormalised over the fine cells so that they sum to one."""
    if len(logits) == 1:
        return logits[0].float().log_softmax(-1)
    scores = sum(part.float().log_softmax(-1)[:, ancestors[:, p]] for p, part in enumerate(logits))
    return scores.log_softmax(-1)


def crop_log_probabilities(logits: Sequence[torch.Tensor], crops: int) -> list[torch.Tensor]:
    """Test-time multi-crop (TIB GeoEstimation's FiveCrop): per partition, each cell's highest
    log-probability over a photo's ``crops`` consecutive rows, ``(N * crops, C_p)`` logits to
    ``(N, C_p)`` scores (no longer summing to one: :func:`hierarchical_log_probabilities` and the
    cross-entropy renormalise, which leaves the ranking of cells as TIB's unnormalised maxima give it)."""
    return [part.float().log_softmax(-1).unflatten(0, (-1, crops)).amax(1) for part in logits]


def located_logits(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """``model``'s per-partition scores of ``(N, 3, S, S)`` images (its logits), or of ``(N, K, 3, S, S)``
    crops of each photo (:func:`crop_log_probabilities`)."""
    if images.ndim == 5:
        return crop_log_probabilities(model(images.flatten(0, 1)), images.shape[1])
    return model(images)
