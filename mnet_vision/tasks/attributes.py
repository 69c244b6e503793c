"""Multi-attribute classification (CelebA-style faces, any K binary attributes) as a LightningModule."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mnet_vision.atomic import atomic_write
from mnet_vision.metrics.attributes import UNKNOWN, AttributeReport, AttributeScores
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


class AttributeTask(ModelTask):
    """K independent binary attributes as K logits: masked per-attribute BCE, mean AP.

    Args:
        model: ``backbone -> ClassifierHead`` with ``num_attributes`` outputs.
        num_attributes: K.
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
    ``default_root_dir``.
    """

    monitor = ("val/mean_ap", "max")
    outputs_name = "logits"

    def __init__(self, model: torch.nn.Module, num_attributes: int, optimizer: dict, scheduler: dict | None = None,
                 weight_decay: float = 4e-5, pos_weight: str | Sequence[float] | None = None,
                 max_pos_weight: float = 50.0, threshold: float = 0.5, compile: bool = False,
                 run_config: dict | None = None):
        super().__init__(model, optimizer, scheduler, weight_decay, compile, run_config)
        self.num_attributes = num_attributes
        if isinstance(pos_weight, str) and pos_weight != "balanced":
            raise ValueError(f"pos_weight must be null, 'balanced' or a list of {num_attributes} weights, "
                             f"got {pos_weight!r}")
        if pos_weight is not None and not isinstance(pos_weight, str) and len(pos_weight) != num_attributes:
            raise ValueError(f"pos_weight lists {len(pos_weight)} weights for {num_attributes} attributes")
        self.pos_weight_cfg, self.max_pos_weight = pos_weight, float(max_pos_weight)
        self.pos_weight: torch.Tensor | None = (None if pos_weight is None or isinstance(pos_weight, str)
                                                else torch.tensor(pos_weight, dtype=torch.float32))
        self.scores = torch.nn.ModuleDict({stage: AttributeScores(threshold) for stage in ("val", "test")})

    def setup(self, stage: str) -> None:
        if self.pos_weight_cfg == "balanced" and stage == "fit":
            positives, negatives = self.trainer.datamodule.label_counts()
            ratio = negatives.float() / positives.float().clamp(min=1)
            self.pos_weight = ratio.clamp(1 / self.max_pos_weight, self.max_pos_weight)
            log.info("balanced positive weights per attribute: %s",
                     ", ".join(f"{w:.2f}" for w in self.pos_weight.tolist()))

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], stage: str) -> torch.Tensor:
        """Masked BCE of a batch's logits against its attribute labels, logged as ``<stage>/loss``."""
        logits = outputs[self.outputs_name]
        weight = None if self.pos_weight is None else self.pos_weight.to(logits.device)
        loss = masked_bce(logits, batch["attributes"], weight)
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, sync_dist=stage != "train",
                 batch_size=len(logits))
        return loss

    def evaluate_batch(self, batch: dict[str, Any], stage: str) -> None:
        if "image" not in batch:
            return
        outputs = self.outputs(batch["image"])
        self.loss(outputs, batch, stage)
        self.scores[stage].update(outputs[self.outputs_name], batch["attributes"], batch["index"])

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
            self.scores["val"].reset()
            return
        self._report("val")

    def on_test_epoch_end(self) -> None:
        report = self._report("test")
        if report is None:
            return
        names = self.attribute_names()
        for name, value in zip(names, report.ap.tolist()):
            self.log(f"test/ap/{name}", value, rank_zero_only=True)
        if self.trainer.is_global_zero:
            out = Path(self.trainer.default_root_dir)
            known = (report.positives + report.negatives).clamp(min=1)
            save_attribute_ap_chart(names, report.ap, report.positives / known, out / "attributes_test.png",
                                    f"test: mean AP {report.mean_ap:.4f} over "
                                    f"{len(names) - report.undefined_ap} attributes")
            table = report.table(names)
            atomic_write(out / "attributes_test.md", lambda tmp: tmp.write_text(table + "\n"))
            log.info("per-attribute test metrics:\n%s", table)

    def attribute_names(self) -> list[str]:
        """The data's attribute names, or ``attr<j>`` when the data module has none."""
        datamodule = getattr(self.trainer, "datamodule", None)
        names = getattr(datamodule, "names", None)
        return list(names) if names else [f"attr{j}" for j in range(self.num_attributes)]
