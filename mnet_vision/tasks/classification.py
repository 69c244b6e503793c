"""Image classification (ImageNet, Stanford Dogs, any ImageFolder) as a LightningModule."""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torchmetrics.classification import MulticlassAccuracy

from mnet_vision.tasks.optim import weight_decay_groups


class ClassificationTask(pl.LightningModule):
    """Cross-entropy training with top-1/top-5 accuracy (torchmetrics).

    Args:
        model: ``backbone -> ClassifierHead`` returning ``(N, num_classes)`` logits.
        num_classes: number of classes (top-5 becomes top-``min(5, num_classes)``).
        optimizer: Hydra config of a partial optimizer (``_partial_: true``), called with the
            parameter groups of :func:`weight_decay_groups`.
        scheduler: Hydra config of a partial LR scheduler (called with the optimizer), or None.
        weight_decay: L2 decay on conv/FC weights; none on depthwise filters, BN and biases.
        label_smoothing: the paper uses none.
        compile: compile the model's forward with ``torch.compile`` (state-dict keys unchanged).
        run_config: the run config, stored in every checkpoint so a checkpoint rebuilds its model.
    """

    monitor = ("val/top1", "max")

    def __init__(self, model: torch.nn.Module, num_classes: int, optimizer: dict,
                 scheduler: dict | None = None, weight_decay: float = 4e-5,
                 label_smoothing: float = 0.0, compile: bool = False, run_config: dict | None = None):
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.optimizer_cfg, self.scheduler_cfg = optimizer, scheduler
        self.weight_decay, self.label_smoothing = weight_decay, label_smoothing
        self.compile_model = compile
        self.run_config = run_config
        top_k = min(5, num_classes)
        self.metrics = torch.nn.ModuleDict({
            f"{stage}_{name}": MulticlassAccuracy(num_classes, top_k=k, average="micro")
            for stage in ("train", "val", "test")
            for name, k in (("top1", 1), (f"top{top_k}", top_k))
        })

    def configure_model(self) -> None:
        if self.compile_model:
            self.model.compile()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor | None:
        if "image" not in batch:  # every sample of this batch was skipped as unreadable
            return None
        logits = self(batch["image"])
        labels = batch["label"]
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        n = labels.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, on_epoch=True, sync_dist=stage != "train", batch_size=n)
        for key, metric in self.metrics.items():
            if key.startswith(stage):
                metric(logits.detach(), labels)
                self.log(f"{stage}/{key.split('_', 1)[1]}", metric, prog_bar=key.endswith("top1"), on_epoch=True,
                         batch_size=n)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        optimizer = instantiate(self.optimizer_cfg)(weight_decay_groups(self.model, self.weight_decay))
        if self.scheduler_cfg is None:
            return optimizer
        scheduler = instantiate(self.scheduler_cfg["scheduler"])(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_cfg.get("interval", "epoch")}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mnet_config"] = self.run_config
