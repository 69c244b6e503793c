"""What every task shares: one model, its optimizer recipe, compilation and the run config."""
from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from mnet_vision.checkpoints import CONFIG_KEY, META_KEY, checkpoint_metadata
from mnet_vision.training.optim import build_optimizers


class ModelTask(pl.LightningModule):
    """A LightningModule around one ``backbone -> head`` model.

    Args:
        model: the model (``build_model``).
        optimizer: Hydra config of a partial optimizer (``_partial_: true``), called with the
            parameter groups of :func:`mnet_vision.training.optim.weight_decay_groups`.
        scheduler: Hydra config of a partial LR scheduler (called with the optimizer) under
            ``scheduler``, stepped every ``interval`` (``epoch`` or ``step``); or None.
        weight_decay: L2 decay on conv/FC weights; none on depthwise filters, BN and biases.
        compile: compile the model's forward with ``torch.compile`` (state-dict keys unchanged).
        run_config: the run config, stored in every checkpoint so a checkpoint rebuilds its model.

    Subclasses that can be distillation students name their model's output in ``outputs_name``
    and define ``loss(outputs, batch, stage)``; with it, the training step below is theirs, and
    validation and test call their ``evaluate_batch(batch, stage)``.
    """

    outputs_name: str | None = None

    def __init__(self, model: torch.nn.Module, optimizer: dict, scheduler: dict | None = None,
                 weight_decay: float = 4e-5, compile: bool = False, run_config: dict | None = None):
        super().__init__()
        self.model = model
        self.optimizer_cfg, self.scheduler_cfg, self.weight_decay = optimizer, scheduler, weight_decay
        self.compile_model = compile
        self.run_config = run_config

    def configure_model(self) -> None:
        if self.compile_model:
            self.model.compile()

    def forward(self, *args: Any) -> Any:
        return self.model(*args)

    def outputs(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's output under its name: what a distillation teacher's is matched against."""
        return {self.outputs_name: self(images)}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        if "image" not in batch:  # every sample of this batch was skipped as unreadable
            return None
        return self.loss(self.outputs(batch["image"]), batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate_batch(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate_batch(batch, "test")

    def evaluate_batch(self, batch: dict[str, Any], stage: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no evaluate_batch")

    def configure_optimizers(self):
        return build_optimizers(self.model, self.optimizer_cfg, self.scheduler_cfg, self.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the run config (``mnet_config``) and, in one entry (``mnet_meta``), what serving the
        model needs besides it: :func:`mnet_vision.checkpoints.checkpoint_metadata`, with the data's
        class names and category ids when its DataModule names them."""
        # a distillation student holds no run config of its own: its wrapper stored it first
        config = self.run_config if self.run_config is not None else checkpoint.get(CONFIG_KEY)
        checkpoint[CONFIG_KEY] = config
        try:
            datamodule = getattr(self.trainer, "datamodule", None)
        except RuntimeError:  # saved outside a Trainer: Lightning raises when none is attached
            datamodule = None
        names = getattr(datamodule, "class_names", None)
        categories = getattr(datamodule, "label_to_category", None)  # the dataset's id of each label
        checkpoint[META_KEY] = checkpoint_metadata(config, type(self).__name__, self.outputs_name,
                                                   None if names is None else list(names),
                                                   None if categories is None else list(categories))
