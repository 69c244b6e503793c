"""CPU embedding throughput of Table 14's MobileNet students beside a FaceNet-class network.

Each student is ``task=facenet_triplet``'s ``MobileNetV1 -> EmbeddingHead`` (128-D) at a Table 14
width and resolution; the peer is timm's ``inception_resnet_v2`` with a 128-D output at 160x160,
the closest network to FaceNet's Inception-ResNet-v1 that installs here (facenet-pytorch pins
torch 2.2). All run in one process with interleaved timing
(:func:`mnet_vision.benchmarks.timing.rotating_rounds`); BN-folded channels-last copies of the
students show the deployed speed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mnet_vision.benchmarks.models import task_model
from mnet_vision.benchmarks.timing import median_seconds, timm_model
from mnet_vision.complexity import count_complexity
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.markdown import markdown_table
from mnet_vision.model import BackboneHeadModel

# Table 14's rows that have a consistent width and resolution (the last row repeats "0.75 MobileNet-128")
TABLE_14 = ((1.0, 160), (1.0, 128), (0.75, 128), (0.5, 128), (0.25, 128))


def mobilenet_embedder(alpha: float, dim: int = 128) -> BackboneHeadModel:
    """A ``task=facenet_triplet`` student: MobileNet V1 of width ``alpha`` -> ``dim``-D embedding, in eval mode."""
    return task_model("facenet_triplet", alpha, f"task.embedding_dim={dim}").eval()


def compare_embedders(batch: int = 32, settings: Sequence[tuple[float, int]] = TABLE_14, repeats: int = 10,
                      warmup: int = 3, threads: int | None = None, peer: bool = True) -> list[dict]:
    """Median time per batch of each model; ``speed`` is relative to the first setting's eager model."""
    if threads:
        torch.set_num_threads(threads)
    models: dict[str, tuple[nn.Module, int]] = {}
    complexity: dict[str, tuple[float, float]] = {}
    for alpha, size in settings:
        model = mobilenet_embedder(alpha)
        name = f"{alpha} MobileNet-{size}"
        models[name] = (model, size)
        models[f"{name} (BN folded, channels_last)"] = (prepare_for_inference(model, channels_last=True), size)
        c = count_complexity(model, size)
        complexity[name] = complexity[f"{name} (BN folded, channels_last)"] = (c.mult_adds, c.params)
    teacher = timm_model("inception_resnet_v2", num_classes=128) if peer else None
    if teacher is not None:
        name = "timm inception_resnet_v2-160 (FaceNet class)"
        models[name] = (teacher, 160)
        c = count_complexity(teacher, 160)
        complexity[name] = (c.mult_adds, c.params)
    inputs = {}
    for name, (_, size) in models.items():
        x = torch.randn(batch, 3, size, size)
        inputs[name] = x.contiguous(memory_format=torch.channels_last) if "channels_last" in name else x
    with torch.inference_mode():
        medians = median_seconds({name: (model, inputs[name]) for name, (model, _) in models.items()}, warmup, repeats)
    base = medians[next(iter(models))]
    return [{"model": name, "input": models[name][1], "mult_adds": complexity[name][0], "params": complexity[name][1],
             "median_ms": 1000 * t, "images_per_s": batch / t, "speed": base / t} for name, t in medians.items()]


def embedder_table(rows: list[dict], batch: int) -> str:
    """The rows as a Markdown table."""
    return markdown_table([(r["model"], f"{r['mult_adds'] / 1e6:.0f} M", f"{r['params'] / 1e6:.2f} M",
                            f"{r['median_ms']:.1f}", f"{r['images_per_s']:.0f}", f"{r['speed']:.2f}x") for r in rows],
                          ["model", "Mult-Adds", "params", f"ms per batch of {batch}", "images/s",
                           "speed vs first row"])


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, settings) and the table; ``args``: the call's arguments."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, 128-D embeddings, "
            f"median of {args['repeats']} interleaved runs\n" + embedder_table(rows, args["batch"]))
