"""The LightningModule of batch prediction: a :class:`~mnet_vision.predict.predictors.Predictor` built
on the process's device at setup, run over one chunk per ``predict_step``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

from mnet_vision.predict.predictors import Predictor


class ChunkPredictor(pl.LightningModule):
    """Predicts a chunk's photos (:func:`mnet_vision.predict.chunks.read_chunk`'s batch) in model
    batches of ``batch``; see :class:`~mnet_vision.predict.predictors.Predictor` for the arguments.
    The model is loaded in :meth:`setup`, in each process, on the device Lightning gave it."""

    def __init__(self, kind: str, model: str | Path, batch: int = 32, score: float = 0.3, top_k: int = 5,
                 fast: bool = True, threads: int | None = None):
        super().__init__()
        if int(batch) < 1:
            raise ValueError(f"batch={batch}: expected 1 or more photos per model call")
        self.kind, self.model_path, self.batch = kind, model, int(batch)
        self.options = {"score": score, "top_k": top_k, "fast": fast, "threads": threads}
        self.predictor: Predictor | None = None

    def setup(self, stage: str) -> None:
        if self.predictor is None:
            self.predictor = Predictor(self.kind, self.model_path, str(self.trainer.strategy.root_device),
                                       **self.options)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """``{"chunk", "paths", "unreadable", "array" ((N, D) float32 or None), "records" (list or None)}``."""
        arrays, records = [], []
        paths, images = batch["paths"], batch["arrays"]
        for start in range(0, len(images), self.batch):
            array, found = self.predictor.predict(paths[start:start + self.batch], images[start:start + self.batch])
            if array is not None:
                arrays.append(array)
            if found is not None:
                records += found
        array = None
        if self.predictor.dim is not None:  # an empty chunk (every photo unreadable) has a (0, D) array
            array = np.concatenate(arrays) if arrays else np.zeros((0, self.predictor.dim), np.float32)
        return {"chunk": batch["chunk"], "paths": paths, "unreadable": batch["unreadable"], "array": array,
                "records": records if self.kind != "embeddings" else None}
