"""Printing results for people: Markdown tables."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.utilities import rank_zero_only


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
    for key in ("best_checkpoint", "run_dir"):
        if metrics.get(key):
            print(f"{key}: {metrics[key]}")
