"""Teachers for :class:`mnet_vision.tasks.DistillationTask`: a frozen model, or its stored outputs.

A teacher answers ``outputs(batch) -> {name: (N, ...) float tensor}`` with no gradients, and
``output_shapes(images)`` so the wrapper can check it against the student when it is built.
Teachers are plain objects, not ``nn.Module``s: the wrapper holds one without registering it, so
Lightning never switches it to train mode, the optimizer never sees its parameters and no
checkpoint stores it.

- :class:`ModelTeacher`: any ``nn.Module`` (built from config: a timm or torchvision model, a
  FaceNet-style model) with weights from a file; :func:`checkpoint_teacher` builds one from one of
  our training checkpoints.
- :class:`StoredTeacher`: outputs computed once by
  :func:`mnet_vision.inference.dump_teacher.dump_teacher_outputs` (``tools/dump_teacher.py``),
  looked up by sample id, so training never runs the big teacher.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.checkpoints import load_file, load_matching, model_state_dict
from mnet_vision.inference.dump_teacher import STORED_FORMAT
from mnet_vision.inference.load import load_model


class ModelTeacher:
    """A frozen model (eval mode, no grads) whose output is named ``outputs``.

    Args:
        model: the module; its forward returns a tensor (named ``outputs``) or a dict of them.
        weights: a state dict or one of our checkpoints to load strictly into it (None: as built).
        outputs: the name of a tensor output (``logits``, ``embedding``).
        input_size: the side the teacher wants; student batches of another size are resized
            (bilinear, antialiased). Both must use the same pixel normalisation.
    """

    def __init__(self, model: nn.Module, weights: str | None = None, outputs: str = "logits",
                 input_size: int | None = None):
        if weights:
            load_matching(model, model_state_dict(load_file(weights)), weights)
        self.model = model.eval().requires_grad_(False)
        self.name, self.input_size = outputs, input_size

    @torch.no_grad()
    def _run(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.model
        if next(model.parameters()).device != images.device:
            model.to(images.device)
        model.eval()  # whatever a caller did to the module, targets come from the eval-mode model
        if self.input_size and images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        out = model(images)
        out = out if isinstance(out, dict) else {self.name: out}
        return {k: v.float() for k, v in out.items()}

    def outputs(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._run(batch["image"])

    def output_shapes(self, images: torch.Tensor) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape[1:]) for k, v in self._run(images).items()}

    def check_ids(self, ids: Sequence[str], source: str) -> None:
        """A live teacher answers for any sample."""


def checkpoint_teacher(path: str, input_size: int | None = None) -> ModelTeacher:
    """A :class:`ModelTeacher` from one of our training checkpoints: the model its stored config
    builds, its weights, and its task's output name (``logits`` for a classifier, ``embedding``).
    The plain model, not the BN-folded one: training targets as the teacher was evaluated."""
    loaded = load_model(path, fast=False)
    if loaded.meta.outputs is None:
        raise ValueError(f"{path} holds a {loaded.meta.task} model, which has no logits or embedding to teach")
    return ModelTeacher(loaded.model, outputs=loaded.meta.outputs, input_size=input_size or loaded.meta.input_size)


class StoredTeacher:
    """Teacher outputs read from a file written by
    :func:`~mnet_vision.inference.dump_teacher.dump_teacher_outputs`.

    The file is checked when loaded (format, one row per id, no repeated ids) and against the
    training set when fitting starts (:meth:`check_ids`), so a file made for other data fails
    before the first step, naming the missing ids.
    """

    def __init__(self, path: str):
        data = load_file(path)
        if data.get("format") != STORED_FORMAT:
            raise ValueError(f"{path} is not a stored-teacher file (format {data.get('format')!r}, "
                             f"expected {STORED_FORMAT!r}); write one with tools/dump_teacher.py")
        ids, outputs = list(data["ids"]), dict(data["outputs"])
        for name, values in outputs.items():
            if values.ndim < 2 or values.shape[0] != len(ids):
                raise ValueError(f"{path}: output {name!r} has shape {tuple(values.shape)}, expected "
                                 f"({len(ids)}, ...) : one row per stored sample id")
        self.row = {sample: i for i, sample in enumerate(ids)}
        if len(self.row) != len(ids):
            raise ValueError(f"{path}: {len(ids) - len(self.row)} sample id(s) appear more than once")
        self.path, self.values = path, {k: v.float() for k, v in outputs.items()}

    def check_ids(self, ids: Sequence[str], source: str) -> None:
        """Raise ``ValueError`` if any of ``ids`` (the samples of ``source``) has no stored output."""
        missing = [i for i in ids if i not in self.row]
        if missing:
            raise ValueError(f"stored teacher {self.path} has no outputs for {len(missing)} of the {len(ids)} samples "
                             f"of {source} (first: {missing[:5]}); re-run tools/dump_teacher.py on that data")

    def outputs(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        try:
            rows = torch.tensor([self.row[i] for i in batch["id"]])
        except KeyError as err:
            raise ValueError(f"stored teacher {self.path} has no output for sample {err.args[0]!r}") from err
        device = batch["image"].device
        return {k: v[rows].to(device) for k, v in self.values.items()}

    def output_shapes(self, images: torch.Tensor) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape[1:]) for k, v in self.values.items()}

