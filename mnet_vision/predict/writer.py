"""The prediction writer: each chunk's shard written as its batch ends, and the run's summary once
every process is done."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch.distributed as dist
from lightning.pytorch.callbacks import BasePredictionWriter

from mnet_vision.predict.shards import summarize, write_shard

log = logging.getLogger(__name__)


class ShardWriter(BasePredictionWriter):
    """Writes chunk ``c``'s prediction as shard ``r{rank}-c{c}`` under ``out``
    (:func:`~mnet_vision.predict.shards.write_shard`) when its last part is predicted (a process
    gets a chunk's parts one after the other); at the end of the run the processes meet, and
    the global-zero one writes ``<out>/predict.json`` (:func:`~mnet_vision.predict.shards.summarize`)
    (``source``: what the input was) with this run's ``this_run``: the chunks run, photos, seconds,
    photos/s overall and per process."""

    def __init__(self, out: str | Path, kind: str, model: Mapping[str, Any], chunks: int,
                 source: Mapping[str, Any] | None = None):
        super().__init__(write_interval="batch")
        self.out, self.kind, self.model, self.chunks = Path(out), kind, dict(model), chunks
        self.source = dict(source or {})
        self.chunks_run: list[int] = []
        self.parts: list[dict[str, Any]] = []  # the predicted parts of the chunk in progress
        self.photos = 0
        self.start = 0.0

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.chunks_run, self.parts, self.photos, self.start = [], [], 0, time.perf_counter()

    def write_on_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, prediction: Any,
                           batch_indices: Any, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        if prediction["chunk"] is None:  # an empty item: this process had no chunk to do
            return
        if self.parts and self.parts[0]["chunk"] != prediction["chunk"]:
            raise RuntimeError(f"chunk {prediction['chunk']} began before chunk {self.parts[0]['chunk']} was complete "
                               f"({len(self.parts)} of its {self.parts[0]['parts']} parts): the items are out of order")
        self.parts.append(prediction)
        if len(self.parts) < prediction["parts"]:
            return
        parts, self.parts = self.parts, []
        paths = [p for part in parts for p in part["paths"]]
        unreadable = [u for part in parts for u in part["unreadable"]]
        array = None if parts[0]["array"] is None else np.concatenate([part["array"] for part in parts])
        records = None if parts[0]["records"] is None else [r for part in parts for r in part["records"]]
        write_shard(self.out, trainer.global_rank, prediction["chunk"], self.kind, self.model, paths, unreadable,
                    array, records)
        self.chunks_run.append(prediction["chunk"])
        self.photos += len(paths) + len(unreadable)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        mine = {"rank": trainer.global_rank, "chunks": self.chunks_run, "photos": self.photos,
                "seconds": time.perf_counter() - self.start}
        every = [mine]
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            every = [None] * trainer.world_size
            dist.all_gather_object(every, mine)  # also the barrier: every shard of this run is written
        if not trainer.is_global_zero:
            return
        photos = sum(e["photos"] for e in every)
        seconds = max(e["seconds"] for e in every)
        this_run = {"processes": len(every), "chunks_run": sorted(c for e in every for c in e["chunks"]),
                    "photos": photos, "seconds": round(seconds, 3),
                    "photos_per_second": round(photos / seconds, 2) if seconds > 0 else 0.0,
                    "per_process": [{"rank": e["rank"], "photos": e["photos"], "seconds": round(e["seconds"], 3),
                                     "photos_per_second": round(e["photos"] / e["seconds"], 2) if e["seconds"] > 0
                                     else 0.0} for e in every]}
        path = summarize(self.out, self.chunks, this_run, self.kind, self.model, self.source)
        log.info("predicted %d photo(s) in %d chunk(s) on %d process(es): %s", photos, len(this_run["chunks_run"]),
                 len(every), path)
