"""Loading and saving weights safely: ``weights_only`` loads, atomic writes, mismatch errors
that say which keys or shapes differ; the run config and the metadata our checkpoints carry
(:func:`stored_run_config`, :func:`checkpoint_metadata`). Lightning-free: inference uses it."""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from mnet_vision.atomic import atomic_write
from mnet_vision.backbones.convert import timm_mobilenetv1_to_mnet, torchvision_mobilenet_to_mnet
from mnet_vision.config import compose
from mnet_vision.stored_config import check_stored_config, upgrade_targets
from mnet_vision.tfjs.ssd_mobilenet_v1 import ssd_mobilenet_v1_state_dict
from mnet_vision.tfjs.weights import read_weights

log = logging.getLogger(__name__)

SCOPES = ("model", "backbone")
FORMATS = ("mnet", "timm", "torchvision", "tfjs")
#: BatchNorm epsilon of TF's MobileNet / SSD (slim's batch_norm default is 1e-3).
TF_BN_EPS = 1e-3

#: Checkpoint entry of the run config (:func:`stored_run_config`).
CONFIG_KEY = "mnet_config"
#: Checkpoint entry of what serving a model needs besides its config (:func:`checkpoint_metadata`).
META_KEY = "mnet_meta"
#: Data config keys of the evaluation transform (absent ones take the transform's defaults).
TRANSFORM_KEYS = ("input_size", "crop_fraction", "mean", "std")


class CheckpointMismatchError(ValueError):
    """A state dict that does not fit a module; the message lists the differing keys and shapes."""


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` through a temporary file in the same folder and ``os.replace``;
    a failure names ``path`` (torch's own message names only its ``inline_container.cc``)."""
    try:
        atomic_write(path, lambda tmp: torch.save(obj, tmp))
    except (OSError, RuntimeError) as err:
        raise OSError(f"cannot write checkpoint {path}: {err}") from err


def load_file(path: str | os.PathLike) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` on CPU, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle / zip errors carry no file name
        raise ValueError(f"cannot load {path} as a weights-only torch file: {err}") from err
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a checkpoint dict or a state dict")
    return dict(obj)


def model_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The ``BackboneHeadModel`` state dict inside one of our Lightning checkpoints (``model.`` keys
    of the task, ``student.model.`` of a distillation run), or the mapping itself when it is already
    a plain state dict."""
    state = checkpoint.get("state_dict", checkpoint)
    for prefix in ("model.", "student.model."):  # a task's model; a distillation wrapper's student's
        if any(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def load_matching(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, show: int = 8) -> None:
    """Load ``state`` into ``module`` strictly; on any difference raise
    :class:`CheckpointMismatchError` listing missing keys, unexpected keys and shape differences.

    A submodule that can say better what a difference means (a geo-cell head: the checkpoint's
    cell counts against the configured ones) defines ``check_state_dict(state, source)``, called
    first with its own part of ``state``."""
    for name, sub in module.named_modules():
        check = getattr(sub, "check_state_dict", None)
        if check is not None:
            prefix = f"{name}." if name else ""
            check({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, source)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{source} does not fit the {type(module).__name__} built from this config:"]
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape differences", shapes)):
            if items:
                more = f" ... and {len(items) - show} more" if len(items) > show else ""
                parts.append(f"  {len(items)} {label}: {items[:show]}{more}")
        raise CheckpointMismatchError("\n".join(parts))
    module.load_state_dict(state, strict=True)


def init_from(model: nn.Module, path: str, scope: str = "model", format: str = "mnet") -> None:
    """Fine-tuning start: load weights from ``path`` into the whole model or only its backbone.

    Args:
        model: a ``BackboneHeadModel``.
        path: one of our checkpoints or state dicts (``mnet``), a timm ``mobilenetv1_100`` state
            dict (``timm``), a torchvision MobileNet V2/V3 state dict (``torchvision``), or the
            ``*-weights_manifest.json`` of a TF.js ``ssd_mobilenet_v1`` export (``tfjs``; its shards
            beside it: :func:`load_tfjs_ssd`).
        scope: ``model`` (every weight must fit) or ``backbone`` (the head stays freshly initialised,
            e.g. a new class count).
    """
    if scope not in SCOPES:
        raise ValueError(f"init_from.scope must be one of {SCOPES}, got {scope!r}")
    if format not in FORMATS:
        raise ValueError(f"init_from.format must be one of {FORMATS}, got {format!r}")
    if format == "tfjs":
        load_tfjs_ssd(model, path, scope)
        return
    state = load_file(path)
    if format == "timm":
        state = timm_mobilenetv1_to_mnet(state)
    elif format == "torchvision":
        state = torchvision_mobilenet_to_mnet(state)
    else:
        state = model_state_dict(state)
    if scope == "backbone":
        prefix = "backbone."
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        load_matching(model.backbone, state, f"backbone weights in {path}")
    else:
        load_matching(model, state, str(path))


def load_tfjs_ssd(model: nn.Module, manifest: str | os.PathLike, scope: str = "model") -> None:
    """Load a TF.js ``ssd_mobilenet_v1`` export into a ``DetectorModel`` (MobileNetV1 + SSD300Head)
    or, with ``scope="backbone"``, its MobileNet body into any model's MobileNetV1.

    Every tensor is placed or named (:func:`mnet_vision.tfjs.ssd_mobilenet_v1.ssd_mobilenet_v1_state_dict`),
    the weights must fit strictly (:func:`load_matching` names missing modules and shape
    differences), and for the whole model the file's anchors, input size and input scaling must be
    the head's (``check_tf_constants``). A backbone without TF's padding or BatchNorm epsilon is
    loaded with a warning: fine-tuning adapts, but its outputs are not the TF model's.
    """
    source = str(manifest)
    backbone = model.backbone
    bns = [m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    eps = bns[0].eps if bns else TF_BN_EPS
    if getattr(backbone, "padding", None) != "tf_same" or eps != TF_BN_EPS:
        log.warning("%s: TF weights in a backbone with padding=%s and BatchNorm eps %g; TF's outputs need "
                    "backbone.padding=tf_same and backbone.bn_eps=%g", source, getattr(backbone, "padding", None),
                    eps, TF_BN_EPS)
    num_classes = getattr(model.head, "num_classes", None) if scope == "model" else None
    conversion = ssd_mobilenet_v1_state_dict(read_weights(manifest), num_classes, source, eps)
    state = {k: torch.from_numpy(v) for k, v in conversion.state.items()}
    if scope == "backbone":
        prefix = "backbone."
        load_matching(backbone, {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                      f"backbone weights in {source}")
        return
    check = getattr(model.head, "check_tf_constants", None)
    if check is None:
        raise ValueError(f"{source} is a detector; scope=model needs an SSD300Head, not {type(model.head).__name__} "
                         "(scope=backbone loads its MobileNet body into any head)")
    load_matching(model, state, source)
    check(conversion.constants, source)


def stored_run_config(checkpoint: Mapping[str, Any], source: str, overrides: DictConfig | Mapping | None = None,
                      data: str | None = None, built: Sequence[str] | None = None) -> DictConfig:
    """The run config stored in one of our checkpoints (``mnet_config``), checked as data before
    anything is built from it (:func:`mnet_vision.stored_config.check_stored_config`), with a
    distillation run's teacher dropped (its student is evaluated and served alone), its data config
    replaced by ``conf/data/<data>.yaml`` if ``data`` is given, then merged with ``overrides``, and
    ``task.init_from.path`` cleared (the checkpoint's own weights are loaded instead)."""
    if CONFIG_KEY not in checkpoint:
        raise ValueError(f"{source} is not an mnet_vision training checkpoint (no {CONFIG_KEY!r} entry)")
    stored = checkpoint[CONFIG_KEY]
    if not isinstance(stored, dict):
        raise ValueError(f"{source}: its {CONFIG_KEY!r} entry is a {type(stored).__name__}, expected a run config dict")
    stored = upgrade_targets({**stored, "distill": None} if stored.get("distill") is not None else stored)
    check_stored_config(stored, source, built)  # before anything is instantiated from it
    cfg = OmegaConf.create(stored)
    if data is not None:  # another data config in place of the stored one, as data=<name> on the command line
        cfg.data = OmegaConf.to_container(compose([f"data={data}"]).data, resolve=False)
    if overrides:
        cfg = OmegaConf.merge(cfg, overrides)
    if cfg.task.get("init_from") is not None:
        cfg.task.init_from.path = None
    return cfg


def checkpoint_metadata(run_config: DictConfig | Mapping[str, Any] | None, task: str, outputs: str | None,
                        class_names: list[str] | None = None, category_ids: list[int] | None = None
                        ) -> dict[str, Any]:
    """What serving a checkpoint's model needs besides its weights, as plain data (``weights_only``
    loads it): stored under :data:`META_KEY` by every task.

    ``task``: the task class name (``DetectionTask``; a distillation run's student's); ``outputs``: the
    name of its model's output (``logits``, ``embedding``; None for a detector); ``class_names`` (index
    = model label; 0 the background for a detector) and ``category_ids`` (the dataset's id of each
    label) when the data names them; ``input_size`` and ``embedding_dim`` from ``task``; and
    ``transform``, the evaluation transform's data settings (:data:`TRANSFORM_KEYS` present in the
    data config, resolved) with ``kind``: ``classification`` (resize, centre crop, normalise) for data
    with an ``input_size``, ``detection`` (the image in [0, 1]; the detector resizes) for data without.
    """
    cfg = OmegaConf.create(run_config if run_config is not None else {})
    data = cfg.get("data") or OmegaConf.create({})
    transform: dict[str, Any] = {"kind": "classification" if "input_size" in data else "detection"}
    for key in TRANSFORM_KEYS:
        if key in data:
            value = data[key]
            transform[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    head_task = cfg.get("task") or OmegaConf.create({})
    return {"task": task, "outputs": outputs,
            "class_names": None if class_names is None else [str(n) for n in class_names],
            "category_ids": None if category_ids is None else [int(c) for c in category_ids],
            "input_size": head_task.get("input_size"), "embedding_dim": head_task.get("embedding_dim"),
            "transform": transform}
