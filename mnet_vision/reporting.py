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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    log.info("confusion matrix written to %s", path)
    return path
