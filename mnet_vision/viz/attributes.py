"""Attribute pictures: average precision per attribute, beside its chance level."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from mnet_vision.viz.figure import pyplot, save_figure


def save_attribute_ap_chart(names: Sequence[str], ap: torch.Tensor, positive_rate: torch.Tensor | None,
                            path: str | Path, title: str = "") -> Path:
    """A horizontal bar per attribute: its average precision (sorted, the mean AP as a line) and,
    as a grey tick, its positive rate: the AP of a random ranking, so rare attributes read fairly.
    Attributes without an AP (no known positive) are drawn as empty rows marked "n/a".

    Args:
        names: ``A`` attribute names; ``ap`` ``(A,)`` APs in [0, 1], NaN where undefined;
            ``positive_rate`` ``(A,)`` share of known labels that are positive, or None.
    """
    plt = pyplot()
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
    # below: bars reach 1
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08 - 1.0 / len(names)), ncol=3, fontsize=8)
    return save_figure(fig, path, "attribute AP chart")
