"""Geolocation benchmarks, one section per function pair (``*_rows`` measures, ``*_table`` prints).

Partition build (:func:`partition_build_rows`): PlaNet's adaptive S2 partition of 1 M and 10 M
photo locations with our numpy path (:func:`mnet_vision.geo.s2.leaf_cell_ids`, then
:func:`mnet_vision.geo.cells.build_partition`) beside the peer, the official s2geometry binding
called once per point from Python, as partition scripts do (TIB GeoEstimation runs s2sphere that
way). The peer's loop is timed on a sample (100 k points by default) and its time for the full set
is extrapolated linearly (it is a per-point loop) and labelled as such; it only computes the leaf
cell ids, so it is a lower bound for a per-point build. Both paths' ids are compared on the sample.

The photo locations are the synthetic set's (:func:`mnet_vision.data.synthetic.geo.sample_locations`):
cities drawn with probability proportional to their population, Gaussian spread around them.

Geolocation throughput (:func:`geolocation_rows`): photos per second through a PlaNet model on the
CPU, from a batch of input tensors to each photo's hierarchical cell probabilities and top-5 cells
(what ``tools/geolocate.py`` runs per batch), for ``task=planet`` MobileNet students beside TIB GeoEstimation's
backbone, ResNet-50 (timm, a dev extra), with the same partitions and post-processing.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from mnet_vision.benchmarks.models import task_model
from mnet_vision.benchmarks.timing import median_seconds, median_seconds_of, number_or_dash, timm_model
from mnet_vision.complexity import count_complexity
from mnet_vision.data.synthetic.geo import sample_locations
from mnet_vision.geo.cells import build_partition
from mnet_vision.geo.s2 import default_threads, leaf_cell_ids
from mnet_vision.heads.geocells import hierarchical_log_probabilities
from mnet_vision.markdown import markdown_table
from mnet_vision.model import BackboneHeadModel


def s2geometry_leaf_ids(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Leaf cell ids the way a per-point script gets them: one s2geometry call chain per point."""
    import s2geometry as s2  # lazy: the peer only; our path needs no s2geometry

    return np.array([s2.S2CellId(s2.S2LatLng.FromDegrees(a, b)).id() for a, b in zip(lat.tolist(), lon.tolist())],
                    dtype=np.uint64)


def partition_build_rows(sizes: Sequence[int] = (1_000_000, 10_000_000), t_max: int = 1000, t_min: int = 50,
                         min_level: int = 2, max_level: int = 20, loop_points: int = 100_000, repeats: int = 3,
                         seed: int = 0) -> list[dict]:
    """One row per number of points: our leaf ids and full partition build (median of ``repeats``)
    beside s2geometry's per-point loop, timed on ``loop_points`` of the same points and extrapolated.

    Row keys: ``points``, ``threads``, ``t_max``, ``t_min``, ``levels``, ``ours_leaf_s``, ``ours_build_s``
    (leaf ids, sort, split, means, centres), ``cells``, ``loop_points``, ``loop_us_per_point``, ``loop_extrapolated_s``,
    ``speedup_leaf`` (loop / our leaf ids), ``speedup_build`` (loop / our whole build), ``agree``
    (the two paths' ids are identical on the loop's points).
    """
    rows = []
    for n in sizes:
        places = sample_locations(n, np.random.default_rng(seed))
        lat, lon = places["lat"], places["lon"]
        # the lambdas run inside these calls, in this iteration: the loop variables cannot go stale
        leaf_s, leaves = median_seconds_of(lambda: leaf_cell_ids(lat, lon), repeats)  # noqa: B023
        build_s, (partition, _) = median_seconds_of(
            lambda: build_partition(lat, lon, t_max, t_min, min_level, max_level, progress=False),  # noqa: B023
            repeats)
        sample = np.random.default_rng(seed + 1).choice(n, size=min(loop_points, n), replace=False)
        loop_s, loop_ids = median_seconds_of(lambda: s2geometry_leaf_ids(lat[sample], lon[sample]), 1)  # noqa: B023
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
    # all numbers but the last column, a yes/NO
    return markdown_table([(f"{r['points']:,}", f"{r['ours_leaf_s']:.2f}", f"{r['ours_build_s']:.2f} ({r['cells']:,})",
                            f"{r['loop_us_per_point']:.2f} ({r['loop_points']:,} points)",
                            f"{r['loop_extrapolated_s']:.1f} (extrapolated)", f"{r['speedup_leaf']:.0f}x",
                            f"{r['speedup_build']:.0f}x", "yes" if r["agree"] else "NO") for r in rows],
                          ["points", "ours: leaf ids s", "ours: build s (cells)",
                           "s2geometry loop µs/point (measured on)", "s2geometry loop s (extrapolated)",
                           "loop / our leaf ids", "loop / our build", "same ids"], align="rrrrrrrl")


def _geolocation_call(model, ancestors):
    def locate(x):
        with torch.inference_mode():
            return hierarchical_log_probabilities(model(x), ancestors).topk(5, dim=1)
    return locate


def planet_model(alpha: float, num_cells: Sequence[int]) -> BackboneHeadModel:
    """A ``task=planet`` student: MobileNet V1 of width ``alpha`` -> one softmax over ``num_cells[i]``
    cells per partition, in eval mode."""
    cells = ",".join(str(int(n)) for n in num_cells)
    return task_model("planet", alpha, f"task.num_cells=[{cells}]").eval()


class _SplitLogits(torch.nn.Module):
    """A classifier over all partitions' cells at once, its logits split per partition (the peer's head)."""

    def __init__(self, net: torch.nn.Module, num_cells: Sequence[int]):
        super().__init__()
        self.net, self.num_cells = net, list(num_cells)

    def forward(self, x):
        return list(self.net(x).split(self.num_cells, dim=1))


def geolocation_rows(settings: Sequence[tuple[float, int]] = ((0.25, 128), (0.5, 160), (1.0, 224)),
                     num_cells: Sequence[int] = (67, 128, 321), batch: int = 32, repeats: int = 5, warmup: int = 3,
                     peer: str | None = "resnet50", peer_size: int = 224) -> list[dict]:
    """Photos per second of ``(alpha, input size)`` MobileNet PlaNets (:func:`planet_model`) and the
    peer, interleaved (:func:`mnet_vision.benchmarks.timing.median_seconds`), with Mult-Adds,
    parameters (body and final layers) and the speed relative to the peer."""
    calls, info = {}, {}
    # which coarse cell holds each fine cell changes what is gathered, not how much: any classes time alike
    ancestors = torch.stack([torch.arange(num_cells[-1]) * n // num_cells[-1] for n in num_cells], dim=1)
    for alpha, size in settings:
        model = planet_model(alpha, num_cells)
        name = f"{alpha:g} MobileNet-{size}"
        calls[name] = (_geolocation_call(model, ancestors), torch.randn(batch, 3, size, size))
        c = count_complexity(model, size)
        info[name] = {"input": size, "mult_adds": c.mult_adds, "params": c.params,
                      "final_params": c.by_type["fc"]["params"]}
    net = timm_model(peer, num_classes=sum(num_cells)) if peer is not None else None
    if net is None:
        peer = None
    else:
        model = _SplitLogits(net, num_cells).eval()
        calls[peer] = (_geolocation_call(model, ancestors), torch.randn(batch, 3, peer_size, peer_size))
        c = count_complexity(net, peer_size)
        fc = sum(p.numel() for p in net.get_classifier().parameters())
        info[peer] = {"input": peer_size, "mult_adds": c.mult_adds, "params": c.params, "final_params": fc}
    seconds = median_seconds(calls, warmup, repeats)
    rows = []
    for name, s in seconds.items():
        rows.append({"model": name, **info[name], "batch": batch, "photos_per_s": batch / s,
                     "vs_peer": (seconds[peer] / s) if peer in seconds else math.nan})
    return rows


def geolocation_table(rows: Sequence[dict]) -> str:
    """:func:`geolocation_rows` as a Markdown table."""
    return markdown_table([(r["model"], r["input"], f"{r['mult_adds'] / 1e6:,.0f}",
                            f"{r['params'] / 1e6:.2f} ({r['final_params'] / 1e6:.2f})", f"{r['photos_per_s']:.0f}",
                            number_or_dash(r["vs_peer"], "{:.1f}x")) for r in rows],
                          ["model", "input", "Mult-Adds M", "params M (final layers)", "photos/s", "vs peer"])


def partition_report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (settings, threads) and :func:`partition_table`; ``args``: the call's arguments."""
    first = rows[0]
    return (f"S2 partition build (t_max {first['t_max']}, t_min {first['t_min']}, levels {first['levels']}) of "
            f"population-weighted city points, {first['threads']} threads, median of {args['repeats']}; "
            f"s2geometry's per-point loop (leaf ids only) timed on {first['loop_points']:,} of the points and "
            f"extrapolated\n" + partition_table(rows))


def geolocation_report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, settings) and :func:`geolocation_table`; ``args``: the call's arguments."""
    cells = "/".join(str(n) for n in args["num_cells"])
    return (f"Geolocation on the CPU (torch {torch.__version__}, {torch.get_num_threads()} threads): network, "
            f"hierarchical product of {len(args['num_cells'])} partitions ({cells} cells) and top-5, batch "
            f"{args['batch']}, median of {args['repeats']} interleaved runs\n" + geolocation_table(rows))
