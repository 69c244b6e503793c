"""face-api's landmark, expression, age/gender and descriptor nets as our modules, with their weights:
``backbone -> head`` (:class:`mnet_vision.model.BackboneHeadModel`) for each.

=================  ======================================  ==================================================
net                backbone (tap)                          head -> output
=================  ======================================  ==================================================
``landmarks68``    ``FaceApiDenseNet`` (``dense3``)        ``LandmarkHead`` -> ``(N, 68, 2)`` fractions of the input
``expression``     ``FaceApiDenseNet`` (``dense3``)        ``ExpressionHead`` -> ``(N, 7)`` probabilities
``age_gender``     ``TinyXception`` (``exit_flow``)        ``AgeGenderHead`` -> ``{"age" (N,), "gender" (N, 2)}``
``descriptor``     ``DlibResNet`` (``conv256_down_out``)   ``DescriptorHead`` -> ``(N, 128)``
=================  ======================================  ==================================================

Every net takes ``(N, 3, S, S)`` RGB in [0, 1] (``S`` in
:data:`mnet_vision.pretrained.faceapi_input.INPUT_SIZES`; a face crop becomes one by
:func:`~mnet_vision.pretrained.faceapi_input.faceapi_net_input`). They are built here rather than from a
``conf/`` experiment: they are served, not trained, and none has a task of ours yet.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mnet_vision.backbones.dlib_resnet import DlibResNet
from mnet_vision.backbones.faceapi_dense import FaceApiDenseNet
from mnet_vision.backbones.tiny_xception import TinyXception
from mnet_vision.heads.faceapi import AgeGenderHead, DescriptorHead, ExpressionHead, LandmarkHead
from mnet_vision.model import BackboneHeadModel
from mnet_vision.tfjs.faceapi_nets import NETS, faceapi_state_dict
from mnet_vision.tfjs.weights import read_weights

#: net -> (backbone class, its tap, head class)
ARCHITECTURES: dict[str, tuple[type[nn.Module], str, type[nn.Module]]] = {
    "landmarks68": (FaceApiDenseNet, "dense3", LandmarkHead),
    "expression": (FaceApiDenseNet, "dense3", ExpressionHead),
    "age_gender": (TinyXception, "exit_flow", AgeGenderHead),
    "descriptor": (DlibResNet, "conv256_down_out", DescriptorHead),
}


def build_faceapi_net(net: str) -> BackboneHeadModel:
    """face-api net ``net`` (a key of :data:`ARCHITECTURES`) with untrained weights."""
    if net not in ARCHITECTURES:
        raise ValueError(f"unknown face-api net {net!r}: expected one of {sorted(ARCHITECTURES)}")
    backbone_class, tap, head_class = ARCHITECTURES[net]
    backbone = backbone_class(taps=[tap])
    return BackboneHeadModel(backbone, head_class(in_taps=backbone.out_taps))


def load_faceapi_net(net: str, manifest: str | Path) -> BackboneHeadModel:
    """face-api net ``net`` with the weights of its TF.js ``manifest`` (shards beside it), every tensor
    placed (:func:`mnet_vision.tfjs.faceapi_nets.faceapi_state_dict`) and loaded strictly, in eval mode."""
    model = build_faceapi_net(net)
    state = faceapi_state_dict(net, read_weights(manifest), str(manifest))
    try:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    except RuntimeError as err:  # shapes or names that differ from face-api's net: a file of another build
        raise ValueError(f"{manifest}: its tensors do not fit face-api's {NETS[net][0]} ({net}): {err}") from err
    return model.eval()
