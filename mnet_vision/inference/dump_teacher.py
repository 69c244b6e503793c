"""A teacher's outputs computed once over a split of its data, stored by sample id, so a
distillation run reads them (:class:`mnet_vision.tasks.teachers.StoredTeacher`) instead of running
the teacher every step. ``tools/dump_teacher.py`` is a thin wrapper over :func:`dump_teacher_outputs`.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from tqdm import tqdm

from mnet_vision.checkpoints import atomic_save
from mnet_vision.inference.load import MODEL_KEYS, load_model
from mnet_vision.outputs import check_writable, refuse_overwrite

log = logging.getLogger(__name__)

#: ``format`` entry of a stored-teacher file.
STORED_FORMAT = "mnet_vision.teacher_outputs/1"


def dump_teacher_outputs(ckpt: str | Path, out: str | Path, split: str = "train",
                         overrides: Any = None, device: str = "cpu", fast: bool = False) -> Path:
    """Run the model of training checkpoint ``ckpt`` once over a split of its data (or of
    ``overrides.data``) and write a stored-teacher file to ``out`` (atomically):
    ``{"format": STORED_FORMAT, "ids": [sample id], "outputs": {name: (N, ...) float32}, "teacher", "split"}``.

    The images go through the data's *evaluation* transform (no augmentation): the stored targets
    are those of the clean images, whatever crops the student later trains on. The split is read
    by the DataModule of the checkpoint's data config (its files, sample ids and loader); the model
    is :func:`~mnet_vision.inference.load.load_model`'s. ``fast`` (off by default: these are
    training targets, equal to a live checkpoint teacher's) folds BatchNorm, outputs within 1e-4.
    """
    refuse_overwrite(out, [ckpt], "out")
    check_writable(Path(out).parent, "folder of out=")  # before the pass over the data, not after it
    loaded = load_model(ckpt, fast, device, overrides, built=(*MODEL_KEYS, "data"))  # it builds the data too
    name = loaded.meta.outputs
    if name is None:
        raise ValueError(f"{ckpt} holds a {loaded.meta.task} model, which has no logits or embedding to teach; "
                         f"dump_teacher needs a classification, embedding or attribute checkpoint")
    datamodule = instantiate(loaded.cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    if not hasattr(datamodule, f"{split}_set"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    dataset = copy.copy(getattr(datamodule, f"{split}_set"))
    dataset.transform = datamodule.eval_transform
    ids: list[str] = []
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(datamodule._loader(dataset, shuffle=False), desc=f"teacher outputs ({split})", unit="batch"):
        if "image" not in batch:
            continue
        with torch.inference_mode():
            output = loaded.model(loaded.inputs(batch["image"]))
        for key, value in (output if isinstance(output, dict) else {name: output}).items():
            parts.setdefault(key, []).append(value.float().cpu())
        ids += list(batch["id"])
    if not ids:
        raise ValueError(f"no readable image in the {split} split of {loaded.cfg.data.get('root')}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save({"format": STORED_FORMAT, "ids": ids, "outputs": {k: torch.cat(v) for k, v in parts.items()},
                 "teacher": str(ckpt), "split": split}, out)
    log.info("stored %d teacher outputs (%s) to %s", len(ids), ", ".join(parts), out)
    return out
