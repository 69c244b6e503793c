"""Lightning callbacks every task uses: counted skips, checkpointed RNG state, a best checkpoint that
survives a resume."""
from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mnet_vision.atomic import atomic_write
from mnet_vision.data.skipping import SKIPPED

log = logging.getLogger(__name__)


class SkippedSamplesReport(pl.Callback):
    """Counts the samples the loaders skipped (``batch["skipped"]``), logs ``skipped/<stage>``
    per epoch and warns with the first few paths, so a bad file is never lost silently."""

    def __init__(self, show: int = 5):
        self.show = show
        self.paths: dict[str, list[str]] = {"train": [], "val": [], "test": []}

    def _count(self, stage: str, batch: Any) -> None:
        if isinstance(batch, dict):
            self.paths[stage].extend(batch.get(SKIPPED, []))

    def _report(self, stage: str, pl_module: pl.LightningModule) -> None:
        paths = self.paths[stage]
        count = torch.tensor(float(len(paths)), device=pl_module.device)
        pl_module.log(f"skipped/{stage}", count, reduce_fx="sum", sync_dist=True)
        if paths:
            log.warning("%s: skipped %d unreadable sample(s) this epoch, e.g. %s", stage, len(paths),
                        paths[: self.show])
        self.paths[stage] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._count("train", batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self._count("val", batch)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._count("test", batch)

    def on_train_epoch_end(self, trainer, pl_module):
        self._report("train", pl_module)

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._report("val", pl_module)

    def on_test_epoch_end(self, trainer, pl_module):
        self._report("test", pl_module)


class RNGState(pl.Callback):
    """Saves the torch / numpy / Python RNG states in every checkpoint and restores them when
    training resumes, so a resumed run draws the same shuffles, augmentations and dropout masks
    as an uninterrupted one. Lightning does not keep RNG state itself.

    The states are restored at ``on_train_start``, after the sanity-check validation that a
    resumed fit runs and an uninterrupted one does not, so that check cannot shift them.
    """

    def __init__(self):
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        py_version, py_state, py_gauss = random.getstate()
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                      "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
            # Python's state is a tuple of ints: stored as a tensor so weights_only loading accepts it.
            "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer, pl_module):
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gaussian"]))
        p = state["python"]
        random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose best (score and file) survives ``resume=`` into a new run folder.

    Lightning restores only ``best_model_path`` when the checkpoint folder changed, not the score:
    the first epoch after a resume then became "best" however bad it was, and the test ran on it.
    Here the score comes along too, and the best checkpoint file is copied into the new folder, so
    the new run is whole (a later, better epoch replaces that copy, never the old run's file)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)
            return
        score, best = state_dict.get("best_model_score"), state_dict.get("best_model_path")
        self.current_score = state_dict.get("current_score")
        if score is None or not best:  # no validation before the interruption: nothing is best yet
            return
        source = Path(best)
        if not source.is_file():
            raise FileNotFoundError(f"resume: the best checkpoint of the run being resumed, {source}, is gone; "
                                    f"restore it, or the best score ({float(score):.6g}) would be lost")
        copy = Path(self.dirpath) / source.name
        atomic_write(copy, lambda tmp: shutil.copyfile(source, tmp))
        self.best_model_score = self.kth_value = score
        self.best_model_path = self.kth_best_model_path = str(copy)
        self.best_k_models = {str(copy): score}
