"""The partition-build benchmark at toy sizes: rows, agreement with s2geometry, the table."""
import numpy as np
import pytest

from mnet_vision.geo_benchmark import city_like_points, partition_build_rows, partition_table


def test_city_like_points():
    lat, lon = city_like_points(5000, seed=1)
    assert lat.shape == lon.shape == (5000,)
    assert (np.abs(lat) <= 90).all() and (np.abs(lon) <= 180).all()
    again, _ = city_like_points(5000, seed=1)
    assert np.array_equal(lat, again)  # seeded
    assert len(np.unique(np.round(lat))) < 150  # clustered around cities, not uniform


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
