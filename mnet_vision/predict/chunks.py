"""The pending chunks of a run as a Lightning DataModule, each process holding its own share: one
DataLoader item (one batch, one model call) per part of ``batch`` photos of a chunk, decoded in the
loader's workers. A chunk's parts come one after the other, and the writer writes the chunk's shard
when its last part is done (:class:`~mnet_vision.predict.writer.ShardWriter`); parts rather than whole
chunks as items keep the decoded photos in memory to ``batch`` per item in flight, whatever ``chunk_size``.

A chunk is pending when no complete shard holds it (:func:`mnet_vision.predict.shards.check_existing`),
so a rerun does only what is left. Process ``rank`` of ``world`` takes ``pending[rank::world]``, no
chunk twice: Lightning's ``DistributedSampler`` would pad the shorter shares with repeated items
(``use_distributed_sampler=False``). A process left with nothing gets one empty item, so that every
process runs the loop and its end-of-run hooks, where the processes meet to sum the run up.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset

from mnet_vision.images import MAX_PIXELS, ImageReadError, read_rgb
from mnet_vision.predict.shards import remove_incomplete

log = logging.getLogger(__name__)

# (chunk number, part number, the chunk's number of parts, the part's photo paths), or None: an empty item
Item = tuple[int, int, int, list[str]] | None


def shares(pending: Sequence[int], world: int) -> list[list[int]]:
    """Each process's chunks: ``pending[rank::world]``."""
    return [list(pending[rank::world]) for rank in range(world)]


def part_items(chunks: Sequence[Sequence[str]], share: Sequence[int], batch: int) -> list[Item]:
    """The items of the chunks ``share``: each chunk's photos in parts of up to ``batch``, in order;
    ``[None]`` (one empty item) for an empty share."""
    items: list[Item] = []
    for chunk in share:
        paths = list(chunks[chunk])
        parts = max(1, -(-len(paths) // batch))
        items += [(chunk, k, parts, paths[k * batch:(k + 1) * batch]) for k in range(parts)]
    return items or [None]


def read_part(item: Item, max_pixels: int | None = MAX_PIXELS) -> dict[str, Any]:
    """An item's batch: ``{"chunk", "part", "parts", "paths" (readable, in order), "arrays" ((H, W, 3)
    uint8 each), "unreadable": [{"path", "reason"}]}``; an unreadable photo is logged and listed, never
    fatal. ``chunk`` is None for an empty item."""
    batch: dict[str, Any] = {"chunk": None, "part": 0, "parts": 0, "paths": [], "arrays": [], "unreadable": []}
    if item is None:
        return batch
    batch["chunk"], batch["part"], batch["parts"], paths = item
    for path in paths:
        try:
            batch["arrays"].append(read_rgb(path, max_pixels))
            batch["paths"].append(path)
        except ImageReadError as err:
            log.warning("skipping %s", err)
            batch["unreadable"].append({"path": path, "reason": err.reason})
    return batch


class PartDataset(Dataset):
    """The batches of :func:`read_part`, one per item of ``items``."""

    def __init__(self, items: Sequence[Item], max_pixels: int | None = MAX_PIXELS):
        self.items, self.max_pixels = list(items), max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return read_part(self.items[index], self.max_pixels)


def _as_is(item: dict[str, Any]) -> dict[str, Any]:
    # batch_size=None hands each item to collate_fn alone; the default would turn the arrays into tensors
    return item


class PendingChunks(pl.LightningDataModule):
    """The chunks of ``chunks`` not in ``done``, this process's share of them (:func:`shares`) in parts
    of ``batch`` photos (:func:`part_items`), read by ``workers`` DataLoader worker processes (0: in
    the main process).

    The pending list is the global-zero process's, broadcast in :meth:`setup`: every process
    cuts the same shares even if it looked at the shards at another moment. Before it broadcasts,
    while no process can have written yet, it removes what killed writers left under ``out``
    (:func:`~mnet_vision.predict.shards.remove_incomplete`)."""

    def __init__(self, out: str | Path, chunks: Sequence[Sequence[Path]], done: set[int], batch: int = 32,
                 workers: int = 2, max_pixels: int | None = MAX_PIXELS):
        super().__init__()
        if int(workers) < 0:
            raise ValueError(f"workers={workers}: expected 0 (read in the main process) or more worker processes")
        if int(batch) < 1:
            raise ValueError(f"batch={batch}: expected 1 or more photos per model call")
        self.batch = int(batch)
        self.out = Path(out)
        self.chunks = [[str(p) for p in chunk] for chunk in chunks]
        self.pending = [c for c in range(len(chunks)) if c not in done]
        self.workers, self.max_pixels = int(workers), max_pixels
        self.share: list[int] = []

    def setup(self, stage: str) -> None:
        if self.trainer.is_global_zero:
            removed = remove_incomplete(self.out)
            if removed:
                log.info("removed %d file(s) of killed shard writes: %s", len(removed), [p.name for p in removed[:5]])
        pending = self.trainer.strategy.broadcast(self.pending, src=0)
        self.share = shares(pending, self.trainer.world_size)[self.trainer.global_rank]
        log.info("process %d of %d: %d of %d pending chunk(s)", self.trainer.global_rank, self.trainer.world_size,
                 len(self.share), len(pending))

    def predict_dataloader(self) -> DataLoader:
        items = part_items(self.chunks, self.share, self.batch)
        return DataLoader(PartDataset(items, self.max_pixels), batch_size=None, shuffle=False,
                          num_workers=self.workers, collate_fn=_as_is, persistent_workers=False)
