"""A model is ``backbone -> head``: the backbone returns the taps the head asked for."""
from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
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


def build_model(cfg: DictConfig) -> BackboneHeadModel:
    """Build ``backbone -> head`` from a composed config (``cfg.backbone`` and ``cfg.task.head``).

    The head config names the taps it needs in ``taps``; the backbone is built to return them and
    the head is built from their channels and strides.
    """
    head_cfg = OmegaConf.to_container(cfg.task.head, resolve=True)
    taps = head_cfg.pop("taps")
    backbone = instantiate(cfg.backbone, taps=list(taps))
    head = instantiate(head_cfg, in_taps=backbone.out_taps)
    return BackboneHeadModel(backbone, head)
