"""Mult-Adds and parameters as the MobileNets paper counts them.

The paper counts the multiply-adds of convolutions and fully connected layers only (no BatchNorm,
activation or pooling) and the parameters of those layers (weights and biases; BatchNorm's
affine parameters are excluded, about 0.02 M at alpha 1). This follows that definition exactly,
with forward hooks, so it holds for any model built from config, whatever its head.
"""
from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from mnet_vision.markdown import markdown_table

COUNTED = (nn.Conv2d, nn.Linear)


def layer_type(module: nn.Module) -> str:
    """The Table 2 row a layer belongs to: ``conv_1x1``, ``depthwise_3x3``, ``conv_3x3``, ``fc`` ..."""
    if isinstance(module, nn.Linear):
        return "fc"
    kh, kw = module.kernel_size
    if module.groups == 1:
        return f"conv_{kh}x{kw}"
    if module.groups == module.in_channels:
        return f"depthwise_{kh}x{kw}"
    return f"grouped_conv_{kh}x{kw}"


@dataclass
class Complexity:
    """Totals and the per-layer-type breakdown (Table 2). Counts are absolute numbers.

    ``by_type[kind]`` holds ``mult_adds``, ``params`` (weights + biases) and ``weights``. Parameter
    shares are shares of weights: Table 2's parameter column adds up to 100 % that way (the FC
    bias, 1000 numbers, is outside it) and to 99.98 % with biases included.
    """

    mult_adds: int
    params: int
    params_with_bn: int
    input_size: tuple[int, int]
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)

    def shares(self) -> dict[str, dict[str, float]]:
        """Share (percent) of Mult-Adds and of weights per layer type."""
        total_weights = sum(c["weights"] for c in self.by_type.values())
        return {
            kind: {
                "mult_adds_pct": 100.0 * c["mult_adds"] / self.mult_adds if self.mult_adds else 0.0,
                "params_pct": 100.0 * c["weights"] / total_weights if total_weights else 0.0,
            }
            for kind, c in self.by_type.items()
        }

    def to_dict(self) -> dict:
        shares = self.shares()
        return {
            "mult_adds": self.mult_adds,
            "params": self.params,
            "params_with_bn": self.params_with_bn,
            "input_size": list(self.input_size),
            "by_type": {k: {**v, **shares[k]} for k, v in self.by_type.items()},
        }

    def table(self) -> str:
        """A Markdown table of the breakdown, the way Table 2 prints it, plus totals."""
        shares = self.shares()
        rows = [(kind, f"{c['mult_adds'] / 1e6:.2f}", f"{shares[kind]['mult_adds_pct']:.2f} %",
                 f"{c['params'] / 1e6:.4f}", f"{shares[kind]['params_pct']:.2f} %")
                for kind, c in sorted(self.by_type.items(), key=lambda kv: -kv[1]["mult_adds"])]
        rows.append(("**total**", f"**{self.mult_adds / 1e6:.2f}**", "100 %", f"**{self.params / 1e6:.4f}**", "100 %"))
        h, w = self.input_size
        return (markdown_table(rows, ["type", "Mult-Adds (M)", "share", "params (M)", "share"])
                + f"\n\ninput {h}x{w}; params including BatchNorm: {self.params_with_bn / 1e6:.4f} M")


def count_complexity(model: nn.Module, input_size: int | Iterable[int], in_channels: int = 3) -> Complexity:
    """Count Mult-Adds for one ``(1, in_channels, H, W)`` forward pass and parameters of ``model``.

    Parameters are those of every conv/FC layer in the model (weights and biases), whether or
    not the forward pass reaches it; Mult-Adds are those of the layers it reaches, once per call.
    The pass runs inside ``model.head.complexity_mode()`` when the head has one (detection heads:
    Faster-RCNN then runs its box head on exactly the paper's 300 proposals).
    """
    h, w = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    by_type: dict[str, dict[str, int]] = defaultdict(lambda: {"mult_adds": 0, "params": 0, "weights": 0})
    for module in model.modules():
        if isinstance(module, COUNTED):
            counts = by_type[layer_type(module)]
            counts["params"] += sum(p.numel() for p in module.parameters(recurse=False))
            counts["weights"] += module.weight.numel()

    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            macs = output.numel() * module.in_features
        else:
            kh, kw = module.kernel_size
            macs = output.numel() * (module.in_channels // module.groups) * kh * kw
        by_type[layer_type(module)]["mult_adds"] += macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, COUNTED)]
    was_training = model.training
    model.eval()
    # A head whose cost depends on the data (Faster-RCNN: proposals surviving NMS) pins it to the
    # paper's setting while counting; classification heads have no such mode.
    complexity_mode = getattr(getattr(model, "head", None), "complexity_mode", contextlib.nullcontext)
    try:
        with torch.no_grad(), complexity_mode():
            model(torch.zeros(1, in_channels, h, w))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    by_type = dict(by_type)
    return Complexity(
        mult_adds=sum(c["mult_adds"] for c in by_type.values()),
        params=sum(c["params"] for c in by_type.values()),
        params_with_bn=sum(p.numel() for p in model.parameters()),
        input_size=(h, w),
        by_type=by_type,
    )
