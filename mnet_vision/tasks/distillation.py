"""A generic distillation wrapper: any student task, any teacher, weighted loss terms.

:class:`DistillationTask` wraps a student task (a LightningModule with ``outputs(images) -> {name:
tensor}`` and ``loss(outputs, batch, stage)``: classification, embedding, attributes) and a
teacher from :mod:`mnet_vision.tasks.teachers`. Training minimises

    supervised_weight * student.loss(...) + sum_k weight_k * term_k(student outputs, teacher outputs)

Validation, test, metrics and checkpoints are the student's: the wrapper hands them over, so a
distilled checkpoint evaluates and serves exactly like one trained alone (``tools/eval.py``,
``tools/build_index.py``). Only the student (and any projection a term adds) is optimised and
checkpointed; the teacher is frozen and never registered as a submodule.

The terms (``nn.Module``s, built from config by Hydra):

- :class:`HintonKD`: ``T^2 KL(softmax(t/T) || softmax(s/T))`` (Hinton et al. 2015); mixed with the
  ground truth through ``supervised_weight`` (``alpha CE + (1 - alpha) T^2 KL``).
- :class:`EmbeddingL2`: ``||s - t||^2`` summed over dimensions, mean over the batch: the paper's
  FaceNet distillation ("minimise the squared differences", Table 14).
- :class:`SoftTargetBCE`: per-attribute BCE against the teacher's probabilities
  ``sigmoid(t/T)``, averaged over attributes (multi-label; Table 12's attribute distillation).
- :class:`RegressionL1`: ``|s - t| / scale``, mean over the batch: a regression output (age in years)
  against the teacher's value. (A teacher's multi-class probabilities teach through
  :class:`HintonKD` given as their logarithm: ``log p`` is a logit vector, ``softmax(log p) = p``.)

Each term may ``project`` the student's output to the teacher's size (a trainable Linear) when
they differ; without it a mismatch is an error when the wrapper is built, not at step 1000.
"""
from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import nn

from mnet_vision.training.optim import build_optimizers

log = logging.getLogger(__name__)


class DistillationTerm(nn.Module):
    """One weighted loss between the student's and the teacher's output named ``output``.

    Args:
        weight: its weight in the total loss.
        output: which named output of student and teacher it compares.
        project: map the student's output to the teacher's size with a trainable Linear when they
            differ (built by :meth:`bind`); when False a size mismatch is an error.
    """

    def __init__(self, weight: float = 1.0, output: str = "logits", project: bool = False):
        super().__init__()
        self.weight, self.output, self.project = float(weight), output, project
        self.projection: nn.Module | None = None

    def bind(self, name: str, student: tuple[int, ...], teacher: tuple[int, ...]) -> None:
        """Check the output shapes (without the batch dimension) once, adding the projection if asked."""
        if student == teacher:
            return
        if not self.project or len(student) != 1 or len(teacher) != 1:
            raise ValueError(f"distillation term {name!r}: the student's {self.output!r} output has shape {student} "
                             f"but the teacher's has {teacher}; set distill.losses.{name}.project=true "
                             "to learn a linear projection"
                             + ("" if len(student) == len(teacher) == 1 else " (only for flat (N, D) outputs)"))
        self.projection = nn.Linear(student[0], teacher[0])
        log.info("distillation term %r: projecting the student's %d-D %s to the teacher's %d-D", name, student[0],
                 self.output, teacher[0])

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        student = student.float()  # losses in fp32 under mixed precision
        if self.projection is not None:
            student = self.projected(self.projection(student))
        return self.loss(student, teacher.float())

    def projected(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SoftenedTerm(DistillationTerm):
    """A term on logits softened by a temperature ``T`` and scaled by ``T^2``, which keeps the soft
    targets' gradients at the scale of hard ones as ``T`` grows (Hinton et al. 2015)."""

    def __init__(self, temperature: float = 1.0, weight: float = 1.0, output: str = "logits", project: bool = False):
        super().__init__(weight, output, project)
        if temperature <= 0:
            raise ValueError(f"{type(self).__name__}: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)


class HintonKD(SoftenedTerm):
    """Hinton KD on logits: ``T^2 * KL(softmax(t / T) || softmax(s / T))``, batch mean (T = 4 by default)."""

    def __init__(self, temperature: float = 4.0, **kwargs):
        super().__init__(temperature, **kwargs)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        # batchmean: the KL per sample, as Hinton's; plain "mean" would also divide by the class count
        return F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                        log_target=True) * t * t


class EmbeddingL2(DistillationTerm):
    """The paper's FaceNet distillation: ``sum_d (s - t)^2``, mean over the batch (``nn.MSELoss``
    would also divide by ``D``). A projected student is L2-normalised again (teachers' embeddings
    are unit vectors)."""

    def __init__(self, weight: float = 1.0, output: str = "embedding", project: bool = False, normalize: bool = True):
        super().__init__(weight, output, project)
        self.normalize = normalize

    def projected(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) if self.normalize else x

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return (student - teacher).pow(2).flatten(1).sum(1).mean()


class SoftTargetBCE(SoftenedTerm):
    """Multi-label distillation: ``T^2 * mean BCE(sigmoid(s / T), sigmoid(t / T))`` over samples and
    attributes (each attribute an independent Bernoulli: softmax KD does not apply)."""

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        return F.binary_cross_entropy_with_logits(student / t, torch.sigmoid(teacher / t)) * t * t


class RegressionL1(DistillationTerm):
    """A regression output's distillation: ``mean |s - t| / scale`` over the batch, ``(N,)`` outputs in
    their unit (years for age) and ``scale`` their typical spread, so the term is of the order of the
    classification terms beside it (an L1, as the mean absolute error it is scored by)."""

    def __init__(self, weight: float = 1.0, output: str = "age", scale: float = 1.0, project: bool = False):
        super().__init__(weight, output, project)
        if not scale > 0:
            raise ValueError(f"RegressionL1: scale must be > 0, got {scale}")
        self.scale = float(scale)

    def loss(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return (student - teacher).abs().mean() / self.scale


# The student's hooks the wrapper hands over unchanged: evaluation and its pictures are the student's.
_STUDENT_HOOKS = ("validation_step", "test_step", "on_validation_epoch_start", "on_validation_epoch_end",
                  "on_test_epoch_start", "on_test_epoch_end", "configure_model")


class DistillationTask(pl.LightningModule):
    """Trains a student task from a teacher.

    Args:
        model: the student's ``backbone -> head`` (``build_model``).
        student: Hydra config of the student task module (e.g. ``EmbeddingTask``'s), built here
            around ``model``; its optimizer, scheduler and weight decay train the student.
        teacher: Hydra config of a teacher (:mod:`mnet_vision.tasks.teachers`).
        losses: name -> Hydra config of a :class:`DistillationTerm`.
        supervised_weight: weight of the student's own loss on the labels (0: teacher only).
        input_size: side of the images, for the build-time shape check.
        run_config: the run config, stored in every checkpoint.

    Raises ``ValueError`` when built if a term's output is missing on either side or the shapes
    differ without a projection; when fitting starts if a stored teacher lacks training samples.
    """

    def __init__(self, model: nn.Module, student: dict, teacher: dict, losses: dict[str, dict],
                 supervised_weight: float = 0.0, input_size: int = 224, run_config: dict | None = None):
        super().__init__()
        self.student = instantiate(student, model=model, _recursive_=False, _convert_="all")
        if getattr(self.student, "outputs_name", None) is None or not hasattr(self.student, "loss"):
            raise ValueError(f"{type(self.student).__name__} cannot be a distillation student: it has no named "
                             f"outputs(images) and loss(outputs, batch, stage)")
        # The student logs through this module, which the trainer drives (Lightning only lets the
        # module it runs log); its metrics stay its own submodules.
        self.student.log = self.log
        for hook in _STUDENT_HOOKS:
            if hasattr(self.student, hook):
                setattr(self, hook, getattr(self.student, hook))
        self.monitor = self.student.monitor
        self.teacher = instantiate(teacher)  # a plain object: never registered, trained, or saved
        if not losses:
            raise ValueError("DistillationTask needs at least one loss term (distill.losses)")
        self.terms = nn.ModuleDict({name: instantiate(cfg) for name, cfg in losses.items()})
        self.supervised_weight = float(supervised_weight)
        self.run_config = run_config
        self._bind_terms(input_size)

    @property
    def model(self) -> nn.Module:
        return self.student.model

    def _bind_terms(self, input_size: int) -> None:
        """Run student and teacher once on two blank images and check every term against both."""
        probe = torch.zeros(2, 3, input_size, input_size)
        was_training = self.student.training
        self.student.eval()
        with torch.no_grad():
            student = {k: tuple(v.shape[1:]) for k, v in self.student.outputs(probe).items()}
        self.student.train(was_training)
        teacher = self.teacher.output_shapes(probe)
        for name, term in self.terms.items():
            for side, shapes in (("student", student), ("teacher", teacher)):
                if term.output not in shapes:
                    raise ValueError(f"distillation term {name!r} compares outputs named {term.output!r}, but the "
                                     f"{side} has {sorted(shapes)}")
            term.bind(name, student[term.output], teacher[term.output])

    def setup(self, stage: str) -> None:
        self.student.setup(stage)  # e.g. label statistics the student's own loss needs
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "sample_ids"):
            self.teacher.check_ids(datamodule.sample_ids("train"), f"the training split of {datamodule.root}")

    def forward(self, images: torch.Tensor) -> Any:
        return self.student(images)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if "image" not in batch:  # every sample of this batch was skipped as unreadable
            return None
        outputs = self.student.outputs(batch["image"])
        targets = self.teacher.outputs(batch)
        n = len(batch["image"])
        total = 0.0
        for name, term in self.terms.items():
            value = term(outputs[term.output], targets[term.output])
            self.log(f"train/distill_{name}", value, on_epoch=True, batch_size=n)
            total = total + term.weight * value
        if self.supervised_weight:
            total = total + self.supervised_weight * self.student.loss(outputs, batch, "train")
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite distillation loss on samples {batch.get('path', [])[:5]}")
        self.log("train/total_loss", total, prog_bar=True, on_epoch=True, batch_size=n)
        return total

    def configure_optimizers(self):
        student = self.student  # its own recipe, over its model and the terms' projections
        return build_optimizers(nn.ModuleList([student.model, self.terms]), student.optimizer_cfg,
                                student.scheduler_cfg, student.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mnet_config"] = self.run_config  # first: the student's metadata is derived from it
        self.student.on_save_checkpoint(checkpoint)  # what the student stores (class names ...)
