"""Results for people: Markdown tables and pictures."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_only
from torchmetrics.classification import MulticlassConfusionMatrix

log = logging.getLogger(__name__)


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """Numeric metrics as a two-column Markdown table, sorted by name."""
    rows = ["| metric | value |", "|---|---:|"]
    for key in sorted(metrics):
        value = metrics[key]
        if isinstance(value, (int, float)):
            rows.append(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    return "\n".join(rows)


@rank_zero_only
def print_metrics(metrics: Mapping[str, Any]) -> None:
    print(metrics_table(metrics))
    for key in ("best_checkpoint", "run_dir", "out_dir"):
        if metrics.get(key):
            print(f"{key}: {metrics[key]}")


def save_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str] | None, path: str | Path) -> Path:
    """Draw a ``(C, C)`` confusion matrix (rows: true class, columns: predicted) to a PNG with
    torchmetrics' own plot; counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * n + 2), max(4.0, 0.55 * n + 1.5)))
    MulticlassConfusionMatrix(n).plot(val=matrix.cpu(), ax=ax, labels=list(class_names) if class_names else None)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return _save_figure(fig, path, "confusion matrix")


def _save_figure(fig, path: str | Path, what: str) -> Path:
    """Save a matplotlib figure as a PNG (folders made as needed) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    log.info("%s written to %s", what, path)
    return path


def save_detections_picture(image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                            class_names: Sequence[str], path: str | Path, width: int = 2, min_side: int = 320) -> Path:
    """Draw detections on an image and save it as a PNG.

    Args:
        image: ``(3, H, W)`` float in [0, 1] or uint8.
        boxes: ``(K, 4)`` xyxy pixels of that image; ``labels`` ``(K,)`` model labels (index into
            ``class_names``); ``scores`` ``(K,)``. Each box is captioned ``name score`` in a colour per class.
        min_side: smaller images are enlarged (nearest neighbour, by a whole factor) before drawing,
            so that captions in torchvision's fixed-size font stay readable.
    """
    from PIL import Image
    from torchvision.utils import draw_bounding_boxes

    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
    factor = max(1, -(-min_side // min(image.shape[1:])))  # ceil
    if factor > 1:
        image = image.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
        boxes = boxes.detach().cpu().float() * factor
    labels = labels.detach().cpu().tolist()
    captions = [f"{class_names[int(c)]} {float(s):.2f}" for c, s in zip(labels, scores.detach().cpu().tolist())]
    colors = [_PALETTE[int(c) % len(_PALETTE)] for c in labels]
    drawn = image if not captions else draw_bounding_boxes(image, boxes.detach().cpu().float(), captions,
                                                             colors=colors, width=width)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(path)
    return path


# Distinct, readable box colours (Tableau 10), one per class label modulo 10.
_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
            "#bab0ac"]


def save_roc_curve(curves: Mapping[str, tuple[Any, Any]], path: str | Path,
                   mark_fars: Sequence[float] = (1e-4, 1e-3)) -> Path:
    """Draw verification ROC curves (TAR against FAR, FAR on a log axis) to a PNG.

    Args:
        curves: name -> ``(fpr, tpr)`` arrays (e.g. :func:`mnet_vision.metrics.verification.roc_points`);
            one line each, so a teacher and its student compare in one picture.
        mark_fars: FARs marked with dotted vertical lines (the TAR@FAR operating points).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    smallest = 1.0
    for name, (fpr, tpr) in curves.items():
        fpr, tpr = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
        positive = fpr > 0  # a log axis has no 0: the curve starts at the first false accept
        if positive.any():
            smallest = min(smallest, float(fpr[positive].min()))
        ax.plot(fpr[positive], tpr[positive], label=name)
    for far in mark_fars:
        ax.axvline(far, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(min(smallest, min(mark_fars, default=1.0)) / 2, 1.0)
    ax.set_ylim(0.0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return _save_figure(fig, path, "ROC curve")


def save_search_picture(results: Sequence[Mapping[str, Any]], path: str | Path, max_rows: int = 8) -> Path:
    """Draw face-search results to a PNG: one row per query, the query photo captioned with the
    answer (best identity or ``unknown``), then its matches with identity and cosine score. When a
    query file is named the LFW way (``<name>_0001.jpg``), matches of that person are framed green.

    Args:
        results: entries of :func:`mnet_vision.index.gallery.search_index` (``query``, ``identity``,
            ``matches`` with ``identity``, ``score``, ``source``); a query or match that is not an
            image file on disk (an embedding row) gets an empty cell.
    """
    import re

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mnet_vision.data.images import ImageReadError, read_rgb

    rows = list(results)[:max_rows]
    cols = 1 + max((len(r["matches"]) for r in rows), default=0)
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols, 2.1 * len(rows)), squeeze=False)

    def show(ax, file: str, title: str, colour: str) -> None:
        try:
            ax.imshow(read_rgb(file))
        except ImageReadError:
            pass  # an embedding row, or a gallery file moved since indexing: the caption still reads
        ax.set_title(title, fontsize=8, color=colour)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)

    for ax_row, r in zip(axes, rows):
        lfw_name = re.fullmatch(r"(.+)_\d{4}", Path(r["query"]).stem)
        person = lfw_name.group(1) if lfw_name else None
        show(ax_row[0], r["query"], f"{Path(r['query']).name}\n-> {r['identity']}", "black")
        for ax in ax_row[1:]:
            ax.axis("off")
        for ax, m in zip(ax_row[1:], r["matches"]):
            ax.axis("on")
            show(ax, m["source"], f"{m['identity']} {m['score']:.3f}", "#59a14f" if m["identity"] == person else "grey")
    return _save_figure(fig, path, "search results")


def save_attribute_ap_chart(names: Sequence[str], ap: torch.Tensor, positive_rate: torch.Tensor | None,
                            path: str | Path, title: str = "") -> Path:
    """A horizontal bar per attribute: its average precision (sorted, the mean AP as a line) and,
    as a grey tick, its positive rate: the AP of a random ranking, so rare attributes read fairly.
    Attributes without an AP (no known positive) are drawn as empty rows marked "n/a"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = ap.detach().float().cpu()
    order = sorted(range(len(names)), key=lambda j: (float("-inf") if ap[j].isnan() else float(ap[j])))
    fig, ax = plt.subplots(figsize=(7.0, max(3.0, 0.28 * len(names) + 1.2)))
    ys = range(len(order))
    ax.barh(ys, [0.0 if ap[j].isnan() else float(ap[j]) for j in order], color="tab:blue", label="AP")
    if positive_rate is not None:
        ax.scatter([float(positive_rate[j]) for j in order], ys, marker="|", s=120, color="0.3",
                   label="positive rate (chance AP)", zorder=3)
    for y, j in zip(ys, order):
        if ap[j].isnan():
            ax.text(0.01, y, "n/a", va="center", fontsize=8)
    mean = ap[~ap.isnan()].mean() if (~ap.isnan()).any() else None
    if mean is not None:
        ax.axvline(float(mean), color="tab:red", linestyle="--", label=f"mean AP {float(mean):.3f}")
    ax.set_yticks(list(ys), [names[j] for j in order], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("average precision")
    ax.set_title(title or "AP per attribute")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 1.0 / len(names)), ncol=3, fontsize=8)  # below: bars reach 1
    return _save_figure(fig, path, "attribute AP chart")


def save_distance_curve(errors_km: Mapping[str, Any], path: str | Path, title: str = "",
                        thresholds_km: Sequence[float] = (1, 25, 200, 750, 2500)) -> Path:
    """The share of photos located within each distance of the truth (distance on a log axis), one
    line per predictor (``errors_km``: name -> great-circle errors in km), Table 11's thresholds
    dotted: every scale at once, where the table samples five."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.0, 4.5))
    low, high = 0.1, 20_100.0  # 100 m to half the circumference
    grid = np.geomspace(low, high, 400)
    for name, errors in errors_km.items():
        errors = np.sort(np.asarray(errors, dtype=float))
        ax.plot(grid, np.searchsorted(errors, grid, side="right") / max(len(errors), 1), label=name)
    for t in thresholds_km:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.text(t, 1.01, f"{t:g} km", ha="center", va="bottom", fontsize=7, color="0.3")
    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("great-circle error (km)")
    ax.set_ylabel("share of photos within")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, pad=14)
    return _save_figure(fig, path, "distance curve")
