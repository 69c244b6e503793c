"""Multi-attribute metrics: average precision per attribute and its mean (the MobileNets paper's
Table 12 metric), accuracy and balanced accuracy at a threshold.

Labels are ``(N, K)`` integers: 1 present, 0 absent, -1 unknown. Unknown labels are left out of
every metric, attribute by attribute (web data rarely labels everything). AP is torchmetrics'
``binary_average_precision`` on one attribute's known labels: the step-wise area under the
precision-recall curve over the distinct scores, the same as scikit-learn's
``average_precision_score``. An attribute with no known positive has no AP (NaN) and is left out
of the mean, and counted, rather than read as 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_average_precision
from torchmetrics.utilities import dim_zero_cat

from mnet_vision.metrics.photo_ids import check_photo_ids, once_each

UNKNOWN = -1


def _nanmean(values: torch.Tensor) -> float:
    known = values[~values.isnan()]
    return float(known.mean()) if known.numel() else math.nan


@dataclass
class AttributeReport:
    """Per-attribute metrics, each a ``(K,)`` tensor (NaN where undefined), and their means.

    ``positives``/``negatives``/``unknown`` count labels per attribute; ``mean_ap`` averages the
    attributes with an AP, ``undefined_ap`` counts the others.
    """

    ap: torch.Tensor
    accuracy: torch.Tensor
    balanced_accuracy: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor
    unknown: torch.Tensor

    def __setattr__(self, name: str, value) -> None:
        # torchmetrics squeezes every one-element tensor that compute() returns, dataclass fields
        # included: a one-attribute report keeps its (1,) shape
        super().__setattr__(name, value.reshape(-1) if isinstance(value, torch.Tensor) else value)

    @property
    def mean_ap(self) -> float:
        return _nanmean(self.ap)

    @property
    def mean_accuracy(self) -> float:
        return _nanmean(self.accuracy)

    @property
    def mean_balanced_accuracy(self) -> float:
        return _nanmean(self.balanced_accuracy)

    @property
    def undefined_ap(self) -> int:
        return int(self.ap.isnan().sum())

    def means(self) -> dict[str, float]:
        return {"mean_ap": self.mean_ap, "mean_accuracy": self.mean_accuracy,
                "mean_balanced_accuracy": self.mean_balanced_accuracy, "attributes_without_ap": float(self.undefined_ap)}

    def table(self, names: Sequence[str]) -> str:
        """A Markdown table: one row per attribute, then the means."""
        rows = ["| attribute | positives | negatives | unknown | AP | accuracy | balanced accuracy |",
                "|---|---:|---:|---:|---:|---:|---:|"]
        for j, name in enumerate(names):
            rows.append(f"| {name} | {int(self.positives[j])} | {int(self.negatives[j])} | {int(self.unknown[j])} "
                        f"| {float(self.ap[j]):.4f} | {float(self.accuracy[j]):.4f} | {float(self.balanced_accuracy[j]):.4f} |")
        rows.append(f"| **mean** | | | | **{self.mean_ap:.4f}** | **{self.mean_accuracy:.4f}** "
                    f"| **{self.mean_balanced_accuracy:.4f}** |")
        return "\n".join(rows)


def attribute_report(scores: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> AttributeReport:
    """Metrics of ``scores`` (``(N, K)`` probabilities, or any scores ranking the same way; accuracy
    thresholds them at ``threshold``) against ``labels`` (``(N, K)``: 1, 0, or -1 unknown)."""
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} must both be (N, K)")
    labels = labels.long()
    bad = ~((labels == 0) | (labels == 1) | (labels == UNKNOWN))
    if bad.any():
        raise ValueError(f"labels must be 1, 0 or {UNKNOWN} (unknown); found {labels[bad].unique().tolist()}")
    scores = scores.float()
    predicted = scores >= threshold
    positive, negative = labels == 1, labels == 0
    n_pos, n_neg = positive.sum(0), negative.sum(0)
    correct = (predicted & positive) | (~predicted & negative)
    known = n_pos + n_neg
    nan = torch.full((scores.shape[1],), math.nan)
    accuracy = torch.where(known > 0, correct.sum(0) / known.clamp(min=1), nan)
    recall = (predicted & positive).sum(0) / n_pos.clamp(min=1)
    specificity = (~predicted & negative).sum(0) / n_neg.clamp(min=1)
    balanced = torch.where((n_pos > 0) & (n_neg > 0), (recall + specificity) / 2, nan)
    ap = nan.clone()
    for j in torch.nonzero(n_pos > 0).flatten().tolist():
        keep = labels[:, j] != UNKNOWN
        ap[j] = binary_average_precision(scores[keep, j], labels[keep, j])
    return AttributeReport(ap, accuracy, balanced, n_pos, n_neg, (labels == UNKNOWN).sum(0))


class AttributeScores(Metric):
    """Collects ``(N, K)`` logits and labels over an epoch (gathered across processes, each photo
    once: see :mod:`~mnet_vision.metrics.photo_ids`) and computes :func:`attribute_report` on
    sigmoid probabilities."""

    full_state_update = False

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("photo_ids", default=[], dist_reduce_fx="cat")

    def update(self, logits: torch.Tensor, labels: torch.Tensor, photo_ids: torch.Tensor) -> None:
        check_photo_ids(photo_ids, len(labels))
        self.scores.append(torch.sigmoid(logits.detach().float()))
        self.labels.append(labels.to(torch.int8))
        self.photo_ids.append(photo_ids.long())

    def compute(self) -> AttributeReport:
        keep = torch.from_numpy(once_each(dim_zero_cat(self.photo_ids)))
        return attribute_report(dim_zero_cat(self.scores).cpu()[keep], dim_zero_cat(self.labels).cpu()[keep],
                                self.threshold)
