"""Teachers for :class:`mnet_vision.tasks.DistillationTask`: a frozen model, or its stored outputs.

A teacher answers ``outputs(batch) -> {name: (N, ...) float tensor}`` with no gradients, and
``output_shapes(images)`` so the wrapper can check it against the student when it is built.
Teachers are plain objects, not ``nn.Module``s: the wrapper holds one without registering it, so
Lightning never switches it to train mode, the optimizer never sees its parameters and no
checkpoint stores it.

- :class:`ModelTeacher`: any ``nn.Module`` (built from config: a timm or torchvision model, a
  FaceNet-style model) with weights from a file; :func:`checkpoint_teacher` builds one from one of
  our training checkpoints.
- :class:`StoredTeacher`: outputs computed once by :func:`dump_teacher_outputs`
  (``tools/dump_teacher.py``), looked up by sample id, so training never runs the big teacher.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mnet_vision.checkpoints import atomic_save, load_file, load_matching, model_state_dict
from mnet_vision.outputs import check_writable, refuse_overwrite

log = logging.getLogger(__name__)

STORED_FORMAT = "mnet_vision.teacher_outputs/1"


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
    builds, its weights, and its task's output name (``logits`` for a classifier, ``embedding``)."""
    from mnet_vision.training import task_from_checkpoint  # training imports the tasks: only here

    cfg, task, _ = task_from_checkpoint(path)
    if getattr(task, "outputs_name", None) is None:
        raise ValueError(f"{path} holds a {type(task).__name__} model, which has no logits or embedding to teach")
    return ModelTeacher(task.model, outputs=task.outputs_name, input_size=input_size or cfg.task.get("input_size"))


class StoredTeacher:
    """Teacher outputs read from a file written by :func:`dump_teacher_outputs`.

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


def dump_teacher_outputs(ckpt: str | Path, out: str | Path, split: str = "train",
                         overrides: Any = None, device: str = "cpu") -> Path:
    """Run the model of training checkpoint ``ckpt`` once over a split of its data (or of
    ``overrides.data``) and write a :class:`StoredTeacher` file to ``out`` (atomically).

    The images go through the data module's *evaluation* transform (no augmentation): the stored
    targets are those of the clean images, whatever crops the student later trains on.
    """
    from hydra.utils import instantiate

    from mnet_vision.training import task_from_checkpoint

    refuse_overwrite(out, [ckpt], "out")
    check_writable(Path(out).parent, "folder of out=")  # before the pass over the data, not after it
    cfg, task, _ = task_from_checkpoint(ckpt, overrides)
    if getattr(task, "outputs_name", None) is None:
        raise ValueError(f"{ckpt} holds a {type(task).__name__} model, which has no logits or embedding to teach; "
                         f"dump_teacher needs a classification, embedding or attribute checkpoint")
    datamodule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if not hasattr(datamodule, f"{split}_set"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    dataset = copy.copy(getattr(datamodule, f"{split}_set"))
    dataset.transform = datamodule.eval_transform
    teacher = ModelTeacher(task.model.to(device), outputs=task.outputs_name)
    ids: list[str] = []
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(datamodule._loader(dataset, shuffle=False), desc=f"teacher outputs ({split})", unit="batch"):
        if "image" not in batch:
            continue
        for name, value in teacher.outputs({"image": batch["image"].to(device)}).items():
            parts.setdefault(name, []).append(value.cpu())
        ids += list(batch["id"])
    if not ids:
        raise ValueError(f"no readable image in the {split} split of {cfg.data.get('root')}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save({"format": STORED_FORMAT, "ids": ids, "outputs": {k: torch.cat(v) for k, v in parts.items()},
                 "teacher": str(ckpt), "split": split}, out)
    log.info("stored %d teacher outputs (%s) to %s", len(ids), ", ".join(parts), out)
    return out
