"""Inference-time model preparation: BatchNorm folded into the preceding convolution, NHWC memory.

Folding removes one elementwise pass per conv (27 in MobileNet V1) and channels_last lets oneDNN /
cuDNN pick their NHWC depthwise kernels. Works on any model whose conv+BN pairs are adjacent
children of a module (our ``ConvBNAct``, torchvision's ``Conv2dNormActivation``).
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d among a module's children into that
    conv (in place, eval semantics), replacing the BN with Identity. Returns how many were folded."""
    folded = 0
    for parent in model.modules():
        children = list(parent.named_children())
        for (conv_name, conv), (bn_name, bn) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded


def prepare_for_inference(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """A copy of ``model`` in eval mode with BatchNorm folded and (optionally) channels_last weights.

    Outputs equal the eval-mode original within float rounding (tested to 1e-4). Feed it
    ``images.contiguous(memory_format=torch.channels_last)`` to avoid a layout conversion per call.
    """
    fused = copy.deepcopy(model).eval()
    fold_batchnorm(fused)
    if channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    return fused
