"""What the detection heads share: torchvision's detectors driving our backbone.

torchvision's ``SSD`` and ``FasterRCNN`` own their whole pipeline (resize and normalise, backbone,
head, anchors, matching, loss, post-processing) and call their ``backbone`` attribute on the
batched image tensor. :class:`TapFeatures` is that attribute: it runs our backbone and returns the
taps (plus any extra layers) as the ``OrderedDict`` torchvision expects.

The backbone stays owned by the model (``model.backbone``, state-dict keys ``backbone.*`` exactly
as in classification), so an ImageNet checkpoint's backbone loads into a detector with
``task.init_from.scope=backbone`` and nothing is stored twice: the detection side holds the
backbone by a plain reference, not as a registered submodule.
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn


def hold(owner: nn.Module, name: str, module: nn.Module) -> None:
    """Keep ``module`` as ``owner.<name>`` without registering it (no parameters, no state-dict
    keys, no double counting); it moves and changes mode with the module that registers it."""
    object.__setattr__(owner, name, module)


class TapFeatures(nn.Module):
    """The ``backbone`` a torchvision detector calls: our backbone's ``taps`` in order, then each of
    ``extras`` applied to the previous map, as ``OrderedDict("0": ..., "1": ...)``.

    ``out_channels`` is a list of channel counts (what ``SSD`` reads) or one int (``FasterRCNN``
    needs an int, the same for every level).
    """

    def __init__(self, backbone: nn.Module, taps: Sequence[str], out_channels: int | list[int],
                 extras: nn.ModuleList | None = None):
        super().__init__()
        hold(self, "body", backbone)
        self.taps = list(taps)
        self.extras = extras if extras is not None else nn.ModuleList()
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        maps = self.body(images)
        features = [maps[t] for t in self.taps]
        x = features[-1]
        for layer in self.extras:
            x = layer(x)
            features.append(x)
        return OrderedDict((str(i), f) for i, f in enumerate(features))


class DetectorHead(nn.Module):
    """Base of heads that wrap a torchvision detector (``self.detector``) around the backbone.

    ``build_model`` passes such heads the backbone itself (``takes_backbone``) and wraps them in a
    :class:`mnet_vision.model.DetectorModel`. ``forward(images, targets=None)`` is torchvision's
    detector API: images are a list of ``(3, H, W)`` float tensors in [0, 1] (any sizes) or one
    ``(N, 3, H, W)`` tensor; in training it returns the loss dict, in eval mode one
    ``{"boxes": (K, 4) xyxy pixels of the input image, "labels": (K,), "scores": (K,)}`` per image.
    """

    takes_backbone = True
    detector: nn.Module

    def forward(self, images: list[torch.Tensor] | torch.Tensor,
                targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        return self.detector(list(images), targets)

    @contextlib.contextmanager
    def complexity_mode(self) -> Iterator[None]:
        """Settings under which one forward pass costs what the paper counts (see Faster-RCNN)."""
        yield
