"""matplotlib set up for files, and saving a figure as a PNG."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend: files only, no display on servers and CI.

    Imported on first use, not with this module: matplotlib takes about a second to import, and
    tasks and tools that draw nothing in a run should not pay for it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, what: str) -> Path:
    """Save a matplotlib figure as a PNG at 100 dpi, cropped to its content (folders made as
    needed), close it, and log ``what`` was written where. Returns ``path`` as a Path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    log.info("%s written to %s", what, path)
    return path
