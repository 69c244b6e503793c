"""Image classification (ImageNet, Stanford Dogs, any ImageFolder) as a LightningModule."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from mnet_vision.tasks.model_task import ModelTask
from mnet_vision.viz.classification import save_confusion_matrix


class ClassificationTask(ModelTask):
    """Cross-entropy training with top-1/top-5 accuracy (torchmetrics).

    Args:
        model: ``backbone -> ClassifierHead`` returning ``(N, num_classes)`` logits.
        num_classes: number of classes (top-5 becomes top-``min(5, num_classes)``).
        label_smoothing: the paper uses none.
        optimizer, scheduler, weight_decay, compile, run_config: see :class:`ModelTask`.
    """

    monitor = ("val/top1", "max")
    outputs_name = "logits"

    def __init__(self, model: torch.nn.Module, num_classes: int, optimizer: dict,
                 scheduler: dict | None = None, weight_decay: float = 4e-5,
                 label_smoothing: float = 0.0, compile: bool = False, run_config: dict | None = None):
        super().__init__(model, optimizer, scheduler, weight_decay, compile, run_config)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing
        top_k = min(5, num_classes)
        self.metrics = torch.nn.ModuleDict({
            f"{stage}_{name}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for stage in ("train", "val", "test")
            for name, k in (("top1", 1), (f"top{top_k}", top_k))
        })
        self.test_confusion = MulticlassConfusionMatrix(num_classes)

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any], stage: str) -> torch.Tensor:
        """Cross-entropy of a batch's logits against its labels; loss and accuracies logged."""
        logits, labels = outputs[self.outputs_name], batch["label"]
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        n = labels.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, sync_dist=stage != "train", batch_size=n)
        for key, metric in self.metrics.items():
            if key.startswith(stage):
                metric(logits.detach(), labels)
                self.log(f"{stage}/{key.split('_', 1)[1]}", metric, prog_bar=key.endswith("top1"), on_epoch=True,
                         batch_size=n)
        return loss

    def _step(self, batch: dict[str, Any], stage: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Loss and logits of a batch, metrics logged; None when every sample was skipped."""
        if "image" not in batch:  # every sample of this batch was skipped as unreadable
            return None
        outputs = self.outputs(batch["image"])
        return self.loss(outputs, batch, stage), outputs[self.outputs_name]

    def training_step(self, batch, batch_idx):
        out = self._step(batch, "train")
        return None if out is None else out[0]

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        out = self._step(batch, "test")
        if out is not None:
            self.test_confusion.update(out[1].detach(), batch["label"])

    def on_test_epoch_end(self) -> None:
        """Writes ``confusion_test.png`` (rows: true class, columns: predicted) to the trainer's
        ``default_root_dir``, for up to 50 classes (beyond that a picture no longer reads)."""
        matrix = self.test_confusion.compute()
        self.test_confusion.reset()
        if self.trainer.is_global_zero and self.num_classes <= 50:
            names = getattr(self.trainer.datamodule, "classes", None)
            save_confusion_matrix(matrix, names, Path(self.trainer.default_root_dir) / "confusion_test.png")
