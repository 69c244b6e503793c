"""Our benchmarked models, built the way users build them: ``build_model(compose([...]))``.

Building from the task recipes (``conf/task/``) rather than from the classes keeps the tables
measuring what ``tools/train.py`` trains: the same backbone settings, head and dropout.
"""
from __future__ import annotations

from mnet_vision.config import compose
from mnet_vision.model import BackboneHeadModel, build_model


def task_model(task: str, alpha: float, *overrides: str) -> BackboneHeadModel:
    """``build_model`` of ``task=<task>`` with a MobileNet V1 backbone of width ``alpha`` and any
    further Hydra ``overrides`` (e.g. ``"task.num_classes=40"``), fresh weights, in train mode."""
    return build_model(compose([f"task={task}", "backbone=mobilenet_v1", f"backbone.alpha={alpha}", *overrides]))
