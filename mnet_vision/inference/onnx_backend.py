"""An exported ``.onnx`` model standing in for a PyTorch model where the code around it speaks torch:
``tools/eval.py ckpt=model.onnx`` scores the export with the task's own metrics and data.

:class:`OnnxNetwork` is an ``nn.Module`` whose forward runs the graph in ONNX Runtime
(:mod:`mnet_vision.deploy.runtime`) and returns what the PyTorch model returns (logits, an
embedding, per-partition logits, or a detector's list of detections), while the task's other uses
of the model (a geolocation head's cells and their hierarchy) read the source model's attributes.
:func:`onnx_evaluation` finds the checkpoint an export was made from, which holds the run config
(the data to score on, the task and its metrics).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnet_vision.deploy.runtime import OnnxModel, load_onnx


class OnnxNetwork(nn.Module):
    """``model``'s forward computed by the exported ``onnx_model``: the DataModule's eval batches
    (``(N, 3, S, S)`` preprocessed images, or a detector's list of ``(3, H, W)`` images in [0, 1])
    in, the PyTorch model's outputs out (on the inputs' device). ``model`` is kept, unused by the
    forward, for its attributes (``head``)."""

    def __init__(self, onnx_model: OnnxModel, model: nn.Module):
        super().__init__()
        self.onnx = onnx_model
        self.source = model

    @property
    def head(self) -> nn.Module:
        return self.source.head

    def forward(self, images: Any) -> Any:
        if isinstance(images, (list, tuple)):  # a detector's images: float [0, 1] exactly uint8 / 255
            arrays = [(image.detach().cpu().permute(1, 2, 0) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
                      for image in images]
            device = images[0].device if len(images) else torch.device("cpu")
            return [{k: torch.from_numpy(v).to(device) for k, v in found.items()} for found in self.onnx.detect(arrays)]
        outputs = self.onnx.run(np.ascontiguousarray(images.detach().cpu().float().numpy()))
        names = self.onnx.output_names
        tensors = [torch.from_numpy(outputs[name]).to(images.device) for name in names]
        if self.onnx.task == "GeolocationTask":
            return [t for name, t in zip(names, tensors) if name.startswith("logits_")]
        return tensors[0]


def onnx_evaluation(path: str | Path, threads: int | None = None) -> tuple[str, Callable[[nn.Module], nn.Module]]:
    """The checkpoint the export ``path`` was made from (its ``mnet_vision.source``; a relative path
    is also looked for beside the ``.onnx``) and the function that wraps that checkpoint's model
    into an :class:`OnnxNetwork` (``mnet_vision.training.evaluate``'s ``wrap_model``). An export
    whose checkpoint is not found, or one of a pretrained model (no data config), is an error
    naming the file and the checkpoint it needs."""
    model = load_onnx(path, threads)
    source = str(model.meta.source.get("checkpoint") or "")
    if not source or source.startswith("pretrained:"):
        raise ValueError(f"{path} was exported from {source or 'no named checkpoint'}: scoring an export needs the "
                         "training checkpoint it came from (its run config names the data and the metrics)")
    candidates = [Path(source)] + ([Path(path).parent / source] if not Path(source).is_absolute() else [])
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{path} was exported from the checkpoint {source} (mnet_vision.source.checkpoint), "
                                "which is not found here: scoring the export reads its run config (data, task, "
                                "metrics); run from the folder it was exported from, or keep the checkpoint")
    return str(found), lambda network: OnnxNetwork(model, network)
