"""Object detection (SSD300, Faster-RCNN) as a LightningModule, scored with COCO mAP.

The model is a :class:`mnet_vision.model.DetectorModel` (torchvision's detector API); validation
and test turn its detections into a COCO results list (original image ids and category ids, xywh
boxes in original pixels) and score it with pycocotools (:func:`mnet_vision.metrics.coco.evaluate_coco`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from mnet_vision.metrics.coco import COCO_METRICS, detections_to_results, evaluate_coco
from mnet_vision.tasks.model_task import ModelTask
from mnet_vision.textfiles import write_json
from mnet_vision.viz.detection import save_detections_picture

log = logging.getLogger(__name__)


class DetectionTask(ModelTask):
    """Sum of the detector's losses in training; the 12 COCO box metrics on val (logged as
    ``val/AP``, ``val/AP50``, ...) and test, whenever Lightning validates
    (``trainer.check_val_every_n_epoch``).

    Args:
        model: ``backbone -> detection head`` (a ``DetectorModel``).
        pictures: how many test images to draw with their detections (``detections_test/*.png``).
        picture_score: the score from which a detection is drawn.
        optimizer, scheduler, weight_decay, compile, run_config: see :class:`ModelTask`.

    Test also writes ``detections_test.json`` (COCO results format) to the trainer's ``default_root_dir``.
    """

    monitor = ("val/AP", "max")

    def __init__(self, model: torch.nn.Module, optimizer: dict, scheduler: dict | None = None,
                 weight_decay: float = 4e-5, compile: bool = False, pictures: int = 8, picture_score: float = 0.3,
                 run_config: dict | None = None):
        super().__init__(model, optimizer, scheduler, weight_decay, compile, run_config)
        self.pictures, self.picture_score = pictures, picture_score
        self._results: list[dict] = []
        self._image_ids: list[int] = []

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if not batch["images"]:  # every sample of this batch was skipped as unreadable
            return None
        losses = self.model(batch["images"], batch["targets"])
        loss = sum(losses.values())
        if not torch.isfinite(loss):  # stop with the culprits named, not a NaN model many steps later
            raise FloatingPointError(f"non-finite detection loss {({k: float(v) for k, v in losses.items()})} "
                                     f"on images {batch['image_ids']}")
        n = len(batch["images"])
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=n)
        for name, value in losses.items():
            self.log(f"train/loss_{name}", value, on_epoch=True, batch_size=n)
        return loss

    def _detect(self, batch: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
        if not batch["images"]:
            return []
        detections = self.model(batch["images"])
        label_to_category = self.trainer.datamodule.label_to_category
        for image_id, det in zip(batch["image_ids"], detections):
            self._image_ids.append(int(image_id))
            self._results += detections_to_results(image_id, det["boxes"].cpu(), det["labels"].cpu(),
                                                   det["scores"].cpu(), label_to_category)
        return detections

    def validation_step(self, batch, batch_idx):
        self._detect(batch)

    def on_test_epoch_start(self) -> None:
        self._drawn = 0

    def test_step(self, batch, batch_idx):
        detections = self._detect(batch)
        if not self.trainer.is_global_zero:
            return
        names = self.trainer.datamodule.class_names
        for image, image_id, det in zip(batch["images"], batch["image_ids"], detections):
            if self._drawn >= self.pictures:
                break
            keep = det["scores"] >= self.picture_score
            save_detections_picture(image, det["boxes"][keep], det["labels"][keep], det["scores"][keep], names,
                                    self._pictures_dir() / f"{int(image_id):06d}.png")
            self._drawn += 1

    def _pictures_dir(self) -> Path:
        return Path(self.trainer.default_root_dir) / "detections_test"

    def _score(self, stage: str) -> dict[str, float]:
        """COCO metrics of the detections gathered this epoch (all processes), logged as ``<stage>/<metric>``."""
        results, image_ids = self._results, self._image_ids
        self._results, self._image_ids = [], []
        if self.trainer.world_size > 1:
            gathered: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, (results, image_ids))
            results = [r for part, _ in gathered for r in part]
            image_ids = [i for _, part in gathered for i in part]
        metrics = evaluate_coco(self.trainer.datamodule.ground_truth(stage), results, image_ids=set(image_ids))
        for name in COCO_METRICS:
            if metrics[name] >= 0:  # -1 is pycocotools' "no ground truth in this size range": not logged
                self.log(f"{stage}/{name}", metrics[name], prog_bar=name in ("AP", "AP50"), rank_zero_only=True)
        return {**metrics, "results": results}

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few untrained batches: not worth a pycocotools run
            self._results, self._image_ids = [], []
            return
        self._score("val")

    def on_test_epoch_end(self) -> None:
        scored = self._score("test")
        if self.trainer.is_global_zero:
            path = Path(self.trainer.default_root_dir) / "detections_test.json"
            write_json(path, scored["results"])
            log.info("%d test detections written to %s, pictures to %s", len(scored["results"]), path,
                     self._pictures_dir())
