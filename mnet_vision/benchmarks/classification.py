"""CPU inference speed of our MobileNet V1 classifier beside timm's ``mobilenetv1_100``.

Both models run in the same process with the same threads, the same inputs and interleaved
timing (:func:`mnet_vision.benchmarks.timing.rotating_rounds`); the median of the repeats is
reported with the ratio to timm's eager model.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mnet_vision.backbones.convert import timm_mobilenetv1_to_mnet
from mnet_vision.benchmarks.models import task_model
from mnet_vision.benchmarks.timing import median_seconds, timm_model
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.markdown import markdown_table
from mnet_vision.model import BackboneHeadModel


def mobilenet_v1_classifier(alpha: float = 1.0, num_classes: int = 1000) -> BackboneHeadModel:
    """Our MobileNet V1 (relu6, as timm) with the classification head (``task=classification``),
    ``num_classes`` outputs, in eval mode."""
    return task_model("classification", alpha, "backbone.activation=relu6", f"task.num_classes={num_classes}").eval()


def compare_with_timm(batch_sizes: Sequence[int] = (1, 32), size: int = 224, repeats: int = 40,
                      warmup: int = 3, threads: int | None = None) -> list[dict]:
    """Median forward latency per model and batch size of ``size`` x ``size`` inputs; ``ratio`` is
    timm-eager time / this time (above 1: faster than timm)."""
    if threads:
        torch.set_num_threads(threads)
    ours = mobilenet_v1_classifier()
    timm_net = timm_model("mobilenetv1_100", required=True)
    ours.load_state_dict(timm_mobilenetv1_to_mnet(timm_net.state_dict()))  # same weights in both
    fused = prepare_for_inference(ours, channels_last=True)
    timm_cl = copy.deepcopy(timm_net).to(memory_format=torch.channels_last)
    candidates: dict[str, tuple[nn.Module, bool]] = {
        "timm mobilenetv1_100 (eager)": (timm_net, False),
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


def rows_table(rows: list[dict]) -> str:
    """The benchmark rows as a Markdown table."""
    return markdown_table([(r["model"], r["batch"], f"{r['median_ms']:.2f}", f"{r['images_per_s']:.1f}",
                            f"{r['ratio_vs_timm_eager']:.2f}x") for r in rows],
                          ["model", "batch", "median ms", "images/s", "speed vs timm eager"])


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, settings) and the table; ``args``: the call's arguments."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args['size']}x{args['size']}, "
            f"median of {args['repeats']} interleaved runs\n" + rows_table(rows))
