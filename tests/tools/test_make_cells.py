"""tools/make_cells.py as a user runs it: a photo list in, partition CSVs, maps and a table out."""
import runpy
import sys

import numpy as np
import pytest

from mnet_vision.data.cell_files import cells_table, make_cells
from mnet_vision.geo.cells import GeoCellPartition, ancestor_index
from tests.helpers.cli import REPO, run_tool


def write_photos(path, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    hubs = np.array([(48.86, 2.35), (40.71, -74.01), (-33.87, 151.21), (-17.7, 179.9)])
    which = rng.choice(len(hubs), n, p=[0.5, 0.3, 0.15, 0.05])
    lat = hubs[which, 0] + rng.normal(0, 0.8, n)
    lon = (hubs[which, 1] + rng.normal(0, 0.8, n) + 180) % 360 - 180
    lines = ["path,lat,lon"] + [f"img/{k:05d}.jpg,{a:.6f},{b:.6f}" for k, (a, b) in enumerate(zip(lat, lon))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_make_cells_writes_partitions_and_table(tmp_path):
    photos = write_photos(tmp_path / "train.csv")
    out = tmp_path / "cells"
    result = run_tool("make_cells.py", f"csv={photos}", f"out={out}", "t_max=[200,800]", "t_min=10", "map=false")
    lines = result.stdout.splitlines()
    header = lines.index("| t_max | cells | photos kept | dropped | levels | build seconds |")
    rows = [line.strip("|").split("|") for line in lines[header + 2:header + 4]]
    assert [int(r[0]) for r in rows] == [800, 200]  # coarsest first
    coarse, fine = (GeoCellPartition.read_csv(out / f"cells_10_{t}.csv") for t in (800, 200))
    for row, partition in zip(rows, (coarse, fine)):
        assert int(row[1]) == len(partition) and int(row[2]) == partition.counts.sum()
        assert int(row[2]) + int(row[3]) == 4000
    assert len(coarse) < len(fine)
    assert ancestor_index(fine, coarse).shape == (len(fine),)
    assert "4000 photos" in lines[0] and not list(out.glob("*.png"))
    assert lines[-1] == (f"train with: task=planet data=geotagged data.partitions=[{out}/cells_10_800.csv,"
                         f"{out}/cells_10_200.csv] data.num_cells=[{len(coarse)},{len(fine)}]")


def test_make_cells_with_maps_and_one_t_max(tmp_path):
    # in-process: the maps need matplotlib and mnet_vision.viz, slow to import in a subprocess
    photos = write_photos(tmp_path / "train.csv", n=1500)
    rows = make_cells(photos, tmp_path / "out", [300], t_min=5, max_level=12, draw_map=True, progress=False)
    assert [row["t_max"] for row in rows] == [300]
    assert rows[0]["csv"] == str(tmp_path / "out" / "cells_5_300.csv")
    assert (tmp_path / "out" / "cells_5_300.png").stat().st_size > 10_000
    assert int(rows[0]["levels"].split("-")[1]) <= 12
    assert "| 300 |" in cells_table(rows)


def test_make_cells_usage_and_errors(tmp_path, monkeypatch):
    # in-process (a subprocess only to print the usage would cost seconds of imports)
    monkeypatch.setattr(sys, "argv", ["make_cells.py", "csv=x.csv"])
    with pytest.raises(SystemExit, match="usage: python tools/make_cells.py csv="):
        runpy.run_path(str(REPO / "tools" / "make_cells.py"), run_name="__main__")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,lat,lon\na.jpg,48.8,2.3\nb.jpg,95.0,120.0\n")
    with pytest.raises(ValueError, match="bad.csv, line 3: latitude 95.0"):
        make_cells(bad, tmp_path, [100], t_min=1, draw_map=False, progress=False)
