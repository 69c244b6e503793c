"""The models a service runs, loaded once per process: :class:`ServedModels`.

They hold no request state (the face index is the app's: :mod:`mnet_vision.serving.gallery`), so one
``ServedModels`` can back several apps (tests build many apps over one set of loaded models).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.inference.detect import Detector
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.inference.load import LoadedModel
from mnet_vision.pretrained.models import PRETRAINED, load_pretrained
from mnet_vision.serving.config import ServiceConfig


def _runtime(model: Any) -> str:
    return "onnxruntime" if getattr(model, "onnx", None) is not None else "pytorch"


def _existing(path: str, key: str) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{key}={path}: no such file (expected a checkpoint or an .onnx export"
                                + (f", or a pretrained name: {', '.join(sorted(PRETRAINED))}" if key == "detector"
                                   else "") + ")")
    return path


@dataclass
class ServedModels:
    """The loaded models; each ``None`` when not served. ``detector``: ``POST /detect``'s;
    ``embedder``: ``POST /embed``'s; ``geolocator``: ``POST /geolocate``'s; ``faces``: the face
    pipeline of ``/faces/*``."""

    detector: Detector | None = None
    embedder: Embedder | None = None
    geolocator: Geolocator | None = None
    faces: FacePipeline | None = None
    geolocator_source: str = ""  # the Geolocator keeps no name of its file

    @classmethod
    def load(cls, config: ServiceConfig) -> ServedModels:
        """The models ``config`` names (pretrained ones fetched into the cache on first use). A pretrained
        detector that is also the face pipeline's is loaded once and shared."""
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        shared: dict[str, LoadedModel] = {}

        def pretrained(name: str) -> LoadedModel:
            if name not in shared:
                shared[name] = load_pretrained(name, fast=config.fast, device=config.device)
            return shared[name]

        detector = None
        if config.detector is not None:
            spec = config.detector
            source = pretrained(spec) if spec in PRETRAINED else _existing(spec, "detector")
            detector = Detector(source, fast=config.fast, device=config.device, threads=config.threads)
        embedder = geolocator = faces = None
        if config.embedder is not None:
            embedder = Embedder(_existing(config.embedder, "embedder"), config.device, config.fast, config.threads)
        if config.geolocator is not None:
            path = _existing(config.geolocator, "geolocator")
            geolocator = Geolocator(path, config.device, fast=config.fast, threads=config.threads)
        if config.faces:
            kwargs = {"device": config.device, "fast": config.fast, **config.pipeline}
            net = kwargs.get("detector", "faceapi_ssd")
            if isinstance(net, str) and net in PRETRAINED:
                kwargs["detector"] = pretrained(net)
            faces = FacePipeline(**kwargs)
            faces.embedding_model  # noqa: B018 - hashed once now, not in the first request
        return cls(detector, embedder, geolocator, faces, geolocator_source=config.geolocator or "")

    def describe(self) -> dict[str, Any]:
        """What ``GET /models`` reports of each model: its task, source, runtime and what it outputs."""
        out: dict[str, Any] = {}
        if self.detector is not None:
            out["detector"] = {"task": "DetectionTask", "source": self.detector.source,
                               "runtime": _runtime(self.detector), "classes": list(self.detector.names[1:]),
                               "category_ids": [int(c) for c in self.detector.category_ids[1:]]}
        if self.embedder is not None:
            out["embedder"] = {"task": "EmbeddingTask", "source": self.embedder.source,
                               "runtime": _runtime(self.embedder), "dim": self.embedder.dim}
        if self.geolocator is not None:
            out["geolocator"] = {"task": "GeolocationTask", "source": self.geolocator_source,
                                 "runtime": _runtime(self.geolocator), "cells": len(self.geolocator.tokens)}
        if self.faces is not None:
            out["faces"] = {"embedding_model": self.faces.embedding_model, "metric": self.faces.metric,
                            "align": self.faces.align, "score_thresh": self.faces.score_thresh,
                            "min_face": self.faces.min_face,
                            "attributes": self.faces.attribute_models is not None}
        return out
