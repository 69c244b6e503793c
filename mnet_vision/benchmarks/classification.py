"""CPU inference speed of our MobileNet V1 classifier beside timm's ``mobilenetv1_100``.

Both models run in the same process with the same threads, the same inputs and interleaved
timing (one call of each in turn, the order rotating every round, so drift in machine load and
cache effects hit all alike); the median of the repeats is reported with the ratio to timm's
eager model.
"""
from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import torch
from torch import nn

from mnet_vision.backbones import MobileNetV1
from mnet_vision.backbones.convert import timm_mobilenetv1_to_mnet
from mnet_vision.deploy import prepare_for_inference
from mnet_vision.heads import ClassifierHead
from mnet_vision.model import BackboneHeadModel


def mobilenet_v1_classifier(alpha: float = 1.0, num_classes: int = 1000) -> BackboneHeadModel:
    """Our 1.0 MobileNet (relu6, as timm) with the ImageNet head, in eval mode."""
    backbone = MobileNetV1(alpha=alpha, activation="relu6")
    return BackboneHeadModel(backbone, ClassifierHead(backbone.out_taps, num_classes)).eval()


def _timm_mobilenetv1() -> nn.Module:
    try:
        import timm
    except ImportError as err:  # timm is a dev extra, only the benchmark and parity test need it
        raise ImportError("the benchmark compares against timm: pip install -e '.[dev]'") from err
    return timm.create_model("mobilenetv1_100", pretrained=False).eval()


def compare_with_timm(batch_sizes: Sequence[int] = (1, 32), size: int = 224, repeats: int = 20,
                      warmup: int = 3, threads: int | None = None) -> list[dict]:
    """Median forward latency per model and batch size; ``ratio`` is timm-eager time / this time
    (above 1: faster than timm)."""
    if threads:
        torch.set_num_threads(threads)
    ours = mobilenet_v1_classifier()
    timm_model = _timm_mobilenetv1()
    ours.load_state_dict(timm_mobilenetv1_to_mnet(timm_model.state_dict()))  # same weights in both
    fused = prepare_for_inference(ours, channels_last=True)
    timm_cl = copy.deepcopy(timm_model).to(memory_format=torch.channels_last)
    candidates: dict[str, tuple[nn.Module, bool]] = {
        "timm mobilenetv1_100 (eager)": (timm_model, False),
        "mnet_vision MobileNetV1 (eager)": (ours, False),
        "timm mobilenetv1_100 (channels_last)": (timm_cl, True),
        "mnet_vision MobileNetV1 (BN folded, channels_last)": (fused, True),
    }
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, size, size)
        inputs = {name: x.contiguous(memory_format=torch.channels_last) if cl else x
                  for name, (_, cl) in candidates.items()}
        with torch.inference_mode():
            medians = median_seconds({name: (model, inputs[name]) for name, (model, _) in candidates.items()},
                                     warmup, repeats)
        base = medians["timm mobilenetv1_100 (eager)"]
        for name, median in medians.items():
            rows.append({"model": name, "batch": batch, "median_ms": 1000 * median,
                         "images_per_s": batch / median, "ratio_vs_timm_eager": base / median})
    return rows


def rotating_rounds(names: Sequence[str], warmup: int, repeats: int) -> Iterator[tuple[str, bool]]:
    """``(name, measured)`` for every call of ``warmup + repeats`` rounds, each round calling every
    name once with the order rotating (so drift in machine load and cache effects hit all alike);
    ``measured`` is False during warm-up."""
    for i in range(warmup + repeats):
        for name in names[i % len(names):] + names[: i % len(names)]:
            yield name, i >= warmup


K = TypeVar("K")


def median_seconds(calls: Mapping[K, tuple[Callable[[torch.Tensor], object], torch.Tensor]], warmup: int,
                   repeats: int) -> dict[K, float]:
    """Median wall time of ``fn(x)`` for each ``key: (fn, x)``, the calls interleaved by
    :func:`rotating_rounds` (``warmup`` rounds untimed). Callers choose the grad mode."""
    times: dict[K, list[float]] = {key: [] for key in calls}
    for key, measured in rotating_rounds(list(calls), warmup, repeats):
        fn, x = calls[key]
        start = time.perf_counter()
        fn(x)
        if measured:
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}


def rows_table(rows: list[dict]) -> str:
    """The benchmark rows as a Markdown table."""
    out = ["| model | batch | median ms | images/s | speed vs timm eager |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['batch']} | {r['median_ms']:.2f} | {r['images_per_s']:.1f} "
                   f"| {r['ratio_vs_timm_eager']:.2f}x |")
    return "\n".join(out)
