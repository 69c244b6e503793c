"""Building tasks, data and trainers from a composed config; training and evaluating them.

``tools/train.py`` and ``tools/eval.py`` are thin wrappers over :func:`train` and :func:`evaluate`.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from mnet_vision.checkpoints import (
    CheckpointMismatchError,
    init_from,
    load_file,
    load_matching,
    model_state_dict,
    stored_run_config,
)
from mnet_vision.config import check_run_config
from mnet_vision.model import build_model
from mnet_vision.outputs import check_writable
from mnet_vision.stored_config import check_stored_config, upgrade_targets
from mnet_vision.textfiles import write_json
from mnet_vision.training.callbacks import ResumableCheckpoint, RNGState, SkippedSamplesReport
from mnet_vision.training.checkpoint_io import AtomicCheckpointIO

log = logging.getLogger(__name__)


def build_task(cfg: DictConfig) -> pl.LightningModule:
    """The task's LightningModule around ``build_model(cfg)``, weights from ``task.init_from`` if set;
    with ``cfg.distill`` set, a :class:`mnet_vision.tasks.DistillationTask` whose student is that module.

    The unresolved config is stored in every checkpoint the task writes (``mnet_config``).
    """
    check_run_config(cfg)
    model = build_model(cfg)
    init = cfg.task.get("init_from")
    if init is not None and init.get("path"):
        init_from(model, init.path, init.get("scope", "model"), init.get("format", "mnet"))
    config = OmegaConf.to_container(cfg, resolve=False)
    module = OmegaConf.to_container(cfg.task.module, resolve=True)
    if cfg.get("distill") is not None:  # any task's module becomes the student of a DistillationTask
        module = {**OmegaConf.to_container(cfg.distill, resolve=True), "student": module}
    task = instantiate(module, model=model, _recursive_=False,
                       _convert_="all")  # plain containers: checkpoints must load with weights_only
    task.run_config = config  # not through instantiate: it would resolve the stored config's interpolations
    return task


def build_trainer(cfg: DictConfig, run_dir: Path, task: pl.LightningModule) -> pl.Trainer:
    """``cfg.trainer`` plus our callbacks (best/last checkpoints, RNG state, skip report), the
    configured loggers writing under ``run_dir`` and atomic checkpoint writes."""
    monitor, mode = task.monitor
    loggers = [instantiate(c, save_dir=str(run_dir)) for c in (cfg.get("logger") or {}).values()]
    checkpoints = run_dir / "checkpoints"
    callbacks = [
        ResumableCheckpoint(dirpath=checkpoints, filename="best-epoch{epoch:03d}", monitor=monitor, mode=mode,
                            save_top_k=1, auto_insert_metric_name=False),
        # A separate callback for last.ckpt: Lightning's save_last only writes when a new best was
        # saved, which would leave resume= an epoch (or many) behind. It saves at the end of every
        # training epoch: left to itself it saves after validation only, so with
        # check_val_every_n_epoch > 1 the epochs after the last validation were never saved.
        ResumableCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1,
                            enable_version_counter=False, save_on_train_epoch_end=True),
        SkippedSamplesReport(),
        RNGState(),
    ]
    if loggers:
        callbacks.append(LearningRateMonitor(logging_interval="epoch"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()],
                       default_root_dir=str(run_dir))


def default_run_dir(cfg: DictConfig) -> Path:
    """Hydra's output folder when running under ``@hydra.main``, else ``outputs/<task>/<time>``."""
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path("outputs") / cfg.task.name / time.strftime("%Y-%m-%d_%H-%M-%S")


def resume_checkpoint(resume: str | None) -> str | None:
    """A checkpoint path from ``resume``: a ``.ckpt`` file, or a run folder's ``checkpoints/last.ckpt``."""
    if not resume:
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"resume={resume}: no checkpoint at {path}")
    return str(path)


def check_resumable(model: torch.nn.Module, cfg: DictConfig, resume: str) -> None:
    """Raise :class:`CheckpointMismatchError` when checkpoint ``resume`` cannot continue this run:
    the model-defining config keys that differ first (``backbone.alpha: checkpoint 0.25, now 0.5``),
    then the weights' missing/unexpected keys and shapes, instead of Lightning's raw key lists."""
    checkpoint = load_file(resume)
    stored = checkpoint.get("mnet_config")
    if isinstance(stored, dict):
        check_stored_config(upgrade_targets(stored), resume)  # nothing is built from it, but it is no more trusted here
        now = OmegaConf.to_container(cfg, resolve=False)
        changed = [f"{key}: checkpoint {old!r}, now {new!r}" for key, old, new in
                   _differences(stored.get("backbone"), now.get("backbone"), "backbone")
                   + _differences(stored.get("task", {}).get("head"), now["task"].get("head"), "task.head")]
        if changed:
            raise CheckpointMismatchError(f"resume={resume} was trained with another model config; resume with "
                                          f"the run's own overrides:\n  " + "\n  ".join(changed))
    load_matching(model, model_state_dict(checkpoint), f"resume={resume}")


def _differences(old: Any, new: Any, key: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _differences(old.get(k), new.get(k), f"{key}.{k}")]
    return [] if old == new else [(key, old, new)]


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Fit the configured task, then (``test_after_fit``) test its best checkpoint.

    Writes checkpoints (``checkpoints/best-*.ckpt``, ``last.ckpt``), logs and ``metrics.json`` to
    ``run_dir`` and returns the metrics dict.
    """
    check_run_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    check_writable(run_dir / "checkpoints", "checkpoint folder")  # not after the first epoch's work
    task = build_task(cfg)
    resume = resume_checkpoint(cfg.get("resume"))
    if resume:
        check_resumable(task.model, cfg, resume)
    datamodule = instantiate(cfg.data)
    trainer = build_trainer(cfg, run_dir, task)
    start = time.perf_counter()
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    fit_seconds = time.perf_counter() - start
    metrics: dict[str, Any] = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = trainer.checkpoint_callback.best_model_path
    if cfg.get("test_after_fit", True) and not trainer.fast_dev_run:
        tested = trainer.test(task, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(tested[0] if tested else {})
    metrics.update(fit_seconds=fit_seconds, epochs=trainer.current_epoch, best_checkpoint=best,
                   run_dir=str(run_dir))
    _write_metrics(run_dir / "metrics.json", metrics)
    return metrics


def task_from_checkpoint(ckpt: str | Path, overrides: DictConfig | dict | None = None, data: str | None = None
                         ) -> tuple[DictConfig, pl.LightningModule, dict[str, Any]]:
    """The run config stored in one of our checkpoints (its data config replaced by
    ``conf/data/<data>.yaml`` if ``data`` is given, then merged with ``overrides``), the task rebuilt
    from it with the checkpoint's weights loaded strictly (``weights_only=True``; a checkpoint that
    does not fit raises listing the keys/shapes), and the checkpoint dict itself."""
    checkpoint = load_file(ckpt)
    cfg = stored_run_config(checkpoint, str(ckpt), overrides, data)  # checked as data, as inference's load_model
    task = build_task(cfg)
    load_matching(task.model, model_state_dict(checkpoint), str(ckpt))
    return cfg, task, checkpoint


def evaluate(ckpt: str | Path, split: str = "test", overrides: DictConfig | dict | None = None,
             out_dir: str | Path | None = None, data: str | None = None,
             wrap_model: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint on the ``val`` or ``test`` split of its data (or of ``overrides.data``).

    The model is rebuilt from the config stored in the checkpoint and loaded strictly (with
    ``weights_only=True``); a checkpoint that does not fit raises a message listing the keys/shapes.
    Pictures the task draws (e.g. ``confusion_test.png``) go to ``out_dir``, by default
    ``<run dir>/eval_<split>`` beside the checkpoint's ``checkpoints/`` folder. ``data`` names a
    ``conf/data`` config to evaluate on instead of the checkpoint's (e.g. ``identities`` for real LFW).
    ``wrap_model``: replaces the task's model by ``wrap_model(model)`` before scoring (an exported
    ``.onnx`` run by ONNX Runtime: :func:`mnet_vision.inference.onnx_backend.onnx_evaluation`).
    """
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test', got {split!r}")
    ckpt_dir = Path(ckpt).resolve().parent
    run_dir = ckpt_dir.parent if ckpt_dir.name == "checkpoints" else ckpt_dir
    out_dir = check_writable(Path(out_dir) if out_dir is not None else run_dir / f"eval_{split}")
    cfg, task, _ = task_from_checkpoint(ckpt, overrides, data)
    if wrap_model is not None:
        task.model = wrap_model(task.model)
    trainer = instantiate(cfg.trainer, logger=False, devices=1, num_nodes=1, strategy="auto",
                          enable_checkpointing=False, default_root_dir=str(out_dir),
                          callbacks=[SkippedSamplesReport()])
    datamodule = instantiate(cfg.data)
    run = trainer.validate if split == "val" else trainer.test
    results = run(task, datamodule=datamodule)
    return {**(results[0] if results else {}), "out_dir": str(out_dir)}


@rank_zero_only
def _write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    write_json(path, metrics, indent=2, sort_keys=True)  # atomic: a kill never leaves half a file
    log.info("metrics written to %s", path)
