"""CPU training and inference throughput of Table 12's attribute students beside the teacher class.

Table 12 distils a 1600 M Mult-Adds, 7.5 M-parameter face-attribute classifier into MobileNet V1
students (widths 1.0/0.5/0.25, inputs 224/128) that emit 40 attribute logits from the pooled
features. Each student is ``task=attributes``' model (:func:`attribute_student`) with 40 outputs;
the peer is timm's ``resnet18`` with 40 outputs (about 1.8 G Mult-Adds at 224, the closest common
network to the paper's baseline). Every model is timed in three phases:

- ``train``: one full step in train mode: forward, ``binary_cross_entropy_with_logits`` against fixed
  random 0/1 targets, backward and an RMSprop step (the paper's optimizer, with the settings of
  ``conf/task/classification.yaml``; weight decay left out);
- ``infer``: eval mode under ``torch.inference_mode``, eager;
- ``folded``: the same on a BN-folded channels-last copy (:func:`~mnet_vision.inference.fuse.prepare_for_inference`).

All calls run in one process, interleaved with the order rotating each round
(:func:`mnet_vision.benchmarks.timing.median_seconds`), so drift in machine load hits all alike; medians
are reported with each phase's speed relative to the peer's in the same phase.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.benchmarks.models import task_model
from mnet_vision.benchmarks.timing import median_seconds, number_or_dash, timm_model
from mnet_vision.complexity import count_complexity
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.markdown import markdown_table
from mnet_vision.model import BackboneHeadModel

TABLE_12 = ((1.0, 224), (0.5, 224), (0.25, 224), (1.0, 128), (0.5, 128), (0.25, 128))
PHASES = ("train", "infer", "folded")


def attribute_student(alpha: float, num_attributes: int = 40) -> BackboneHeadModel:
    """A ``task=attributes`` student: MobileNet V1 of width ``alpha`` -> ``num_attributes`` logits
    (the classifier's head), in eval mode."""
    return task_model("attributes", alpha, f"task.num_attributes={num_attributes}").eval()


def _training_step(model: nn.Module, targets: torch.Tensor) -> Callable[[torch.Tensor], None]:
    """One optimisation step of a train-mode copy of ``model`` per call (the copy keeps the
    inference phases' weights untouched)."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=0.045, alpha=0.9, momentum=0.9, eps=1.0)

    def step(x: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(model(x), targets).backward()
        optimizer.step()
    return step


def _inference(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)
    return forward


def compare_attribute_models(batch: int = 32, settings: Sequence[tuple[float, int]] = TABLE_12,
                             num_attributes: int = 40, repeats: int = 5, warmup: int = 3,
                             threads: int | None = None, train: bool = True, peer: str | None = "resnet18",
                             peer_size: int = 224) -> list[dict]:
    """One row per model: Mult-Adds, params and median images/s of each phase
    (``train_images_per_s``, ``infer_images_per_s``, ``folded_images_per_s``; NaN for training when
    ``train`` is False) with ``*_vs_peer`` ratios (above 1: faster than the peer in that phase; NaN
    without a peer). ``peer`` is a timm model name timed at ``peer_size``, or None to leave it out."""
    if threads:
        torch.set_num_threads(threads)
    phases = PHASES if train else PHASES[1:]
    targets = torch.randint(0, 2, (batch, num_attributes), generator=torch.Generator().manual_seed(0)).float()
    models: dict[str, tuple[nn.Module, int]] = {
        f"{alpha} MobileNet-{size}": (attribute_student(alpha, num_attributes), size) for alpha, size in settings}
    teacher = timm_model(peer, num_classes=num_attributes) if peer else None
    peer_name = f"timm {peer}-{peer_size} (teacher class)"
    if teacher is not None:
        models[peer_name] = (teacher, peer_size)
    inputs = {size: torch.randn(batch, 3, size, size) for _, size in models.values()}
    calls: dict[tuple[str, str], tuple[Callable[[torch.Tensor], object], torch.Tensor]] = {}
    for name, (model, size) in models.items():
        if train:
            calls[name, "train"] = (_training_step(model, targets), inputs[size])
        calls[name, "infer"] = (_inference(model), inputs[size])
        calls[name, "folded"] = (_inference(prepare_for_inference(model, channels_last=True)),
                                 inputs[size].contiguous(memory_format=torch.channels_last))
    speed = {key: batch / t for key, t in median_seconds(calls, warmup, repeats).items()}
    rows = []
    for name, (model, size) in models.items():
        c = count_complexity(model, size)
        row = {"model": name, "input": size, "mult_adds": c.mult_adds, "params": c.params}
        for phase in PHASES:
            ours = speed.get((name, phase), float("nan"))
            row[f"{phase}_images_per_s"] = ours
            row[f"{phase}_vs_peer"] = ours / speed[peer_name, phase] if teacher is not None and phase in phases \
                else float("nan")
        rows.append(row)
    return rows


def attribute_table(rows: list[dict], batch: int) -> str:
    """The rows as a Markdown table (images/s at batch ``batch``)."""
    return markdown_table([(r["model"], r["input"], f"{r['mult_adds'] / 1e6:.0f}", f"{r['params'] / 1e6:.2f}",
                            number_or_dash(r["train_images_per_s"]), number_or_dash(r["infer_images_per_s"]),
                            number_or_dash(r["folded_images_per_s"]),
                            " / ".join(number_or_dash(r[f"{phase}_vs_peer"], "{:.2f}x") for phase in PHASES))
                           for r in rows],
                          ["model", "input", "Mult-Adds M", "params M", f"train img/s (batch {batch})", "infer img/s",
                           "infer folded img/s", "speed vs peer (train / infer / folded)"])


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, settings) and the table; ``args``: the call's arguments."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args['num_attributes']} attribute "
            f"logits, training step = forward + BCE + backward + RMSprop, median of {args['repeats']} interleaved "
            f"runs\n" + attribute_table(rows, args["batch"]))
