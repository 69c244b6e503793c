"""Converting other projects' MobileNet weights to our key names.

Users who hold an ImageNet-trained timm ``mobilenetv1_100`` file (relu6, BN eps 1e-5, ImageNet
mean/std inputs) or torchvision MobileNet V2/V3 files get pretrained weights this way; nothing is
downloaded.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_TIMM_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(conv_dw|bn1|conv_pw|bn2)\.(.+)$")
_TIMM_PARTS = {"conv_dw": "dw.conv", "bn1": "dw.bn", "conv_pw": "pw.conv", "bn2": "pw.bn"}


def timm_mobilenetv1_to_mnet(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm ``mobilenetv1_*`` state dict to ``BackboneHeadModel`` keys (MobileNetV1 +
    ClassifierHead). timm's stages ``blocks.<stage>.<block>`` become ``conv1``..``conv13`` in order."""
    blocks = sorted({(int(m[1]), int(m[2])) for k in state if (m := _TIMM_BLOCK.match(k))})
    number = {sb: i for i, sb in enumerate(blocks, start=1)}
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if m := _TIMM_BLOCK.match(key):
            n = number[(int(m[1]), int(m[2]))]
            out[f"backbone.features.conv{n}.{_TIMM_PARTS[m[3]]}.{m[4]}"] = value
        elif key.startswith("conv_stem."):
            out["backbone.features.conv0.conv." + key[len("conv_stem."):]] = value
        elif key.startswith("bn1."):
            out["backbone.features.conv0.bn." + key[len("bn1."):]] = value
        elif key.startswith("classifier."):
            out["head.fc." + key[len("classifier."):]] = value
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"not a timm mobilenetv1 state dict: unexpected keys {unknown[:8]}")
    return out


def torchvision_mobilenet_to_mnet(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision MobileNet V2/V3 state dict: ``features.*`` keys go to the backbone
    unchanged; V2's single classifier layer (``classifier.1``) becomes the head's FC. V3's two-layer
    classifier has no counterpart in our head and is dropped (load it with ``scope=backbone``)."""
    out = {f"backbone.{k}": v for k, v in state.items() if k.startswith("features.")}
    if not any(k.startswith("classifier.3.") for k in state):
        out.update({"head.fc." + k[len("classifier.1."):]: v
                    for k, v in state.items() if k.startswith("classifier.1.")})
    return out
