"""Face verification and search pictures: ROC curves, and a grid of search results."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnet_vision.images import ImageReadError, read_rgb
from mnet_vision.viz.figure import pyplot, save_figure


def save_roc_curve(curves: Mapping[str, tuple[Any, Any]], path: str | Path,
                   mark_fars: Sequence[float] = (1e-4, 1e-3)) -> Path:
    """Draw verification ROC curves (TAR against FAR, FAR on a log axis) to a PNG.

    Args:
        curves: name -> ``(fpr, tpr)`` arrays (e.g. :func:`mnet_vision.metrics.verification.roc_points`);
            one line each, so a teacher and its student compare in one picture.
        mark_fars: FARs marked with dotted vertical lines (the TAR@FAR operating points).
    """
    plt = pyplot()
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
    return save_figure(fig, path, "ROC curve")


def save_search_picture(results: Sequence[Mapping[str, Any]], path: str | Path, max_rows: int = 8) -> Path:
    """Draw face-search results to a PNG: one row per query, the query photo captioned with the
    answer (best identity or ``unknown``), then its matches with identity and cosine score. When a
    query file is named the LFW way (``<name>_0001.jpg``), matches of that person are framed green.

    Args:
        results: entries of a face search (``query``, ``identity``, ``matches`` with ``identity``,
            ``score``, ``source``); a query or match that is not an image file on disk (an embedding
            row) gets an empty cell.
        max_rows: at most this many queries are drawn, the first ones.
    """
    plt = pyplot()
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
    return save_figure(fig, path, "search results")
