"""Reproducible sample order and augmentation seeds, independent of the global RNG.

:class:`EpochSampler` yields ``(index, sample_seed)`` pairs that are a pure function of
``(seed, epoch)``; datasets seed their augmentation with ``sample_seed``. Lightning calls
``set_epoch`` on it before every epoch (and wraps it for DDP), so shuffles and augmentations are
the same whether a run went straight through or was resumed from a checkpoint, and whatever the
number of DataLoader workers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


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


class SeededLoadersDataModule(pl.LightningDataModule):
    """Base of our DataModules: train/val/test loaders over ``train_set``/``val_set``/``test_set``
    (made in ``setup``), each with an :class:`EpochSampler` and its own generator, so loading never
    draws from the global torch RNG, which the checkpointed RNG state (dropout) must find untouched
    after a resume.

    Subclasses set ``collate`` (how samples become a batch) and ``drop_last_train``.
    """

    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    drop_last_train = False
    batch_size: int
    num_workers: int
    seed: int

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          sampler=EpochSampler(len(dataset), self.seed, shuffle), collate_fn=type(self).collate,
                          generator=torch.Generator().manual_seed(self.seed),
                          drop_last=shuffle and self.drop_last_train and len(dataset) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
