"""Reproducible sample order and augmentation seeds, independent of the global RNG.

:class:`EpochSampler` yields ``(index, sample_seed)`` pairs that are a pure function of
``(seed, epoch)``; datasets seed their augmentation with ``sample_seed``. Lightning calls
``set_epoch`` on it before every epoch (and wraps it for DDP), so shuffles and augmentations are
the same whether a run went straight through or was resumed from a checkpoint, and whatever the
number of DataLoader workers. :class:`PKBatchSampler` builds metric-learning batches (P identities
x K images) on top of it.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The private generator of one epoch's draws: a pure function of ``(seed, epoch)``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


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
        generator = _epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.num_samples, generator=generator) if self.shuffle else torch.arange(self.num_samples)
        seeds = torch.randint(0, 2**31 - 1, (self.num_samples,), generator=generator)
        yield from zip(order.tolist(), seeds.tolist())


class PKBatchSampler(BatchSampler):
    """FaceNet-style metric-learning batches: ``P = batch_size / images_per_identity`` distinct
    identities, ``K = images_per_identity`` samples of each, identity after identity
    (``labels`` of a batch: ``[a]*K + [b]*K + ...``). Items are ``(index, augmentation_seed)``
    as :class:`EpochSampler` yields them.

    Only identities with at least 2 samples are drawn, so every sample of a batch has a positive;
    identities with a single sample never appear (they can still be negatives elsewhere, e.g. in
    a softmax over all identities). An identity with ``n < K`` samples gives all ``n`` once and
    fills the other ``K - n`` slots by drawing from them with replacement (each repeat gets its
    own augmentation seed, so it is another view); with ``n >= K`` it gives ``K`` distinct ones.

    One epoch has ``max(1, len(labels) // batch_size)`` batches. Each batch is a pure function
    of the ``(batch number, batch seed)`` pair the ``sampler`` yields, by default an unshuffled
    :class:`EpochSampler` over the batch numbers, so batches depend only on ``(seed, epoch)``,
    never on the global RNG. Lightning calls ``sampler.set_epoch`` every epoch; under DDP it
    wraps ``sampler`` in a ``DistributedSamplerWrapper`` and re-creates this sampler with it, so
    each process draws its own share of the epoch's batches (whole PK batches per process).
    """

    def __init__(self, labels: Sequence[int], batch_size: int, images_per_identity: int, seed: int = 0,
                 sampler: Sampler | None = None):
        if images_per_identity < 2 or batch_size % images_per_identity:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of images_per_identity "
                             f"({images_per_identity}), which must be at least 2 (each sample needs a positive)")
        by_identity: dict[int, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_identity[int(label)].append(index)
        #: sample indices of each identity with at least 2 samples, in label order
        self.pools = [torch.tensor(ix) for _, ix in sorted(by_identity.items()) if len(ix) >= 2]
        self.identities_per_batch = batch_size // images_per_identity
        self.images_per_identity = images_per_identity
        if not 2 <= self.identities_per_batch <= len(self.pools):
            raise ValueError(f"a batch of {batch_size} with {images_per_identity} images per identity holds "
                             f"{self.identities_per_batch} identities; it needs at least 2 (negatives) and at most "
                             f"the {len(self.pools)} identities with 2 or more images")
        if sampler is None:
            sampler = EpochSampler(max(1, len(labels) // batch_size), seed, shuffle=False)
        super().__init__(sampler, batch_size, drop_last=False)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        k = self.images_per_identity
        for _, batch_seed in self.sampler:
            generator = torch.Generator().manual_seed(batch_seed)
            batch = []
            for identity in torch.randperm(len(self.pools), generator=generator)[:self.identities_per_batch]:
                pool = self.pools[identity]
                picks = pool[torch.randperm(len(pool), generator=generator)[:k]]
                if len(pool) < k:
                    picks = torch.cat([picks, pool[torch.randint(len(pool), (k - len(pool),), generator=generator)]])
                batch += picks.tolist()
            seeds = torch.randint(0, 2**31 - 1, (len(batch),), generator=generator).tolist()
            yield list(zip(batch, seeds))
