"""Optimizer parameter groups shared by the tasks."""
from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from torch import nn


def is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: decay on full/pointwise conv and FC weights; none on depthwise
    filters (the paper: they hold so few parameters that decay hurts), BatchNorm or biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            wants_decay = name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear)) and not is_depthwise(module)
            (decay if wants_decay else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizers(model: nn.Module, optimizer: dict, scheduler: dict | None, weight_decay: float) -> Any:
    """What ``configure_optimizers`` returns: the partial ``optimizer`` config called with
    :func:`weight_decay_groups`, and the partial ``scheduler["scheduler"]`` config called with the
    optimizer, stepped every ``scheduler["interval"]`` (``epoch`` or ``step``)."""
    opt = instantiate(optimizer)(weight_decay_groups(model, weight_decay))
    if scheduler is None:
        return opt
    return {"optimizer": opt, "lr_scheduler": {"scheduler": instantiate(scheduler["scheduler"])(opt),
                                               "interval": scheduler.get("interval", "epoch")}}
