"""Lightning's checkpoint IO writing atomically (the Lightning half of checkpoint handling;
:mod:`mnet_vision.checkpoints` is the half that inference uses without Lightning)."""
from __future__ import annotations

from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO

from mnet_vision.checkpoints import atomic_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes to a temporary file and renames it into place, so a
    crash mid-write never leaves a truncated ``last.ckpt`` in place of the previous good one."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        atomic_save(checkpoint, path)
