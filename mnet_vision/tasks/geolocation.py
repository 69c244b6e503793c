"""PlaNet photo geolocation as a LightningModule: classification over earth cells, scored in km.

One softmax per partition, their cross-entropies summed (TIB GeoEstimation's multi-partition
scheme; one partition is PlaNet itself). A photo is located at the mean training-photo location of
its best fine cell, that cell chosen by the hierarchical product of the partitions' probabilities.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnet_vision.atomic import atomic_write
from mnet_vision.geo.distances import great_circle_km_torch
from mnet_vision.heads.geocells import located_logits
from mnet_vision.metrics.geo import GeolocationErrors, accuracy_table, distance_accuracy
from mnet_vision.metrics.photo_ids import PhotoValues
from mnet_vision.tasks.model_task import ModelTask
from mnet_vision.viz.geo import save_distance_curve

log = logging.getLogger(__name__)

BASELINE = "most populous cell"
MODEL = "model"


def soft_cell_targets(points: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor, tau_km: float) -> torch.Tensor:
    """``(N, C)`` targets decaying with distance: ``exp(-(d_c - min_c d_c) / tau)`` normalised to sum
    to one, ``d_c`` the great-circle km from the photo to cell ``c``'s point (PIGEON's haversine
    smoothing, tau 65-75 km there). A near miss costs less than a far one."""
    d = great_circle_km_torch(lat[:, None].double(), lon[:, None].double(), points[None, :, 0], points[None, :, 1])
    return torch.softmax(-(d - d.min(dim=1, keepdim=True).values) / tau_km, dim=1).float()


class GeolocationTask(ModelTask):
    """Cells of every partition as classes; great-circle accuracy at 1/25/200/750/2500 km.

    Args:
        model: ``backbone -> GeoCellHead``.
        num_cells: cells per partition, coarsest first (the head's outputs).
        label_smoothing_km: null for one-hot targets (PlaNet); a distance ``tau`` in km for targets
            that decay with the distance from the photo to each cell (:func:`soft_cell_targets`).
        optimizer, scheduler, weight_decay, compile, run_config: see :class:`ModelTask`.

    The cells come from the data module's partition files when fitting starts (or from the
    checkpoint; then the files are checked to be the same). Validation and test log ``acc@<t>km``,
    ``median_km`` and ``count`` (photos scored, each once) of the model's points and ``top1/<p>``
    per partition; test also scores each partition alone and the baseline of always guessing the
    coarsest partition's most populous cell, and writes ``geolocation_test.md`` (Table 11's layout) and
    ``geolocation_test.png`` (the share within each distance) to the trainer's ``default_root_dir``.
    """

    monitor = ("val/median_km", "min")
    outputs_name = "logits"

    def __init__(self, model: torch.nn.Module, num_cells: list[int], optimizer: dict, scheduler: dict | None = None,
                 weight_decay: float = 4e-5, label_smoothing_km: float | None = None, compile: bool = False,
                 run_config: dict | None = None):
        super().__init__(model, optimizer, scheduler, weight_decay, compile, run_config)
        self.num_cells = [int(n) for n in num_cells]
        if label_smoothing_km is not None and not label_smoothing_km > 0:
            raise ValueError(f"label_smoothing_km must be null or a positive distance in km, got {label_smoothing_km}")
        self.label_smoothing_km = label_smoothing_km
        names = [MODEL, BASELINE] + [f"partition {p}" for p in range(len(self.num_cells))]
        self.errors = torch.nn.ModuleDict({stage: GeolocationErrors(names) for stage in ("val", "test")})
        partitions = [str(p) for p in range(len(self.num_cells))]
        # top-1 per partition
        self.hits = torch.nn.ModuleDict({stage: PhotoValues(partitions) for stage in ("val", "test")})

    @property
    def head(self):
        return self.model.head

    def setup(self, stage: str) -> None:
        self.head.set_partitions(self.trainer.datamodule.partitions)

    def outputs(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Per-partition logits; for ``(N, K, 3, S, S)`` test crops (``data.test_crops``) each cell's
        best log-probability over a photo's crops."""
        return {self.outputs_name: located_logits(self, images)}

    def loss(self, outputs: dict[str, Any], batch: dict[str, Any], stage: str) -> torch.Tensor:
        """Cross-entropy per partition, summed; photos in no cell (-1) add nothing to a partition's term."""
        cells = batch["cells"]
        total = 0.0
        for p, logits in enumerate(outputs[self.outputs_name]):
            known = cells[:, p] >= 0
            if self.label_smoothing_km is None:
                term = (F.cross_entropy(logits.float(), cells[:, p], ignore_index=-1) if known.any()
                        else logits.sum() * 0)
            else:
                targets = soft_cell_targets(self.head.cell_points(p), batch["lat"], batch["lon"],
                                            self.label_smoothing_km)
                term = F.cross_entropy(logits.float(), targets)
            self.log(f"{stage}/loss_{p}", term, on_epoch=True, sync_dist=stage != "train", batch_size=len(cells))
            total = total + term
        self.log(f"{stage}/loss", total, prog_bar=True, on_epoch=True, sync_dist=stage != "train",
                 batch_size=len(cells))
        return total

    def evaluate_batch(self, batch: dict[str, Any], stage: str) -> None:
        if "image" not in batch:
            return
        outputs = self.outputs(batch["image"])
        self.loss(outputs, batch, stage)
        logits, errors = outputs[self.outputs_name], self.errors[stage]
        truth = batch["lat"], batch["lon"], batch["index"]
        points = self.head.cell_points(-1)
        best = self.head.log_probabilities(logits).argmax(-1)
        errors.update(MODEL, points[best, 0], points[best, 1], *truth)
        # the baseline guesses the coarsest partition's fullest cell for every photo: the finest
        # partition's fullest cells tie near t_max, so which one is "most populous" there is arbitrary
        guess = self.head.cell_points(0)[self.head.cell_counts(0).argmax()].expand(len(best), 2)
        errors.update(BASELINE, guess[:, 0], guess[:, 1], *truth)
        for p, part in enumerate(logits):
            top = part.argmax(-1)
            self.hits[stage].update(str(p), top == batch["cells"][:, p], batch["index"])
            errors.update(f"partition {p}", self.head.cell_points(p)[top, 0], self.head.cell_points(p)[top, 1], *truth)

    def _report(self, stage: str) -> dict[str, np.ndarray] | None:
        """The predictors' errors in km; the model's accuracies logged as ``<stage>/acc@<t>km``,
        ``median_km``, and each partition's ``top1/<p>``."""
        metric, hits = self.errors[stage], self.hits[stage]
        if not metric.update_called:
            return None
        errors, top1 = metric.compute(), hits.compute()
        metric.reset()
        hits.reset()
        self._log_accuracy(stage, errors[MODEL])
        for p, hit in top1.items():
            self.log(f"{stage}/top1/{p}", float(hit.mean()), rank_zero_only=True)
        return errors

    def _log_accuracy(self, prefix: str, errors_km: np.ndarray) -> None:
        for name, value in distance_accuracy(errors_km).items():
            self.log(f"{prefix}/{name}", value, prog_bar=name in ("median_km", "acc@200km"), rank_zero_only=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.errors["val"].reset()
            self.hits["val"].reset()
            return
        self._report("val")

    def on_test_epoch_end(self) -> None:
        errors = self._report("test")
        if errors is None:
            return
        self._log_accuracy("test/baseline", errors[BASELINE])
        if not self.trainer.is_global_zero:
            return
        sources = [Path(p.source).stem for p in self.trainer.datamodule.partitions]
        columns = {BASELINE: errors[BASELINE]}
        if len(sources) > 1:  # each partition alone beside their hierarchical product, as TIB reports them
            columns.update({f"{src} alone": errors[f"partition {p}"] for p, src in enumerate(sources)})
        columns["hierarchy" if len(sources) > 1 else MODEL] = errors[MODEL]
        table = accuracy_table({name: distance_accuracy(km) for name, km in columns.items()})
        out = Path(self.trainer.default_root_dir)
        atomic_write(out / "geolocation_test.md", lambda tmp: tmp.write_text(table + "\n"))
        save_distance_curve(columns, out / "geolocation_test.png", f"test: {len(errors[MODEL])} photos")
        log.info("geolocation of %d test photos:\n%s", len(errors[MODEL]), table)
