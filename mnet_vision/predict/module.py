"""The LightningModule of batch prediction: a :class:`~mnet_vision.predict.predictors.Predictor` built
on the process's device at setup, run over one part of a chunk per ``predict_step``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np

from mnet_vision.predict.predictors import Predictor


class ChunkPredictor(pl.LightningModule):
    """Predicts a part of a chunk (:func:`mnet_vision.predict.chunks.read_part`'s batch) in one model
    call; see :class:`~mnet_vision.predict.predictors.Predictor` for the arguments. The model is
    loaded in :meth:`setup`, in each process, on the device Lightning gave it."""

    def __init__(self, kind: str, model: str | Path, score: float = 0.3, top_k: int = 5, fast: bool = True,
                 threads: int | None = None):
        super().__init__()
        self.kind, self.model_path = kind, model
        self.options = {"score": score, "top_k": top_k, "fast": fast, "threads": threads}
        self.predictor: Predictor | None = None

    def setup(self, stage: str) -> None:
        if self.predictor is None:
            self.predictor = Predictor(self.kind, self.model_path, str(self.trainer.strategy.root_device),
                                       **self.options)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """``{"chunk", "part", "parts", "paths", "unreadable", "array" ((N, D) float32 or None),
        "records" (list or None)}``."""
        paths, images = batch["paths"], batch["arrays"]
        array, records = None, None
        if images:
            array, records = self.predictor.predict(paths, images)
        elif self.predictor.dim is not None:  # every photo of the part unreadable: a (0, D) array
            array = np.zeros((0, self.predictor.dim), np.float32)
        if records is None and self.kind != "embeddings":
            records = []
        return {"chunk": batch["chunk"], "part": batch["part"], "parts": batch["parts"], "paths": paths,
                "unreadable": batch["unreadable"], "array": array, "records": records}
