"""Cell partition files from a geotagged photo list: PlaNet partitions built for several ``t_max``,
written as CSVs with a map each (what ``tools/make_cells.py`` and the synthetic geotagged set run).

A workflow over three rooms (the photo list of :mod:`~mnet_vision.data.geotagged`, the partition of
:mod:`mnet_vision.geo.cells`, the maps of :mod:`mnet_vision.viz.geo`), so it lives here, above all
three, rather than in ``geo/`` (which would then import ``data/``, a cycle).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mnet_vision.data.geotagged import read_geotagged_csv
from mnet_vision.geo.cells import build_partitions
from mnet_vision.markdown import markdown_table
from mnet_vision.viz.geo import save_partition_map


def make_cells(csv_path: str | Path, out: str | Path, t_maxes: Sequence[int], t_min: int = 50, min_level: int = 2,
               max_level: int = 20, draw_map: bool = True, progress: bool = True) -> list[dict]:
    """Build the partitions of a geotagged photo list (:func:`mnet_vision.data.geotagged.read_geotagged_csv`),
    write ``out/cells_<t_min>_<t_max>.csv`` (and ``.png`` maps with ``draw_map``), and return one
    row per partition, coarsest first: ``t_max``, ``cells``, ``photos_kept``, ``photos_dropped``,
    ``levels`` ("min-max"), ``build_seconds``, ``shared_seconds`` (cell ids + sort, all partitions),
    ``csv`` and ``map`` (path or None)."""
    photos = read_geotagged_csv(csv_path)
    out = Path(out)
    rows = []
    for partition, stats in build_partitions(photos.lat, photos.lon, t_maxes, t_min, min_level, max_level, progress):
        stem = out / f"cells_{t_min}_{stats.t_max}"
        path = partition.to_csv(stem.with_suffix(".csv"))
        picture = None
        if draw_map:
            picture = save_partition_map(partition, stem.with_suffix(".png"),
                                         title=f"{Path(photos.source).name}: t_max {stats.t_max}, t_min {t_min}")
        rows.append({"t_max": stats.t_max, "cells": stats.cells_kept, "photos_kept": stats.photos_kept,
                     "photos_dropped": stats.photos_dropped, "cells_dropped": stats.cells_dropped,
                     "levels": f"{stats.min_level_used}-{stats.max_level_used}", "build_seconds": stats.seconds,
                     "shared_seconds": stats.shared_seconds, "csv": str(path),
                     "map": str(picture) if picture else None})
    return rows


def cells_table(rows: Sequence[dict]) -> str:
    """:func:`make_cells` rows as a Markdown table."""
    return markdown_table([(r["t_max"], r["cells"], r["photos_kept"], r["photos_dropped"], r["levels"],
                            f"{r['build_seconds']:.2f}") for r in rows],
                          ["t_max", "cells", "photos kept", "dropped", "levels", "build seconds"], align="rrrrlr")

