"""Multi-attribute classification (CelebA-style faces, any K binary attributes) as a LightningModule,
optionally with other outputs beside them: regressions (age in years) and multi-class outputs
(gender, expression)."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mnet_vision.atomic import atomic_write
from mnet_vision.heads.classifier import BINARY_OUTPUT
from mnet_vision.metrics.attributes import (
    UNKNOWN,
    AttributeReport,
    AttributeScores,
    CategoricalReport,
    CategoricalScores,
    RegressionErrors,
    RegressionReport,
    outputs_table,
)
from mnet_vision.tasks.model_task import ModelTask
from mnet_vision.viz.attributes import save_attribute_ap_chart

log = logging.getLogger(__name__)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of ``(N, K)`` logits against labels 1/0, averaged over the known
    entries; unknown labels (-1) add nothing. ``pos_weight`` ``(K,)`` scales the positive term
    per attribute (``BCEWithLogitsLoss``'s meaning). Zero, with a gradient, when nothing is known."""
    known = labels != UNKNOWN
    losses = F.binary_cross_entropy_with_logits(logits.float(), (labels == 1).float(), pos_weight=pos_weight,
                                                reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


def masked_l1(predicted: torch.Tensor, target: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Mean ``|predicted - target| / scale`` over the known (non-NaN) targets of ``(N,)`` tensors: an L1
    loss in units of the output's spread (for age: years / scale). Zero, with a gradient, when
    nothing is known."""
    known = ~target.isnan()
    errors = (predicted.float() - target.float().nan_to_num()).abs() / scale
    return (errors * known).sum() / known.sum().clamp(min=1)


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``(N, C)`` logits against ``(N,)`` class indices, averaged over the known
    labels (-1 unknown adds nothing); zero, with a gradient, when nothing is known."""
    known = labels != UNKNOWN
    losses = F.cross_entropy(logits.float(), labels.long().clamp(min=0), reduction="none")
    return (losses * known).sum() / known.sum().clamp(min=1)


class AttributeTask(ModelTask):
    """K independent binary attributes as K logits (masked per-attribute BCE, mean AP), and optionally
    other outputs beside them: regressions (masked L1, mean absolute error) and multi-class outputs
    (masked cross-entropy, accuracy and per-class accuracy).

    Args:
        model: ``backbone -> ClassifierHead`` with ``num_attributes`` outputs; with ``regression`` or
            ``categorical`` outputs, ``backbone ->`` :class:`~mnet_vision.heads.classifier.AttributeOutputsHead`
            built with the same outputs.
        num_attributes: K (0: none, when there are other outputs).
        regression: ``name -> {"center", "scale"}`` (the head's): each scored against
            ``batch["targets"][name]`` ``(N,)`` floats (NaN unknown) by ``|error| / scale``.
        categorical: ``name -> class names``: each scored against ``batch["targets"][name]`` ``(N,)``
            class indices (-1 unknown).
        output_weights: ``name -> weight`` of each output's loss in the total (``logits`` for the
            binary attributes); 1 where not given.
        pos_weight: None; ``balanced`` (each attribute's negatives / positives among the known
            training labels, clamped to ``[1/max_pos_weight, max_pos_weight]``, so a rare
            attribute's positives weigh as much as its negatives); or a list of K weights.
        max_pos_weight: the clamp of ``balanced`` weights.
        threshold: the probability at or above which an attribute counts as present (accuracy);
            applied to the raw logits as ``logit >= log(threshold / (1 - threshold))``.
        optimizer, scheduler, weight_decay, compile, run_config: see :class:`ModelTask`.

    Validation and test log ``mean_ap`` (the paper's metric; scikit-learn's average precision of
    the raw logits, see :class:`~mnet_vision.metrics.attributes.AttributeScores`), ``mean_accuracy`` and
    ``mean_balanced_accuracy``; test also logs ``ap/<attribute>`` and writes ``attributes_test.md``
    (per-attribute table) and ``attributes_test.png`` (AP bar chart) to the trainer's
    ``default_root_dir``. Each regression output logs ``<name>_mae`` (in its unit), each multi-class
    output ``<name>_accuracy`` (test also ``<name>_accuracy/<class>``), over the samples whose
    batch carries its targets; ``attributes_test.md`` then also holds their table. The checkpoint
    monitor is ``val/mean_ap``, or without binary attributes ``val/loss`` (every output's, weighted).
    """

    monitor = ("val/mean_ap", "max")
    outputs_name = BINARY_OUTPUT

    def __init__(self, model: torch.nn.Module, num_attributes: int, optimizer: dict, scheduler: dict | None = None,
                 weight_decay: float = 4e-5, pos_weight: str | Sequence[float] | None = None,
                 max_pos_weight: float = 50.0, threshold: float = 0.5, compile: bool = False,
                 run_config: dict | None = None, regression: Mapping[str, Mapping[str, float]] | None = None,
                 categorical: Mapping[str, Sequence[str]] | None = None,
                 output_weights: Mapping[str, float] | None = None):
        super().__init__(model, optimizer, scheduler, weight_decay, compile, run_config)
        self.num_attributes = num_attributes
        self.regression = {name: float(spec["scale"]) for name, spec in (regression or {}).items()}
        self.categorical = {name: list(classes) for name, classes in (categorical or {}).items()}
        outputs = ([BINARY_OUTPUT] if num_attributes else []) + [*self.regression, *self.categorical]
        if not outputs:
            raise ValueError("AttributeTask needs num_attributes >= 1 or a regression or categorical output")
        unknown = sorted(set(output_weights or {}) - set(outputs))
        if unknown:
            raise ValueError(f"output_weights names {unknown}, which are not outputs of this task ({outputs})")
        self.output_weights = {name: float((output_weights or {}).get(name, 1.0)) for name in outputs}
        if not num_attributes:  # no mean AP: the loss, which weighs every output, picks the best checkpoint
            self.monitor = ("val/loss", "min")
        if isinstance(pos_weight, str) and pos_weight != "balanced":
            raise ValueError(f"pos_weight must be null, 'balanced' or a list of {num_attributes} weights, "
                             f"got {pos_weight!r}")
        if pos_weight is not None and not isinstance(pos_weight, str) and len(pos_weight) != num_attributes:
            raise ValueError(f"pos_weight lists {len(pos_weight)} weights for {num_attributes} attributes")
        self.pos_weight_cfg, self.max_pos_weight = pos_weight, float(max_pos_weight)
        self.pos_weight: torch.Tensor | None = (None if pos_weight is None or isinstance(pos_weight, str)
                                                else torch.tensor(pos_weight, dtype=torch.float32))
        self.scores = torch.nn.ModuleDict({stage: AttributeScores(threshold) for stage in ("val", "test")})
        self.errors = torch.nn.ModuleDict({f"{stage}_{name}": RegressionErrors() for stage in ("val", "test")
                                           for name in self.regression})
        self.categories = torch.nn.ModuleDict({f"{stage}_{name}": CategoricalScores() for stage in ("val", "test")
                                               for name in self.categorical})

    @property
    def mixed(self) -> bool:
        """Whether the model has outputs beside the binary logits (its head returns a dict)."""
        return bool(self.regression or self.categorical)

    def outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"logits": (N, K)}``, plus each regression ``(N,)`` and multi-class ``(N, C)`` output."""
        return self(images) if self.mixed else super().outputs(images)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(datamodule, "categorical", None) or {}
        for name, classes in data_classes.items():
            if name in self.categorical and list(classes) != self.categorical[name]:
                raise ValueError(f"the data's {name!r} classes {list(classes)} differ from the task's "
                                 f"{self.categorical[name]} (same names in the same order: the label is the index)")
        if self.pos_weight_cfg == "balanced" and stage == "fit" and self.num_attributes:
            positives, negatives = self.trainer.datamodule.label_counts()
            ratio = negatives.float() / positives.float().clamp(min=1)
            self.pos_weight = ratio.clamp(1 / self.max_pos_weight, self.max_pos_weight)
            log.info("balanced positive weights per attribute: %s",
                     ", ".join(f"{w:.2f}" for w in self.pos_weight.tolist()))

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], stage: str) -> torch.Tensor:
        """The weighted sum of each output's loss against the batch's labels, logged as
        ``<stage>/loss`` (and, with other outputs, ``<stage>/loss_<name>`` each): masked BCE for the
        binary attributes, :func:`masked_l1` for a regression, :func:`masked_cross_entropy` for a
        multi-class output. An output whose targets the batch lacks adds nothing."""
        n = len(batch["image"]) if "image" in batch else len(next(iter(outputs.values())))
        targets = batch.get("targets", {})
        terms: dict[str, torch.Tensor] = {}
        if self.num_attributes:
            logits = outputs[BINARY_OUTPUT]
            weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
            terms[BINARY_OUTPUT] = masked_bce(logits, batch["attributes"], weight)
        for name, scale in self.regression.items():
            if name in targets:
                terms[name] = masked_l1(outputs[name], targets[name], scale)
        for name in self.categorical:
            if name in targets:
                terms[name] = masked_cross_entropy(outputs[name], targets[name])
        loss = sum((self.output_weights[name] * value for name, value in terms.items()),
                   torch.zeros((), device=batch["image"].device if "image" in batch else None))
        if self.mixed:
            for name, value in terms.items():
                self.log(f"{stage}/loss_{name}", value, on_epoch=True, sync_dist=stage != "train", batch_size=n)
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, sync_dist=stage != "train", batch_size=n)
        return loss

    def evaluate_batch(self, batch: dict[str, Any], stage: str) -> None:
        if "image" not in batch:
            return
        outputs = self.outputs(batch["image"])
        self.loss(outputs, batch, stage)
        if self.num_attributes:
            self.scores[stage].update(outputs[BINARY_OUTPUT], batch["attributes"], batch["index"])
        targets = batch.get("targets", {})
        for name in self.regression:
            if name in targets:
                self.errors[f"{stage}_{name}"].update(outputs[name], targets[name], batch["index"])
        for name in self.categorical:
            if name in targets:
                self.categories[f"{stage}_{name}"].update(outputs[name], targets[name], batch["index"])

    def _other_reports(self, stage: str) -> tuple[dict[str, RegressionReport], dict[str, CategoricalReport]]:
        """The regression and multi-class reports of ``stage`` (those updated this epoch), logged."""
        found: tuple[dict, dict] = ({}, {})
        for reports, metrics, names in ((found[0], self.errors, self.regression), (found[1], self.categories,
                                                                                    self.categorical)):
            for name in names:
                metric = metrics[f"{stage}_{name}"]
                if metric.update_called:
                    reports[name] = metric.compute()
                    metric.reset()
        for name, report in found[0].items():
            self.log(f"{stage}/{name}_mae", report.mae, prog_bar=True, rank_zero_only=True)
        for name, report in found[1].items():
            self.log(f"{stage}/{name}_accuracy", report.accuracy, prog_bar=True, rank_zero_only=True)
            if stage == "test":
                for cls, value in zip(self.categorical[name], report.per_class.tolist()):
                    self.log(f"test/{name}_accuracy/{cls}", value, rank_zero_only=True)
        return found

    def _report(self, stage: str) -> AttributeReport | None:
        metric = self.scores[stage]
        if not metric.update_called:
            return None
        report = metric.compute()
        metric.reset()
        if report.undefined_ap:
            log.warning("%s: %d of %d attributes have no known positive label and no AP; mean AP is over the "
                        "other %d", stage, report.undefined_ap, len(report.ap), len(report.ap) - report.undefined_ap)
        for name, value in report.means().items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "mean_ap", rank_zero_only=True)
        return report

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            for metric in (self.scores["val"], *self.errors.values(), *self.categories.values()):
                metric.reset()
            return
        self._report("val")
        self._other_reports("val")

    def on_test_epoch_end(self) -> None:
        report = self._report("test")
        regression, categorical = self._other_reports("test")
        tables = []
        if report is not None:
            names = self.attribute_names()
            for name, value in zip(names, report.ap.tolist()):
                self.log(f"test/ap/{name}", value, rank_zero_only=True)
            tables.append(report.table(names))
            if self.trainer.is_global_zero:
                known = (report.positives + report.negatives).clamp(min=1)
                save_attribute_ap_chart(names, report.ap, report.positives / known,
                                        Path(self.trainer.default_root_dir) / "attributes_test.png",
                                        f"test: mean AP {report.mean_ap:.4f} over "
                                        f"{len(names) - report.undefined_ap} attributes")
        if regression or categorical:
            tables.append(outputs_table(regression, categorical, self.categorical))
        if tables and self.trainer.is_global_zero:
            table = "\n\n".join(tables)
            atomic_write(Path(self.trainer.default_root_dir) / "attributes_test.md",
                         lambda tmp: tmp.write_text(table + "\n"))
            log.info("per-attribute test metrics:\n%s", table)

    def attribute_names(self) -> list[str]:
        """The data's attribute names, or ``attr<j>`` when the data module has none."""
        datamodule = getattr(self.trainer, "datamodule", None)
        names = getattr(datamodule, "names", None)
        return list(names) if names else [f"attr{j}" for j in range(self.num_attributes)]
