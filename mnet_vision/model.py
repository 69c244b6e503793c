"""A model is ``backbone -> head``: the backbone returns the taps the head asked for.

Detection heads wrap a torchvision detector that runs the backbone itself (it resizes and
normalises the images first); those heads get the backbone when built and the model is a
:class:`DetectorModel`, whose ``forward`` is torchvision's detector API.
"""
from __future__ import annotations

from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn


class BackboneHeadModel(nn.Module):
    """``forward(images (N, 3, H, W)) -> head output``; the head decides the output type."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, images: torch.Tensor) -> Any:
        return self.head(self.backbone(images))


class DetectorModel(BackboneHeadModel):
    """``forward(images, targets=None)``: images a list of ``(3, H, W)`` floats in [0, 1] (or an
    ``(N, 3, H, W)`` tensor); the loss dict in training, one ``{"boxes" (K, 4) xyxy pixels,
    "labels" (K,), "scores" (K,)}`` per image in eval mode (see ``heads.detector.DetectorHead``)."""

    def forward(self, images, targets=None) -> Any:
        return self.head(images, targets)


def build_model(cfg: DictConfig) -> BackboneHeadModel:
    """Build ``backbone -> head`` from a composed config (``cfg.backbone`` and ``cfg.task.head``).

    The head config names the taps it needs in ``taps``; the backbone is built to return them and
    the head is built from their channels and strides.
    """
    head_cfg = OmegaConf.to_container(cfg.task.head, resolve=True)
    taps = head_cfg.pop("taps")
    backbone = instantiate(cfg.backbone, taps=list(taps))
    if getattr(get_class(head_cfg["_target_"]), "takes_backbone", False):
        return DetectorModel(backbone, instantiate(head_cfg, in_taps=backbone.out_taps, backbone=backbone))
    return BackboneHeadModel(backbone, instantiate(head_cfg, in_taps=backbone.out_taps))
