"""One predictor per kind of output, over the inference objects (the same models the tools and the
service run): each turns a chunk's decoded photos into an ``(N, D)`` array, per-photo records in
the tools' JSON shapes, or both.

- ``embeddings``: :class:`~mnet_vision.inference.embed.Embedder` rows, ``(N, D)`` float32;
- ``detections``: :class:`~mnet_vision.inference.detect.Detector` entries, detections.json's shape;
- ``geolocation``: :class:`~mnet_vision.inference.geolocate.Geolocator` top-k cells, geolocation.json's shape;
- ``attributes``: :class:`AttributeScorer` probabilities ``(N, K)`` float32 and named scores.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnet_vision.data.transforms import apply_seeded
from mnet_vision.deploy.runtime import is_onnx_path, load_onnx
from mnet_vision.heads.classifier import BINARY_OUTPUT
from mnet_vision.inference.detect import Detector
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.inference.load import load_model
from mnet_vision.pretrained.fetch import file_sha256

KINDS = ("embeddings", "detections", "attributes", "geolocation")
# The task a model of each kind was trained as (a checkpoint of another task is refused by name).
TASKS = {"embeddings": "EmbeddingTask", "detections": "DetectionTask", "attributes": "AttributeTask",
         "geolocation": "GeolocationTask"}

Output = tuple[np.ndarray | None, list[dict[str, Any]] | None]


class AttributeScorer:
    """An attribute checkpoint (``task=attributes`` / ``attribute_outputs``) or its ``.onnx`` export:
    each photo's K attribute probabilities (sigmoid of the logits), and for a checkpoint with
    regression or multi-class outputs beside them their values and most likely class. Attribute
    names are the checkpoint's class names where it stores them, else ``attr<j>`` (the attribute
    data modules keep their names outside the checkpoint)."""

    def __init__(self, ckpt: str | Path, device: str = "cpu", fast: bool = True, threads: int | None = None):
        self.onnx = load_onnx(ckpt, threads, task="AttributeTask") if is_onnx_path(ckpt) else None
        self.categorical: dict[str, list[str]] = {}
        if self.onnx is not None:
            self.names = self.onnx.meta.class_names
        else:
            self.loaded = load_model(ckpt, fast, device)
            if self.loaded.meta.task != "AttributeTask":
                raise ValueError(f"{ckpt} is a {self.loaded.meta.task} checkpoint; attributes need task=attributes "
                                 f"or attribute_outputs")
            self.names = self.loaded.meta.class_names
            self.categorical = {str(k): list(v) for k, v in (self.loaded.cfg.task.get("categorical") or {}).items()}
            self.transform = self.loaded.meta.eval_transform()
        # K, for the (0, K) array of a chunk whose photos are all unreadable: one small forward says it
        # for a checkpoint and an export alike
        self.dim = int(self.score([np.zeros((8, 8, 3), np.uint8)])[0].shape[1])

    def outputs(self, arrays: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """The model's raw outputs of RGB uint8 images: ``logits (N, K)`` and any other named output."""
        if self.onnx is not None:
            return {BINARY_OUTPUT: self.onnx.classify(list(arrays))}
        batch = torch.stack([apply_seeded(self.transform, 0, image=array)["image"] for array in arrays])
        with torch.inference_mode():
            out = self.loaded.model(self.loaded.inputs(batch))
        out = out if isinstance(out, dict) else {BINARY_OUTPUT: out}
        return {name: value.float().cpu().numpy() for name, value in out.items()}

    def score(self, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """``(N, K)`` float32 attribute probabilities and one record per photo: ``{"attributes": {name:
        probability}}``, plus ``{"outputs": {regression name: value, categorical name: {"class",
        "probability"}}}`` for a model with such outputs."""
        out = self.outputs(arrays)
        logits = out.pop(BINARY_OUTPUT, np.zeros((len(arrays), 0), np.float32))
        probs = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        names = self.names if self.names and len(self.names) == probs.shape[1] else [
            f"attr{j}" for j in range(probs.shape[1])]
        records = []
        for i, row in enumerate(probs):
            record: dict[str, Any] = {"attributes": {n: round(float(p), 6) for n, p in zip(names, row)}}
            others = {}
            for name, value in out.items():
                if name in self.categorical:
                    z = value[i].astype(np.float64)
                    p = np.exp(z - z.max())
                    p /= p.sum()
                    others[name] = {"class": self.categorical[name][int(p.argmax())],
                                    "probability": round(float(p.max()), 6)}
                else:
                    others[name] = round(float(value[i]), 4)
            if others:
                record["outputs"] = others
            records.append(record)
        return probs, records


class Predictor:
    """The model of one ``kind`` ready for chunks: :meth:`predict` gives a chunk's array and/or
    records; :attr:`info` identifies the model and the settings that shape its outputs (a run's
    shards are refused by another model or settings); :attr:`dim` is the array's width (None for
    the kinds without one).

    Args:
        kind: one of :data:`KINDS`.
        model: a training checkpoint of the kind's task, or its ``.onnx`` export.
        device: ``cpu`` or ``cuda[:i]`` (ignored by an ``.onnx``).
        score: detections' score threshold; ``top_k``: geolocation's cells per photo.
        fast: the BN-folded channels_last model; ``threads``: ONNX Runtime intra-op threads.
    """

    def __init__(self, kind: str, model: str | Path, device: str = "cpu", score: float = 0.3, top_k: int = 5,
                 fast: bool = True, threads: int | None = None):
        self.kind, self.score, self.top_k = kind, float(score), int(top_k)
        self.info = model_info(kind, model, score, top_k)
        if kind == "embeddings":
            self.model: Any = Embedder(model, device, fast, threads)
        elif kind == "detections":
            self.model = Detector(model, fast, device, threads)
        elif kind == "geolocation":
            self.model = Geolocator(model, device, fast=fast, threads=threads)
        else:
            self.model = AttributeScorer(model, device, fast, threads)
        self.dim: int | None = getattr(self.model, "dim", None) if kind in ("embeddings", "attributes") else None

    def predict(self, paths: Sequence[str], arrays: Sequence[np.ndarray]) -> Output:
        """The array (``(N, D)`` float32, or None) and records (a list of dicts with ``"file"``
        first, or None) of the photos ``paths`` decoded as ``arrays``."""
        if self.kind == "embeddings":
            return self.model.embed_arrays(arrays).astype(np.float32, copy=False), None
        if self.kind == "detections":
            found = self.model.detect(arrays, self.score)
            return None, [{"file": p, "width": int(a.shape[1]), "height": int(a.shape[0]), "detections": d}
                          for p, a, d in zip(paths, arrays, found)]
        if self.kind == "geolocation":
            _, cells = self.model.locate(arrays, self.top_k)
            return None, [{"file": p, "lat": c[0]["lat"], "lon": c[0]["lon"], "cells": c} for p, c in zip(paths, cells)]
        probs, records = self.model.score(arrays)
        return probs, [{"file": p, **r} for p, r in zip(paths, records)]


def model_info(kind: str, model: str | Path, score: float = 0.3, top_k: int = 5) -> dict[str, Any]:
    """What identifies a run's model: ``{"source", "task", "sha256", "settings"}`` (the settings
    that change its outputs: detections' ``score``, geolocation's ``top_k``). Raises
    ``ValueError`` for an unknown ``kind``, ``FileNotFoundError`` for a missing model file."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {', '.join(KINDS)}")
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt={model}: no such checkpoint or .onnx file")
    settings: dict[str, Any] = {}
    if kind == "detections":
        if not 0.0 <= float(score) <= 1.0:
            raise ValueError(f"score={score}: expected a threshold in [0, 1]")
        settings["score"] = float(score)
    if kind == "geolocation":
        if int(top_k) < 1:
            raise ValueError(f"top_k={top_k}: expected 1 or more cells")
        settings["top_k"] = int(top_k)
    return {"source": str(model), "task": TASKS[kind], "sha256": file_sha256(path), "settings": settings}
