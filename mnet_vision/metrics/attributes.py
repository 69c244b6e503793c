"""Multi-attribute metrics: average precision per attribute and its mean (the MobileNets paper's
Table 12 metric), accuracy and balanced accuracy at a threshold.

Labels are ``(N, K)`` integers: 1 present, 0 absent, -1 unknown. Unknown labels are left out of
every metric, attribute by attribute (web data rarely labels everything). AP is scikit-learn's
``average_precision_score`` on one attribute's known labels, written here in float64 numpy
(:func:`average_precision`): the step-wise area under the precision-recall curve over the distinct
scores, ties one step. It ranks the raw scores, whatever their scale: no sigmoid and no float32
cast, which would make confident logits (above ~17, where a float32 sigmoid is 1.0) equal and
change the AP (torchmetrics' ``binary_average_precision`` also applies a sigmoid by itself to
scores outside [0, 1]). An attribute with no known positive has no AP (NaN) and is left out of the
mean, and counted, rather than read as 0.

Beside the binary attributes a task may have other outputs, scored here too: a regression output
(age in years: :func:`regression_report`, the mean absolute error over the known targets, NaN
unknown) and multi-class outputs (gender, expression: :func:`categorical_report`, top-1 accuracy
and each class's accuracy over the known labels, -1 unknown). Their epoch metrics are
:class:`RegressionErrors` and :class:`CategoricalScores`.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from mnet_vision.markdown import markdown_table
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
                "mean_balanced_accuracy": self.mean_balanced_accuracy,
                "attributes_without_ap": float(self.undefined_ap)}

    def table(self, names: Sequence[str]) -> str:
        """A Markdown table: one row per attribute, then the means."""
        rows = [(name, int(self.positives[j]), int(self.negatives[j]), int(self.unknown[j]), f"{float(self.ap[j]):.4f}",
                 f"{float(self.accuracy[j]):.4f}", f"{float(self.balanced_accuracy[j]):.4f}")
                for j, name in enumerate(names)]
        rows.append(("**mean**", "", "", "", f"**{self.mean_ap:.4f}**", f"**{self.mean_accuracy:.4f}**",
                     f"**{self.mean_balanced_accuracy:.4f}**"))
        return markdown_table(rows, ["attribute", "positives", "negatives", "unknown", "AP", "accuracy",
                                     "balanced accuracy"])


def average_precision(scores, labels) -> float:
    """Average precision of one binary problem: ``sum_n (R_n - R_{n-1}) P_n`` over the distinct
    scores in descending order (accepting ``score >= s_n``), i.e. scikit-learn's
    ``average_precision_score``. ``scores`` are any reals (infinities too), ranked as float64
    (float32 and float16 inputs convert exactly); ``labels`` 1/0 (no unknowns). NaN without a
    positive, or when a score is NaN (where scikit-learn raises)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1) == 1
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.shape[0]}) and labels ({y.shape[0]}) differ in length")
    if not y.any() or np.isnan(s).any():  # a diverged model's NaN logits rank nothing
        return math.nan
    order = np.argsort(s, kind="mergesort")[::-1]
    s, y = s[order], y[order]
    # tied scores: one threshold, one step (`!=`, not np.diff: inf - inf is NaN, not a tie)
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), len(s) - 1]
    tps = np.cumsum(y, dtype=np.int64)[last]
    precision = tps / (last + 1)
    recall_gain = np.diff(np.r_[0, tps]) / tps[-1]
    return float(np.sum(recall_gain * precision))


def logit(p: float) -> float:
    """``log(p / (1 - p))`` in float64, -inf/+inf at (and beyond) 0 and 1: ``sigmoid(x) >= p`` iff
    ``x >= logit(p)``, with no sigmoid to saturate."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    return math.log(p) - math.log1p(-p)


def attribute_report(scores: torch.Tensor, labels: torch.Tensor, threshold: float = 0.5) -> AttributeReport:
    """Metrics of ``scores`` (``(N, K)`` probabilities, or any real scores ranking the same way, e.g.
    logits; accuracy counts ``score >= threshold`` as present) against ``labels`` (``(N, K)``: 1, 0,
    or -1 unknown). AP ranks the scores as they are (:func:`average_precision`). The threshold is
    compared at the scores' own precision, float32 at least (float32 probabilities against
    ``float32(threshold)``, as before; float64 scores in float64). For logits and a probability
    threshold ``p``, pass ``threshold=logit(p)`` (what :class:`AttributeScores` does)."""
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} must both be (N, K)")
    labels = labels.long().cpu()
    bad = ~((labels == 0) | (labels == 1) | (labels == UNKNOWN))
    if bad.any():
        raise ValueError(f"labels must be 1, 0 or {UNKNOWN} (unknown); found {labels[bad].unique().tolist()}")
    # never below float32 (half-precision scores would round the threshold), never rounded down
    # from float64 (distinct float64 scores may be one float32)
    scores = scores.detach().cpu().to(torch.promote_types(scores.dtype, torch.float32))
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
    ap = nan.double()  # float64: the report keeps each AP as computed
    values, known_labels = scores.double().numpy(), labels.numpy()
    for j in torch.nonzero(n_pos > 0).flatten().tolist():
        keep = known_labels[:, j] != UNKNOWN
        ap[j] = average_precision(values[keep, j], known_labels[keep, j])
    return AttributeReport(ap, accuracy, balanced, n_pos, n_neg, (labels == UNKNOWN).sum(0))


class PhotoScores(Metric):
    """Collects per-photo ``scores`` and ``labels`` over an epoch (gathered across processes, each photo
    once: see :mod:`~mnet_vision.metrics.photo_ids`); subclasses say how the labels are stored
    (:meth:`stored_labels`) and what ``compute`` makes of :meth:`collected`."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("photo_ids", default=[], dist_reduce_fx="cat")

    def stored_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels

    def update(self, scores: torch.Tensor, labels: torch.Tensor, photo_ids: torch.Tensor) -> None:
        check_photo_ids(photo_ids, len(labels))
        scores = scores.detach()
        self.scores.append(scores.to(torch.promote_types(scores.dtype, torch.float32)))  # raw, at least float32
        self.labels.append(self.stored_labels(labels.detach()))
        self.photo_ids.append(photo_ids.long())

    def collected(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scores, labels)`` of every photo scored this epoch, once each, in photo id order; the
        scores in float64 (exact from float32)."""
        keep = torch.from_numpy(once_each(dim_zero_cat(self.photo_ids)))
        return dim_zero_cat(self.scores).cpu()[keep].double(), dim_zero_cat(self.labels).cpu()[keep]


class AttributeScores(PhotoScores):
    """Collects ``(N, K)`` logits and labels over an epoch (each photo once, :class:`PhotoScores`)
    and computes :func:`attribute_report` on them.

    The state holds the raw logits (float32, or float64 when given so), not sigmoid probabilities:
    a float32 sigmoid is exactly 1.0 above a logit of ~17, which would tie a model's confident
    predictions and change their AP. AP ranks the logits (the sigmoid is monotonic: same ranking,
    same AP as exact probabilities); accuracy counts ``sigmoid(logit) >= threshold`` as
    ``logit >= logit(threshold)``, compared in float64."""

    def __init__(self, threshold: float = 0.5):
        super().__init__()
        self.threshold = threshold

    def stored_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.to(torch.int8)

    def compute(self) -> AttributeReport:
        # float64 logits, so the logit threshold is not rounded to float32
        logits, labels = self.collected()
        return attribute_report(logits, labels, logit(self.threshold))


@dataclass
class RegressionReport:
    """One regression output's error over the known targets: ``mae`` (mean absolute error, in the
    output's unit: years for age; NaN when no target is known), ``known`` and ``unknown`` counts."""

    mae: float
    known: int
    unknown: int


def mean_absolute_error(predicted, target) -> float:
    """``mean |predicted - target|`` over the entries whose target is known (finite; NaN is unknown),
    in float64: scikit-learn's ``mean_absolute_error`` on those entries. NaN when none is known."""
    p = np.asarray(predicted, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"predictions ({p.shape[0]}) and targets ({t.shape[0]}) differ in length")
    known = ~np.isnan(t)
    return float(np.abs(p[known] - t[known]).mean()) if known.any() else math.nan


def regression_report(predicted: torch.Tensor, target: torch.Tensor) -> RegressionReport:
    """:class:`RegressionReport` of ``(N,)`` predictions against ``(N,)`` targets (NaN: unknown);
    an infinite target is refused (a unit or parsing error, not an unknown)."""
    if predicted.shape != target.shape or predicted.ndim != 1:
        raise ValueError(f"predictions {tuple(predicted.shape)} and targets {tuple(target.shape)} must both be (N,)")
    target = target.detach().cpu().double()
    if torch.isinf(target).any():
        raise ValueError(f"regression targets must be finite or NaN (unknown); {int(torch.isinf(target).sum())} "
                         f"are infinite")
    unknown = int(target.isnan().sum())
    return RegressionReport(mean_absolute_error(predicted.detach().cpu().double().numpy(), target.numpy()),
                            len(target) - unknown, unknown)


@dataclass
class CategoricalReport:
    """One multi-class output over its known labels: ``accuracy`` (top-1; NaN when none is known),
    ``per_class`` ``(C,)`` each class's accuracy (the share of its known samples predicted as it,
    i.e. its recall; NaN for a class with no known sample), ``counts`` ``(C,)`` known samples per
    class, and ``unknown``."""

    accuracy: float
    per_class: torch.Tensor
    counts: torch.Tensor
    unknown: int

    def __setattr__(self, name: str, value) -> None:
        # torchmetrics squeezes one-element tensors that compute() returns: keep (C,) for C = 1
        super().__setattr__(name, value.reshape(-1) if isinstance(value, torch.Tensor) else value)


def categorical_report(scores: torch.Tensor, labels: torch.Tensor) -> CategoricalReport:
    """:class:`CategoricalReport` of ``(N, C)`` scores (logits or probabilities: the top-1 class is
    the argmax, the first of tied maxima) against ``(N,)`` labels in ``0..C-1`` or -1 (unknown)."""
    if scores.ndim != 2 or labels.shape != scores.shape[:1]:
        raise ValueError(f"scores {tuple(scores.shape)} must be (N, C) and labels {tuple(labels.shape)} (N,)")
    classes = scores.shape[1]
    labels = labels.detach().cpu().long()
    bad = (labels < UNKNOWN) | (labels >= classes)
    if bad.any():
        raise ValueError(f"labels must be class indices 0..{classes - 1} or {UNKNOWN} (unknown); found "
                         f"{labels[bad].unique().tolist()}")
    known = labels != UNKNOWN
    predicted = scores.detach().cpu().argmax(1)[known]
    truth = labels[known]
    correct = predicted == truth
    counts = torch.bincount(truth, minlength=classes)
    hits = torch.bincount(truth[correct], minlength=classes)
    nan = torch.tensor(math.nan, dtype=torch.float64)
    per_class = torch.where(counts > 0, hits.double() / counts.clamp(min=1), nan)
    accuracy = float(correct.double().mean()) if len(truth) else math.nan
    return CategoricalReport(accuracy, per_class, counts, int((~known).sum()))


class RegressionErrors(PhotoScores):
    """Collects ``(N,)`` predictions and targets (NaN unknown) over an epoch, each photo once;
    ``compute() -> RegressionReport``."""

    def stored_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.to(torch.promote_types(labels.dtype, torch.float32))

    def compute(self) -> RegressionReport:
        return regression_report(*self.collected())


class CategoricalScores(PhotoScores):
    """Collects ``(N, C)`` scores and ``(N,)`` labels (-1 unknown) over an epoch, each photo once;
    ``compute() -> CategoricalReport``."""

    def stored_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.long()

    def compute(self) -> CategoricalReport:
        return categorical_report(*self.collected())


def outputs_table(regression: Mapping[str, RegressionReport], categorical: Mapping[str, CategoricalReport],
                  class_names: Mapping[str, Sequence[str]]) -> str:
    """A Markdown table of the non-binary outputs: one row per regression output (its MAE), one per
    multi-class output (its accuracy) followed by a row per class (that class's accuracy); "–"
    where nothing is known."""
    def cell(value: float, digits: int) -> str:
        return "–" if math.isnan(value) else f"{value:.{digits}f}"

    rows = [(name, "MAE", report.known, report.unknown, cell(report.mae, 3)) for name, report in regression.items()]
    for name, report in categorical.items():
        rows.append((name, "accuracy", int(report.counts.sum()), report.unknown, cell(report.accuracy, 4)))
        rows += [(f"{name}: {cls}", "accuracy", int(report.counts[c]), "", cell(float(report.per_class[c]), 4))
                 for c, cls in enumerate(class_names[name])]
    return markdown_table(rows, ["output", "metric", "known", "unknown", "value"])
