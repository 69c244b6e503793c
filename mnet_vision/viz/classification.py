"""Classification pictures: the confusion matrix."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torchmetrics.classification import MulticlassConfusionMatrix

from mnet_vision.viz.figure import pyplot, save_figure


def save_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str] | None, path: str | Path) -> Path:
    """Draw a ``(C, C)`` confusion matrix (rows: true class, columns: predicted) to a PNG with
    torchmetrics' own plot; counts in the cells."""
    plt = pyplot()
    n = matrix.shape[0]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * n + 2), max(4.0, 0.55 * n + 1.5)))
    MulticlassConfusionMatrix(n).plot(val=matrix.cpu(), ax=ax, labels=list(class_names) if class_names else None)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return save_figure(fig, path, "confusion matrix")
