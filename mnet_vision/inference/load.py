"""One loader for every inference path: a training checkpoint's model, config and metadata, without
Lightning, a LightningModule or a DataModule.

    >>> from mnet_vision.inference.load import load_model
    >>> loaded = load_model("outputs/shapes/<time>/checkpoints/last.ckpt")   # BN folded, channels_last
    >>> transform = loaded.meta.eval_transform()   # what the DataModule evaluated with
    >>> logits = loaded.model(loaded.inputs(torch.stack([transform(image=rgb)["image"]])))

The model is rebuilt with :func:`mnet_vision.model.build_model` from the config stored in the
checkpoint, after that config has passed :func:`mnet_vision.stored_config.check_stored_config`
(:func:`mnet_vision.checkpoints.stored_run_config`), and its weights are loaded strictly
(:func:`mnet_vision.checkpoints.load_matching`): the same checks ``tools/eval.py`` makes.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import albumentations as A
import torch
from omegaconf import DictConfig
from torch import nn

from mnet_vision.checkpoints import (
    META_KEY,
    checkpoint_metadata,
    load_file,
    load_matching,
    model_state_dict,
    stored_run_config,
)
from mnet_vision.config import check_run_config
from mnet_vision.data.transforms import FiveCropEval, classification_eval_transform, detection_eval_transform
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.model import DetectorModel, build_model

# The output name of each task's model, for checkpoints written before they carried META_KEY
# (the tasks' ``outputs_name``; a detector's output is a list of dicts, not one named tensor).
_LEGACY_OUTPUTS = {"ClassificationTask": "logits", "AttributeTask": "logits", "GeolocationTask": "logits",
                   "EmbeddingTask": "embedding", "DetectionTask": None}
# What a data config that leaves a transform key out gets: classification_eval_transform's defaults.
_TRANSFORM_DEFAULTS = {name: p.default for name, p in
                       inspect.signature(classification_eval_transform).parameters.items()
                       if p.default is not inspect.Parameter.empty}


@dataclass(frozen=True)
class ModelMeta:
    """What serving a checkpoint's model needs besides its weights (see
    :func:`mnet_vision.checkpoints.checkpoint_metadata`).

    ``task``: the task class name (``DetectionTask``); ``outputs``: the model's output name
    (``logits``, ``embedding``; None for a detector); ``class_names`` / ``category_ids``: per model
    label (index 0 the background for a detector), None where the data names none; ``input_size``
    (pixels) and ``embedding_dim`` from the task config; ``transform``: the evaluation transform's
    settings (``kind``, ``input_size``, ``crop_fraction``, ``mean``, ``std``).
    """

    task: str
    outputs: str | None = None
    class_names: list[str] | None = None
    category_ids: list[int] | None = None
    input_size: int | None = None
    embedding_dim: int | None = None
    transform: dict[str, Any] = field(default_factory=lambda: {"kind": "detection"})

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any], source: str) -> ModelMeta:
        """Checked metadata of checkpoint ``source``: a stored entry is data, so a wrong type is an
        error naming the key, never a wrong answer later."""
        if not isinstance(meta, Mapping) or not isinstance(meta.get("task"), str):
            raise ValueError(f"{source}: its {META_KEY!r} entry is not a metadata dict with a task name")
        kinds = {"outputs": (str, type(None)), "class_names": (list, type(None)), "category_ids": (list, type(None)),
                 "input_size": (int, type(None)), "embedding_dim": (int, type(None)), "transform": (dict,)}
        for key, types in kinds.items():
            if key in meta and not isinstance(meta[key], types):
                raise ValueError(f"{source}: {META_KEY}.{key} is a {type(meta[key]).__name__}")
        return cls(**{k: meta[k] for k in ("task", *kinds) if k in meta})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def eval_transform(self, crops: int = 1) -> Any:
        """The evaluation transform the model's DataModule applies (:func:`transform_from_settings`)."""
        return transform_from_settings(self.transform, crops)


@dataclass
class LoadedModel:
    """A checkpoint's model in eval mode on ``device`` (BN folded and channels_last when ``fast``),
    the run config it was built from and its :class:`ModelMeta`; ``source`` names the checkpoint."""

    model: nn.Module
    cfg: DictConfig
    meta: ModelMeta
    device: str = "cpu"
    fast: bool = False
    source: str = ""

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` images on the model's device, in channels_last on the fast path (no
        layout conversion per layer)."""
        images = images.to(self.device)
        return images.contiguous(memory_format=torch.channels_last) if self.fast else images


#: The config keys :func:`load_model` builds (the model); a caller that also instantiates another
#: part of the stored config (``data`` for teacher dumps) names it, so its classes are checked too.
MODEL_KEYS = ("backbone", "task.head")


def load_model(ckpt: str | Path, fast: bool = True, device: str = "cpu", overrides: DictConfig | Mapping | None = None,
               data: str | None = None, built: Sequence[str] = MODEL_KEYS) -> LoadedModel:
    """The model of training checkpoint ``ckpt`` in eval mode on ``device``, its run config and metadata.

    The stored config is checked as data first, its distillation teacher dropped, its data config
    replaced by ``conf/data/<data>.yaml`` if given and merged with ``overrides``
    (:func:`mnet_vision.checkpoints.stored_run_config`; ``built``: the keys the caller instantiates,
    see :func:`~mnet_vision.stored_config.check_stored_config`); the run config values are checked
    (:func:`mnet_vision.config.check_run_config`); the weights must fit strictly
    (:class:`mnet_vision.checkpoints.CheckpointMismatchError` lists the keys and shapes otherwise).
    With ``fast`` the model is :func:`~mnet_vision.inference.fuse.prepare_for_inference`'s copy
    (BatchNorm folded, channels_last; outputs equal the plain model's within 1e-4): feed it
    :meth:`LoadedModel.inputs`.
    """
    source = str(ckpt)
    checkpoint = load_file(ckpt)
    cfg = stored_run_config(checkpoint, source, overrides, data, built)
    check_run_config(cfg)
    model = build_model(cfg)
    load_matching(model, model_state_dict(checkpoint), source)
    meta = read_metadata(checkpoint, cfg, source, model)
    model = prepare_for_inference(model) if fast else model.eval()
    return LoadedModel(model.to(device), cfg, meta, device, fast, source)


def read_metadata(checkpoint: Mapping[str, Any], cfg: DictConfig, source: str, model: nn.Module) -> ModelMeta:
    """The checkpoint's :data:`~mnet_vision.checkpoints.META_KEY` entry; for a checkpoint written
    before it existed, the same derived from its run config (and its detection class names from the
    old ``mnet_classes`` entry, generic ``class<i>`` names when it has none)."""
    if META_KEY in checkpoint:
        meta = ModelMeta.from_dict(checkpoint[META_KEY], source)
    else:
        task = str(cfg.task.module.get("_target_", "")).rpartition(".")[2]
        classes = checkpoint.get("mnet_classes")
        names = classes.get("names") if isinstance(classes, Mapping) else None
        ids = classes.get("category_ids") if isinstance(classes, Mapping) else None
        meta = ModelMeta.from_dict(checkpoint_metadata(cfg, task, _LEGACY_OUTPUTS.get(task), names, ids), source)
    if meta.class_names is None and isinstance(model, DetectorModel):  # saved before training began: no names
        n = model.head.num_classes
        meta = replace(meta, class_names=["__background__", *(f"class{i}" for i in range(1, n + 1))],
                       category_ids=list(range(n + 1)))
    return meta


def transform_from_settings(settings: Mapping[str, Any], crops: int = 1) -> Any:
    """The evaluation transform of ``settings`` (:attr:`ModelMeta.transform`): for ``detection``
    :func:`~mnet_vision.data.transforms.detection_eval_transform`; else
    :func:`~mnet_vision.data.transforms.classification_eval_transform` (``crops`` 1) or
    :class:`~mnet_vision.data.transforms.FiveCropEval` (``crops`` 5, the geolocation test protocol),
    keys left out taking the classification transform's defaults."""
    if crops not in (1, FiveCropEval.crops):
        raise ValueError(f"crops must be 1 (central crop) or {FiveCropEval.crops} (FiveCrop), got {crops}")
    if settings.get("kind") == "detection":
        if crops != 1:
            raise ValueError("a detector sees the whole image: crops must be 1")
        return detection_eval_transform()
    values = {**_TRANSFORM_DEFAULTS, **{k: v for k, v in settings.items() if k != "kind"}}
    make = FiveCropEval if crops > 1 else classification_eval_transform
    return make(int(values["input_size"]), float(values["crop_fraction"]), tuple(values["mean"]), tuple(values["std"]))


def eval_transform(cfg: DictConfig, crops: int = 1) -> A.Compose | FiveCropEval:
    """The evaluation transform that run config ``cfg``'s DataModule builds (its ``eval_transform``;
    with ``crops`` 5 its ``test_transform`` under ``data.test_crops=5``), without building it."""
    return transform_from_settings(checkpoint_metadata(cfg, "", None)["transform"], crops)

