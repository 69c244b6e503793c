"""Composing run configs from ``conf/`` in Python, with the same overrides as the CLI.

    >>> from mnet_vision.config import compose
    >>> from mnet_vision.model import build_model
    >>> cfg = compose(["task=imagenet", "backbone.alpha=0.5", "task.input_size=160"])
    >>> model = build_model(cfg)          # backbone -> head, exactly what tools/train.py trains
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra command-line style ``overrides``."""
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"config folder {CONF_DIR} not found: install mnet_vision from its source tree "
                                f"(pip install -e .) so conf/ sits beside the package")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides))
