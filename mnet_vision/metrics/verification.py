"""Face verification metrics: LFW 10-fold accuracy and TAR@FAR, written from their definitions.

Scores are similarities (higher = more likely the same identity; cosine similarity of L2-normalised
embeddings, or minus a distance). A pair is accepted as "same" when its score is strictly above the
threshold. Both protocols are written here rather than copied, because the widespread reference
routine (FaceNet's ``calculate_val``) interpolates FAR over a threshold grid, which fails on
repeated FAR values and scores good models 0 when the grid never reaches the target FAR
(docs/faces.md, Verification).

Everything ranks the scores as given, in float64: any real-valued similarity works, at any scale.
The ROC and its AUC are scikit-learn's (``roc_curve(drop_intermediate=False)``, ``roc_auc_score``),
written here because torchmetrics' versions read scores outside [0, 1] as logits and apply a
float32 sigmoid, which merges distinct large scores (all those above ~17 become 1.0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FoldAccuracy:
    """LFW-style k-fold accuracy: ``mean`` and ``std`` (population, as FaceNet reports it) of the
    per-fold accuracies, with the threshold each fold was scored at (chosen on the other folds)."""

    mean: float
    std: float
    fold_accuracies: tuple[float, ...]
    thresholds: tuple[float, ...]


def _as_pairs(scores, issame) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(issame).reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores ({scores.shape[0]}) and issame ({labels.shape[0]}) differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} score(s) are NaN or infinite")
    if labels.dtype != bool and not np.isin(labels, (0, 1)).all():
        raise ValueError("issame must hold booleans or 0/1")
    return scores, labels.astype(bool)


def best_threshold(scores, issame) -> float:
    """The threshold (accept iff ``score > threshold``) with the highest accuracy on these pairs;
    candidates are every cut between two distinct scores (midpoints) and below/above all of them,
    so the answer does not depend on a grid. The lowest such threshold wins a tie.

    Any real-valued scores work: the cut is always a float in ``[lower, upper)`` of the two scores
    it separates, so scores far from 0 (where ``s - 1 == s``) or adjacent floats (whose midpoint
    rounds onto one of them) still get a threshold that accepts exactly the pairs above the cut.
    """
    scores, labels = _as_pairs(scores, issame)
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order]
    # cut i accepts s[i:]: correct = positives at >= i + negatives at < i
    pos_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    neg_before = np.concatenate([[0], np.cumsum(~y)])
    correct = pos_from + neg_before
    valid = np.ones(len(s) + 1, dtype=bool)
    valid[1:-1] = s[1:] > s[:-1]  # never cut between equal scores
    best = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
    if best == 0:
        if not len(s):
            return 0.0
        below = s[0] - 1.0
        # s - 1 rounds back to s once |s| >= 2**53: that threshold would reject the lowest pair
        return float(below if below < s[0] else np.nextafter(s[0], -np.inf))
    if best == len(s):
        return float(s[-1])
    lower, upper = s[best - 1], s[best]
    middle = lower / 2 + upper / 2  # (lower + upper) / 2 overflows near the float64 limit
    # adjacent floats have no float strictly between them: the midpoint may round onto `upper`
    # (which would then be rejected); `lower` accepts the same pairs as any cut in the gap
    return float(middle if lower <= middle < upper else lower)


def kfold_accuracy(scores, issame, folds: int = 10) -> FoldAccuracy:
    """LFW's protocol: split the pairs into ``folds`` consecutive blocks in file order (no
    shuffling; LFW's ``pairs.txt`` has 10 blocks of 300 matched + 300 mismatched pairs); for each,
    choose the threshold on the other folds (:func:`best_threshold`) and report the accuracy
    ``(TP + TN) / N`` on this one."""
    scores, labels = _as_pairs(scores, issame)
    if not 2 <= folds <= len(scores):
        raise ValueError(f"need 2 <= folds <= number of pairs ({len(scores)}), got folds={folds}")
    blocks = np.array_split(np.arange(len(scores)), folds)
    accuracies, thresholds = [], []
    for block in blocks:
        train = np.ones(len(scores), dtype=bool)
        train[block] = False
        threshold = best_threshold(scores[train], labels[train])
        accuracies.append(float(np.mean((scores[block] > threshold) == labels[block])))
        thresholds.append(threshold)
    return FoldAccuracy(float(np.mean(accuracies)), float(np.std(accuracies)), tuple(accuracies), tuple(thresholds))


@dataclass(frozen=True)
class TarAtFar:
    """True accept rate at a false accept rate: ``tar`` of genuine pairs above ``threshold``, the
    ``far`` actually achieved there (<= ``far_target``) and the pair counts it rests on."""

    far_target: float
    tar: float
    far: float
    threshold: float
    genuine: int
    impostor: int


def tar_at_far(scores, issame, far: float, min_impostors_per_far: float = 10.0) -> TarAtFar:
    """TAR at ``far`` without interpolation: sort the impostor scores in descending order, allow
    ``k = floor(far * impostors)`` false accepts and set the threshold at the ``k``-th highest
    impostor score (0-based); pairs are accepted iff ``score > threshold``. Ties at the threshold are
    all rejected, so the achieved FAR never exceeds the target (it is reported, with the counts).

    Raises ``ValueError`` when there are fewer than ``min_impostors_per_far / far`` impostor pairs
    (below that the FAR is not measurable: LFW's 3000 impostor pairs cannot give FAR 1e-4), or no
    genuine pair.
    """
    scores, labels = _as_pairs(scores, issame)
    if not 0.0 < far < 1.0:
        raise ValueError(f"far must be in (0, 1), got {far}")
    impostor = np.sort(scores[~labels])[::-1]
    genuine = scores[labels]
    needed = math.ceil(min_impostors_per_far / far)
    if len(impostor) < needed:
        raise ValueError(f"TAR@FAR={far:g} needs at least {needed} impostor pairs ({min_impostors_per_far:g}/FAR), "
                         f"got {len(impostor)}: use more identities or images (all-vs-all pairs)")
    if len(genuine) == 0:
        raise ValueError("TAR@FAR needs at least one genuine (same-identity) pair")
    threshold = float(impostor[int(math.floor(far * len(impostor)))])
    return TarAtFar(far_target=far, tar=float(np.mean(genuine > threshold)),
                    far=float(np.mean(impostor > threshold)), threshold=threshold,
                    genuine=int(len(genuine)), impostor=int(len(impostor)))


def all_pairs(embeddings, identities) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-identity flag of every unordered pair ``i < j`` of an identity set.

    Args:
        embeddings: ``(N, D)``, L2-normalised here (so the score is the cosine similarity).
        identities: ``(N,)`` labels.
    Returns ``scores (N (N - 1) / 2,)`` float32 and ``issame`` bool, in row-major pair order.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    ids = np.asarray(identities).reshape(-1)
    if x.ndim != 2 or x.shape[0] != ids.shape[0]:
        raise ValueError(f"embeddings {x.shape} and identities ({ids.shape[0]},) do not match: "
                         "expected (N, D) and (N,)")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings hold NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{int((norms == 0).sum())} embedding(s) are all zero and have no direction")
    x = x / norms
    i, j = np.triu_indices(len(x), k=1)
    return np.einsum("nd,nd->n", x[i], x[j]), ids[i] == ids[j]


def _roc_counts(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false accepts ``(tps, fps)`` when accepting ``score >= t`` for each distinct score
    ``t`` in descending order (``thresholds``): scikit-learn's ``_binary_clf_curve``. Tied scores
    are one threshold, so a tie between a genuine and an impostor pair is one diagonal ROC step
    (and half a unit of area), never an order-dependent staircase. Raw float64 scores are compared
    as they are: no sigmoid, no cast to float32, so distinct scores stay distinct at any scale."""
    if not len(scores):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    order = np.argsort(scores, kind="mergesort")[::-1]
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of equal scores
    tps = np.cumsum(y, dtype=np.int64)[last]
    fps = (last + 1) - tps
    return tps, fps, s[last]


def roc_points(scores, issame) -> tuple[np.ndarray, np.ndarray]:
    """False and true accept rates ``(fpr, tpr)`` (float64) at every distinct score as a threshold
    (accept iff ``score >= t``), from (0, 0) to (1, 1): exactly scikit-learn's
    ``roc_curve(issame, scores, drop_intermediate=False)[:2]``. Scores may be any finite reals
    (cosine similarities, minus distances, logits of any size). A rate without pairs to count
    (no genuine, or no impostor pair) is NaN throughout, as in scikit-learn."""
    scores, labels = _as_pairs(scores, issame)
    tps, fps, _ = _roc_counts(scores, labels)
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / fps[-1] if fps[-1] > 0 else np.full(len(fps), np.nan)
        tpr = tps / tps[-1] if tps[-1] > 0 else np.full(len(tps), np.nan)
    return fpr, tpr


def roc_auc(scores, issame) -> float:
    """Area under the ROC of :func:`roc_points`: scikit-learn's ``roc_auc_score`` (the chance that
    a random genuine pair outscores a random impostor pair, ties counting half). Summed over
    integer counts (trapezoids of the ROC steps, times 2) and divided once, so it is exact to one
    rounding. Raises ``ValueError`` without both genuine and impostor pairs."""
    scores, labels = _as_pairs(scores, issame)
    tps, fps, _ = _roc_counts(scores, labels)
    if not len(tps) or tps[-1] == 0 or fps[-1] == 0:
        raise ValueError("the ROC AUC needs both genuine and impostor pairs")
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    twice_area = int(np.sum(np.diff(fps) * (tps[1:] + tps[:-1])))  # int64: exact
    return twice_area / (2 * int(tps[-1]) * int(fps[-1]))


def pair_scores(embeddings, paths, first, second) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of listed pairs (e.g. LFW's ``pairs.txt``) from embeddings keyed by path.

    Args:
        embeddings: ``(N, D)`` of the images at ``paths`` (L2-normalised here).
        first, second: the pairs' image paths, in file order.
    Returns the scores of the pairs whose two images were both embedded, and a bool mask over
    the pairs saying which those are (an image skipped as unreadable leaves its pairs out).
    """
    x = np.asarray(embeddings, dtype=np.float32)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    row = {str(p): i for i, p in enumerate(paths)}
    found = np.array([str(a) in row and str(b) in row for a, b in zip(first, second)], dtype=bool)
    a = [row[str(p)] for p, ok in zip(first, found) if ok]
    b = [row[str(p)] for p, ok in zip(second, found) if ok]
    return np.einsum("nd,nd->n", x[a], x[b]), found


def verification_report(embeddings, identities, fars=(1e-3, 1e-4), pairs=None, paths=None,
                        all_pair_scores=None) -> dict[str, float]:
    """The verification numbers of one embedded identity set, as flat ``name -> value``:

    - ``tar@far<f>`` (and the achieved ``far@far<f>``) for each ``f`` in ``fars`` on all-vs-all
      pairs (:func:`tar_at_far`); a FAR the set is too small for (fewer than 10/FAR impostor
      pairs) is left out;
    - ``auc``: area under the all-pairs ROC (:func:`roc_auc`, scikit-learn's ``roc_auc_score``);
    - ``genuine_pairs``, ``impostor_pairs``;
    - with ``pairs`` (an :class:`mnet_vision.data.lfw.LfwPairs`) and the images' ``paths``: the
      LFW protocol's ``accuracy`` and ``accuracy_std`` over ``pairs.sets`` folds in file order
      (:func:`kfold_accuracy`), ``pairs`` scored and ``pairs_missing`` (listed pairs whose images
      were missing or unreadable; the scored pairs are then split into even consecutive folds).

    ``all_pair_scores`` is ``all_pairs(embeddings, identities)`` when the caller already has it
    (the all-vs-all scores are the costly part: N (N - 1) / 2 of them).
    """
    scores, issame = all_pair_scores if all_pair_scores is not None else all_pairs(embeddings, identities)
    report: dict[str, float] = {"genuine_pairs": float(issame.sum()), "impostor_pairs": float((~issame).sum())}
    if issame.any() and (~issame).any():
        report["auc"] = roc_auc(scores, issame)
    for far in fars:
        if report["impostor_pairs"] >= math.ceil(10.0 / far) and issame.any():
            result = tar_at_far(scores, issame, far)
            report[f"tar@far{far:g}"] = result.tar
            report[f"far@far{far:g}"] = result.far
    if pairs is not None:
        if paths is None:
            raise ValueError("verification_report: pairs were given without the embedded images' paths")
        listed, found = pair_scores(embeddings, paths, pairs.first, pairs.second)
        same = np.asarray(pairs.issame, dtype=bool)[found]
        report["pairs_missing"] = float(len(pairs.missing) + int((~found).sum()))
        report["pairs"] = float(found.sum())
        if found.sum() >= 2 * pairs.sets:
            folds = kfold_accuracy(listed, same, folds=pairs.sets)
            report["accuracy"], report["accuracy_std"] = folds.mean, folds.std
    return report
