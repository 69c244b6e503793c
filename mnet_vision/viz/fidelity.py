"""A student embedding's pair distances against its teacher's, one panel per student."""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mnet_vision.viz.figure import pyplot, save_figure


def save_pair_distances(panels: Mapping[str, Mapping[str, Any]], path: str | Path, columns: int = 4) -> Path:
    """Scatter the Euclidean distance of every pair of faces by the teacher (x) against the student's (y),
    to a PNG, with both same-person thresholds as lines: a faithful student lies along a rising curve, its
    points in the two quadrants where the decisions agree.

    Args:
        panels: student label -> ``{"teacher": (P,) distances, "student": (P,) distances,
            "teacher_threshold": float, "student_threshold": float}``.
    """
    plt = pyplot()
    cols = min(columns, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, (label, panel) in zip(axes.flat, panels.items(), strict=False):
        teacher, student = np.asarray(panel["teacher"], float), np.asarray(panel["student"], float)
        ax.scatter(teacher, student, s=6, alpha=0.6)
        ax.axvline(panel["teacher_threshold"], color="grey", linestyle=":", linewidth=1)
        ax.axhline(panel["student_threshold"], color="grey", linestyle=":", linewidth=1)
        r = np.corrcoef(teacher, student)[0, 1] if teacher.std() > 0 and student.std() > 0 else float("nan")
        ax.set_title(f"{label}\nPearson r = {r:.2f}", fontsize=9)
        ax.set_xlabel("teacher distance", fontsize=8)
        ax.set_ylabel("student distance", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path, "pair distances")
