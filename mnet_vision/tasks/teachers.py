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
- :class:`PretrainedTeacher` (:func:`pretrained_teacher`): face-api's face nets
  (:mod:`mnet_vision.pretrained.models`) with face-api's own input pipeline beside the student's.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.checkpoints import load_file, load_matching, model_state_dict
from mnet_vision.heads.letterbox import tf_legacy_resize_bilinear
from mnet_vision.inference.dump_teacher import STORED_FORMAT
from mnet_vision.inference.load import LoadedModel, load_model
from mnet_vision.pretrained.models import PRETRAINED, load_pretrained


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



#: The face-api nets a :class:`PretrainedTeacher` can hold and the outputs each names: the descriptor's
#: 128-D ``embedding`` (Euclidean, 0.6 same person), ``age`` in years ``(N,)``, ``gender`` ``(N, 2)`` over
#: (male, female), ``expression`` ``(N, 7)`` over :data:`mnet_vision.heads.faceapi.EXPRESSIONS`.
TEACHER_OUTPUTS: dict[str, tuple[str, ...]] = {
    "faceapi_descriptor": ("embedding",),
    "faceapi_age_gender": ("age", "gender"),
    "faceapi_expression": ("expression",),
}


class PretrainedTeacher:
    """face-api's face nets as one frozen teacher, each fed what face-api would feed it.

    The student's batch holds ``image``: ``(N, 3, S, S)`` crops normalised ``(x - mean) / std`` with x in
    [0, 1]. The teacher undoes that normalisation (it knows the student's ``mean``/``std``: the data
    config's) and resizes the [0, 1] RGB square to each net's side (150 for the descriptor, 112 for the
    others) with face-api's own resize (TF's legacy bilinear; a square crop needs no padToSquare), so it
    sees the very pixels the student sees, as face-api would prepare them. Un-normalising needs nothing
    from the data module, so every data module of the project can feed it. With ``view`` set, the
    batch must carry that key instead: ``(N, 3, V, V)`` RGB in [0, 1], the same crop at a resolution of
    its own (e.g. 150 px while a 128 px student sees it smaller), which spares the teacher an upsampled
    input.

    Args:
        nets: ``name -> LoadedModel`` of face-api nets (keys of :data:`TEACHER_OUTPUTS`).
        mean, std: the student's per-channel pixel normalisation (3 values each, of [0, 1] pixels).
        view: the batch key of a separate teacher view, or None to un-normalise ``image``.
        probabilities: gender and expression as the nets' softmax probabilities (True) or as their
            logarithm (False): logits up to a per-sample constant, which softmax-based terms
            (:class:`~mnet_vision.tasks.distillation.HintonKD`) read exactly as the logits.
        normalize: the embedding L2-normalised (a student whose head normalises can match it exactly;
            face-api's descriptors have norms of about 1.4-1.5) or as the descriptor gives it.
    """

    def __init__(self, nets: dict[str, LoadedModel], mean: Sequence[float], std: Sequence[float],
                 view: str | None = None, probabilities: bool = True, normalize: bool = False):
        unknown = sorted(set(nets) - set(TEACHER_OUTPUTS))
        if unknown or not nets:
            raise ValueError(f"PretrainedTeacher: unknown face-api teacher net(s) {unknown or 'none given'}; "
                             f"expected one or more of {sorted(TEACHER_OUTPUTS)}")
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"PretrainedTeacher: mean and std must be 3 per-channel values (std > 0) of the "
                             f"student's normalisation (data.mean, data.std), got mean={list(mean)} std={list(std)}")
        self.nets, self.view, self.probabilities, self.normalize = nets, view, probabilities, normalize
        self.mean = torch.tensor([float(m) for m in mean]).view(1, 3, 1, 1)
        self.std = torch.tensor([float(s) for s in std]).view(1, 3, 1, 1)

    def pixels(self, batch: dict[str, Any]) -> torch.Tensor:
        """The teacher's ``(N, 3, V, V)`` RGB view in [0, 1] of the batch (see the class docstring)."""
        if self.view is None:
            images = batch["image"].float()
            return (images * self.std.to(images.device) + self.mean.to(images.device)).clamp(0.0, 1.0)
        if self.view not in batch:
            raise ValueError(f"PretrainedTeacher reads the teacher view {self.view!r} but the batch has only "
                             f"{sorted(batch)}; use a data module that writes it, or view=null to un-normalise "
                             f"the student's image")
        return batch[self.view].float()

    @torch.no_grad()
    def _run(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        if pixels.dim() != 4 or pixels.shape[1] != 3 or pixels.shape[2] != pixels.shape[3]:
            raise ValueError(f"PretrainedTeacher takes square RGB crops (N, 3, S, S), got {tuple(pixels.shape)}")
        found: dict[str, torch.Tensor] = {}
        for name, loaded in self.nets.items():
            size = loaded.meta.input_size
            inputs = pixels if pixels.shape[-1] == size else torch.stack(
                [tf_legacy_resize_bilinear(image, size, size) for image in pixels])
            model = loaded.model.to(pixels.device).eval()  # whatever a caller did, targets from the eval-mode net
            out = model(inputs.contiguous(memory_format=torch.channels_last) if loaded.fast else inputs)
            if name == "faceapi_descriptor":
                found["embedding"] = F.normalize(out, dim=1) if self.normalize else out
            elif name == "faceapi_age_gender":
                found["age"], found["gender"] = out["age"], self._scores(out["gender"])
            else:
                found["expression"] = self._scores(out)
        return {k: v.float() for k, v in found.items()}

    def _scores(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities if self.probabilities else probabilities.clamp_min(1e-12).log()

    def outputs(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return self._run(self.pixels(batch))

    def output_shapes(self, images: torch.Tensor) -> dict[str, tuple[int, ...]]:
        # shapes do not depend on the pixels: the probe goes in as the [0, 1] view, whatever ``view`` is
        return {k: tuple(v.shape[1:]) for k, v in self._run(images.clamp(0.0, 1.0)).items()}

    def check_ids(self, ids: Sequence[str], source: str) -> None:
        """A live teacher answers for any sample."""


def pretrained_teacher(names: Sequence[str], mean: Sequence[float], std: Sequence[float], view: str | None = None,
                       probabilities: bool = True, normalize: bool = False, fast: bool = True,
                       cache: str | None = None) -> PretrainedTeacher:
    """A :class:`PretrainedTeacher` of the face-api nets ``names`` (``["faceapi_descriptor"]``, or
    ``["faceapi_age_gender", "faceapi_expression"]`` ...), loaded by
    :func:`~mnet_vision.pretrained.models.load_pretrained` (fetched on first use; ``fast``: BN folded);
    the other arguments as the class's. An unknown or non-teacher name is refused before any fetch."""
    names = list(names)
    wrong = [n for n in names if n not in TEACHER_OUTPUTS]
    if wrong or not names or len(set(names)) != len(names):
        known = sorted(set(PRETRAINED) - set(TEACHER_OUTPUTS))
        raise ValueError(f"pretrained_teacher: names {names} must be distinct ones of {sorted(TEACHER_OUTPUTS)}"
                         + (f"; {[n for n in wrong if n in PRETRAINED]} are pretrained models but no teachers "
                            f"(a detector or landmarks: {known})" if any(n in PRETRAINED for n in wrong) else ""))
    return PretrainedTeacher({n: load_pretrained(n, fast=fast, cache=cache) for n in names}, mean, std, view,
                             probabilities, normalize)
