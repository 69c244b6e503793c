"""Batch prediction over a photo collection on Lightning's ``Trainer.predict``: what ``tools/predict.py`` runs."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

from mnet_vision.images import MAX_PIXELS
from mnet_vision.outputs import check_writable
from mnet_vision.predict.chunks import PendingChunks
from mnet_vision.predict.module import ChunkPredictor
from mnet_vision.predict.predictors import model_info
from mnet_vision.predict.shards import check_existing
from mnet_vision.predict.sources import chunked, photo_paths
from mnet_vision.predict.writer import ShardWriter
from mnet_vision.textfiles import read_json

# One process on the CPU, Lightning's progress bar: what a plain call runs (the tool's conf/trainer/ decides there).
DEFAULT_TRAINER = {"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", "devices": 1}


def predict_photos(kind: str, model: str | Path, source: str | Path, out: str | Path, images: str | Path | None = None,
                   chunk_size: int = 256, batch: int = 32, workers: int = 2, max_pixels: int | None = MAX_PIXELS,
                   score: float = 0.3, top_k: int = 5, fast: bool = True, threads: int | None = None,
                   trainer: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Predict ``kind`` (embeddings, detections, attributes, geolocation) for every photo of
    ``source`` (a folder tree, a ``.txt``/``.csv`` list, a COCO json: :func:`~mnet_vision.predict.sources.photo_paths`)
    with ``model`` (a checkpoint of the kind's task or its ``.onnx``), writing shards of ``chunk_size``
    photos under ``out`` (:mod:`mnet_vision.predict.shards`) and ``out/predict.json``.

    Resumable: the chunks whose shards are complete are skipped; shards of another kind, model,
    settings or input are refused (``ValueError`` naming the file) before any work. ``trainer``:
    the Trainer's config (``_target_`` and arguments, e.g. ``strategy: ddp, devices: 2`` for two
    processes); the callbacks, logger, checkpointing and sampler are this function's. ``batch``:
    photos per model call (one DataLoader item, so at most ``batch`` decoded photos per item in
    flight); ``workers``: DataLoader processes decoding photos. Returns the summary
    (predict.json's content) in the global-zero process, None in the others.
    """
    photos = photo_paths(source, images)
    chunks = chunked(photos.paths, chunk_size)
    info = model_info(kind, model, score, top_k)
    check_writable(out)
    done = check_existing(out, kind, info, chunks)
    writer = ShardWriter(out, kind, info, len(chunks), {"input": photos.source, "photos": len(photos.paths),
                                                         "duplicates": photos.duplicates, "chunk_size": chunk_size})
    module = ChunkPredictor(kind, model, score, top_k, fast, threads)
    data = PendingChunks(out, chunks, done, batch, workers, max_pixels)
    # batch prediction syncs nothing between processes: no SyncBatchNorm (trainer=ddp's default is for training)
    runner = instantiate(dict(trainer or DEFAULT_TRAINER), callbacks=[writer], logger=False, enable_checkpointing=False,
                         use_distributed_sampler=False, sync_batchnorm=False)
    with warnings.catch_warnings():
        # one item per chunk (batch_size=None) has no batch sampler to read indices from; the shards need none
        warnings.filterwarnings("ignore", message="Couldn't infer the batch indices")
        runner.predict(module, datamodule=data, return_predictions=False)
    if not runner.is_global_zero:
        return None
    return read_json(Path(out) / "predict.json", "prediction summary")
