"""The geo benchmarks at toy sizes: partition build rows (agreement with s2geometry), geolocation
throughput rows, their tables."""
import math

import pytest

from mnet_vision.benchmarks.geo import geolocation_rows, geolocation_table, partition_build_rows, partition_table


def test_partition_build_rows_and_table():
    rows = partition_build_rows(sizes=(3000, 6000), t_max=200, t_min=5, loop_points=500, repeats=1)
    assert [r["points"] for r in rows] == [3000, 6000]
    for r in rows:
        assert r["agree"] and r["cells"] > 0 and r["loop_points"] == 500
        assert r["loop_extrapolated_s"] == pytest.approx(r["loop_us_per_point"] * 1e-6 * r["points"])
        assert r["speedup_leaf"] > 0 and r["ours_build_s"] > 0
    table = partition_table(rows).splitlines()
    assert table[0].startswith("| points | ours: leaf ids s |") and len(table) == 4
    assert "(extrapolated)" in table[2] and "| yes |" in table[3]


def test_geolocation_rows_and_table():
    rows = geolocation_rows(settings=((0.25, 32),), num_cells=(3, 7), batch=2, repeats=1, warmup=0, peer=None)
    assert [r["model"] for r in rows] == ["0.25 MobileNet-32"]
    assert rows[0]["final_params"] == 256 * 10 + 10 and rows[0]["photos_per_s"] > 0 and math.isnan(rows[0]["vs_peer"])
    table = geolocation_table(rows).splitlines()
    assert table[0].startswith("| model | input | Mult-Adds M |") and table[2].endswith("| – |")


def test_geolocation_rows_with_the_peer():
    pytest.importorskip("timm")
    rows = geolocation_rows(settings=((0.25, 32),), num_cells=(3, 7), batch=1, repeats=1, warmup=0,
                            peer="resnet18", peer_size=32)
    assert [r["model"] for r in rows] == ["0.25 MobileNet-32", "resnet18"]
    assert rows[1]["final_params"] == 512 * 10 + 10 and rows[1]["vs_peer"] == 1.0
