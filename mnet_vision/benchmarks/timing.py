"""What every benchmark shares: interleaved timing, the optional timm peer and table numbers.

Peers run in the same process as our models, with the same threads and inputs, one call of each
in turn with the order rotating every round (:func:`rotating_rounds`), so drift in machine load and
cache effects hit all alike; medians are reported.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn

K = TypeVar("K")
R = TypeVar("R")


def rotating_rounds(names: Sequence[str], warmup: int, repeats: int) -> Iterator[tuple[str, bool]]:
    """``(name, measured)`` for every call of ``warmup + repeats`` rounds, each round calling every
    name once with the order rotating (so drift in machine load and cache effects hit all alike);
    ``measured`` is False during warm-up."""
    for i in range(warmup + repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            yield name, i >= warmup


def median_seconds(calls: Mapping[K, tuple[Callable[[torch.Tensor], object], torch.Tensor]], warmup: int,
                   repeats: int) -> dict[K, float]:
    """Median wall time in seconds of ``fn(x)`` for each ``key: (fn, x)``, the calls interleaved by
    :func:`rotating_rounds` (``warmup`` rounds untimed). Callers choose the grad mode."""
    times: dict[K, list[float]] = {key: [] for key in calls}
    for key, measured in rotating_rounds(list(calls), warmup, repeats):
        fn, x = calls[key]
        start = time.perf_counter()
        fn(x)
        if measured:
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def median_seconds_of(fn: Callable[[], R], repeats: int) -> tuple[float, R]:
    """Median wall time in seconds of ``repeats`` calls of ``fn()`` in a row (for one long job
    with no peer to interleave, e.g. a partition build), and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


TIMM_MISSING = "the benchmark compares against timm: pip install -e '.[dev]'"


def timm_model(name: str, required: bool = False, **kwargs: Any) -> nn.Module | None:
    """timm's ``name`` (``timm.create_model(name, pretrained=False, **kwargs)``) in eval mode, or
    None when timm is not installed; ``required``: raise ImportError instead of returning None."""
    try:
        import timm  # lazy: a dev extra, needed only for the peers (and slow to import)
    except ImportError as err:
        if required:
            raise ImportError(TIMM_MISSING) from err
        return None  # without it a table has only our rows
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def number_or_dash(value: float, fmt: str = "{:.1f}") -> str:
    """``value`` in ``fmt`` for a table cell, or "–" when it is NaN (not measured)."""
    return "–" if math.isnan(value) else fmt.format(value)
