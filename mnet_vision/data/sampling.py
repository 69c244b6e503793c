"""Reproducible sample order and augmentation seeds, independent of the global RNG.

:class:`EpochSampler` yields ``(index, sample_seed)`` pairs that are a pure function of
``(seed, epoch)``; datasets seed their augmentation with ``sample_seed``. Lightning calls
``set_epoch`` on it before every epoch (and wraps it for DDP), so shuffles and augmentations are
the same whether a run went straight through or was resumed from a checkpoint, and whatever the
number of DataLoader workers.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler):
    """``(index, sample_seed)`` for every sample once per epoch, shuffled when ``shuffle``."""

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True):
        self.num_samples, self.seed, self.shuffle = num_samples, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator) if self.shuffle else torch.arange(self.num_samples)
        seeds = torch.randint(0, 2**31 - 1, (self.num_samples,), generator=generator)
        yield from zip(order.tolist(), seeds.tolist())
