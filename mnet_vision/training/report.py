"""What a training or evaluation run prints when it ends: its metrics as a table, and its paths."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities import rank_zero_only

from mnet_vision.markdown import markdown_table


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """The numeric metrics as a two-column Markdown table, sorted by name: floats with 4 decimals,
    integers as they are; other values (paths, names) are left out."""
    rows = [(key, f"{value:.4f}" if isinstance(value, float) else value)
            for key, value in sorted(metrics.items()) if isinstance(value, (int, float))]
    return markdown_table(rows, ["metric", "value"])


@rank_zero_only
def print_metrics(metrics: Mapping[str, Any]) -> None:
    """Print :func:`metrics_table` and the run's best checkpoint, run folder and output folder.

    Once per job: :func:`mnet_vision.training.train` returns its metrics in every process of a
    multi-device run, so only rank 0 prints.
    """
    print(metrics_table(metrics))
    for key in ("best_checkpoint", "run_dir", "out_dir"):
        if metrics.get(key):
            print(f"{key}: {metrics[key]}")
