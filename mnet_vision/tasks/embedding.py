"""FaceNet-style embedding training (triplet loss, online semi-hard mining) with verification metrics.

Validation and test embed every image of an identity set and score it with
:func:`mnet_vision.metrics.verification.verification_report`: TAR@FAR on all-vs-all pairs, the ROC
AUC and, when the data module has an LFW-format pairs file for the split, LFW's 10-fold accuracy.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mnet_vision.checkpoints import atomic_save
from mnet_vision.metrics.verification import all_pairs, roc_points, verification_report
from mnet_vision.tasks.model_task import ModelTask
from mnet_vision.viz.verification import save_roc_curve

log = logging.getLogger(__name__)


def semihard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """FaceNet's triplet loss over every anchor-positive pair of a batch, with online semi-hard
    negatives; written here because the paper defines it and no dependency is needed for 20 lines.

    Distances are squared L2 (FaceNet; in [0, 4] for unit vectors). For each anchor-positive
    pair the negative is the closest one *farther* than the positive (semi-hard: ``d_ap < d_an``,
    so it is informative without being the hardest, which collapses training early); when every
    negative is closer than the positive, the farthest negative is used (TensorFlow's
    ``triplet_semihard_loss`` rule). Loss: mean of ``max(d_ap - d_an + margin, 0)``.

    Args:
        embeddings: ``(N, D)``, normally unit-length.
        labels: ``(N,)`` identity labels; batches should hold several images per identity.
    Returns ``(loss, active)``: the scalar loss and the fraction of triplets with a non-zero loss.
    """
    d = (embeddings.unsqueeze(1) - embeddings.unsqueeze(0)).pow(2).sum(-1)
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    positive = same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    anchor, pos = positive.nonzero(as_tuple=True)
    negative = ~same[anchor]
    keep = negative.any(1)
    anchor, pos, negative = anchor[keep], pos[keep], negative[keep]
    if len(anchor) == 0:  # no identity with two images, or a single identity: nothing to learn from
        zero = embeddings.sum() * 0.0
        return zero, zero.detach()
    d_ap = d[anchor, pos]
    d_an = d[anchor]
    outside = negative & (d_an > d_ap.unsqueeze(1))
    big = torch.finfo(d.dtype).max
    closest_outside = torch.where(outside, d_an, big).min(1).values
    farthest_inside = torch.where(negative, d_an, -big).max(1).values
    d_neg = torch.where(outside.any(1), closest_outside, farthest_inside)
    losses = F.relu(d_ap - d_neg + margin)
    return losses.mean(), (losses > 0).float().mean()


class EmbeddingTask(ModelTask):
    """Trains ``backbone -> EmbeddingHead`` with :func:`semihard_triplet_loss` (needs batches of P
    identities x K images: :class:`mnet_vision.data.identities.IdentityFolderDataModule`'s training loader).

    Args:
        model: ``backbone -> EmbeddingHead`` returning ``(N, D)`` unit vectors.
        optimizer, scheduler, weight_decay, compile, run_config: see :class:`ModelTask`.
        margin: triplet margin on squared distances (FaceNet: 0.2).
        fars: the false accept rates whose TAR is logged (``val/tar@far0.001`` ...). A FAR the set
            is too small for (fewer than 10/FAR impostor pairs) is logged as NaN.
        monitor: the validation metric that picks the best checkpoint (higher is better):
            ``tar@far0.001`` (FaceNet's VAL), or ``auc`` / ``accuracy`` for sets too small for it.

    Logs ``<stage>/tar@far<f>``, ``<stage>/auc``, ``<stage>/accuracy`` (LFW protocol, when the data
    has a pairs file for the stage) and on test writes ``roc_test.png`` and ``embeddings_test.pt``.
    """

    outputs_name = "embedding"

    def __init__(self, model: torch.nn.Module, optimizer: dict, scheduler: dict | None = None,
                 weight_decay: float = 4e-5, margin: float = 0.2, fars: tuple[float, ...] = (1e-3, 1e-4),
                 monitor: str = "tar@far0.001", compile: bool = False, run_config: dict | None = None):
        super().__init__(model, optimizer, scheduler, weight_decay, compile, run_config)
        self.margin, self.fars = margin, tuple(float(f) for f in fars)
        self.monitor = (f"val/{monitor}", "max")
        self._embedded: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], stage: str) -> torch.Tensor:
        """The triplet loss of a batch's outputs, logged with the share of active triplets."""
        loss, active = semihard_triplet_loss(outputs[self.outputs_name].float(), batch["label"], self.margin)
        n = len(batch["label"])
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, batch_size=n)
        self.log(f"{stage}/active_triplets", active, on_epoch=True, batch_size=n)
        return loss

    def evaluate_batch(self, batch: dict[str, Any], stage: str) -> None:
        if "image" in batch:
            self._embedded.append((self(batch["image"]).float().cpu(), batch["label"].cpu(),
                                   [str(p) for p in batch["path"]]))

    def _gathered(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """This epoch's embeddings, labels and paths from every process, each image once."""
        parts, self._embedded = self._embedded, []
        if self.trainer.world_size > 1:
            gathered: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, parts)
            parts = [p for rank in gathered for p in rank]
        rows: dict[str, tuple[np.ndarray, int]] = {}
        for emb, labels, paths in parts:  # a padded distributed sampler repeats images: keep one
            for e, y, p in zip(emb.numpy(), labels.tolist(), paths):
                rows[p] = (e, y)
        paths = sorted(rows)
        if not paths:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64), []
        return (np.stack([rows[p][0] for p in paths]), np.array([rows[p][1] for p in paths]), paths)

    def _score(self, stage: str) -> tuple[np.ndarray, np.ndarray, list[str], tuple[np.ndarray, np.ndarray] | None]:
        """Logs the stage's verification report; returns the embeddings, labels, paths and the
        all-vs-all ``(scores, issame)`` it rests on (None with fewer than two images)."""
        embeddings, labels, paths = self._gathered()
        if len(paths) < 2:
            return embeddings, labels, paths, None
        pairs_of = getattr(self.trainer.datamodule, "pairs", None) if self.trainer.datamodule is not None else None
        pairs = pairs_of(stage) if pairs_of is not None else None
        scored = all_pairs(embeddings, labels)
        report = verification_report(embeddings, labels, self.fars, pairs, paths, all_pair_scores=scored)
        for far in self.fars:
            if f"tar@far{far:g}" not in report:
                log.warning("%s: %d impostor pairs are too few to measure TAR at FAR %g (needs %d): logged as NaN",
                            stage, int(report["impostor_pairs"]), far, int(np.ceil(10 / far)))
                report[f"tar@far{far:g}"] = float("nan")
        for name, value in report.items():
            self.log(f"{stage}/{name}", float(value), prog_bar=name in (f"tar@far{self.fars[0]:g}", "accuracy"),
                     rank_zero_only=True)
        return embeddings, labels, paths, scored

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self._embedded = []
            return
        self._score("val")

    def on_test_epoch_end(self) -> None:
        """Also writes ``roc_test.png`` (all-vs-all pairs) and ``embeddings_test.pt``
        (``{"embeddings" (N, D), "labels" (N,), "paths"}``) to the trainer's ``default_root_dir``."""
        embeddings, labels, paths, scored = self._score("test")
        if not self.trainer.is_global_zero or scored is None:
            return
        out = Path(self.trainer.default_root_dir)
        scores, issame = scored
        if issame.any() and (~issame).any():
            save_roc_curve({"all-vs-all pairs": roc_points(scores, issame)}, out / "roc_test.png", self.fars)
        atomic_save({"embeddings": torch.from_numpy(embeddings), "labels": torch.from_numpy(labels), "paths": paths},
                    out / "embeddings_test.pt")
