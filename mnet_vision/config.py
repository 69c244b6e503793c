"""Composing run configs from ``conf/`` in Python, with the same overrides as the CLI.

    >>> from mnet_vision.config import compose
    >>> from mnet_vision.model import build_model
    >>> cfg = compose(["experiment=imagenet", "backbone.alpha=0.5", "task.input_size=160"])
    >>> model = build_model(cfg)          # backbone -> head, exactly what tools/train.py trains
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


def compose(overrides: Sequence[str] = (), config_name: str = "train") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with Hydra command-line style ``overrides``."""
    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"config folder {CONF_DIR} not found: install mnet_vision from its source tree "
                                f"(pip install -e .) so conf/ sits beside the package")
    running = GlobalHydra.instance()
    outer = running.hydra if running.is_initialized() else None
    if outer is not None:  # called inside a running @hydra.main tool: compose beside it, then give it back
        running.clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides))
    finally:
        if outer is not None:
            GlobalHydra.instance().initialize(outer)


class ConfigValueError(ValueError):
    """A run config value of the wrong type or range; the message names the key."""


def _whole(minimum: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


# key -> (test, what it must be). Checked before anything is built, so a bad value is named here
# instead of failing deep inside torch, albumentations or torchmetrics.
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": (_whole(0), "a whole number >= 0"),
    "task.input_size": (_whole(1), "a whole number of pixels >= 1"),
    "data.batch_size": (_whole(1), "a whole number >= 1"),
    "data.num_workers": (_whole(0), "a whole number >= 0"),
    "trainer.max_epochs": (_whole(-1), "a whole number (-1: no limit)"),
}
_CLASS_MINIMUM = {"ClassificationTask": 2, "DetectionTask": 1}  # a softmax over one class learns nothing


def check_run_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigValueError` naming the key when a value the run depends on is missing
    its type or range: ``seed``, ``task.input_size``, ``data.batch_size``, ``data.num_workers``,
    ``trainer.max_epochs``, and ``task.num_classes`` (>= 2 for classification, >= 1 for detection)."""
    for key, (test, expected) in _RULES.items():
        value = _value(cfg, key)
        if value is not _ABSENT and value is not None and not test(value):
            raise ConfigValueError(f"config key {key}={value!r} is not valid: expected {expected}")
    target = str(_value(cfg, "task.module._target_") or "")
    minimum = _CLASS_MINIMUM.get(target.rpartition(".")[2])
    classes = _value(cfg, "task.num_classes")
    if minimum is not None and classes is not _ABSENT and not _whole(minimum)(classes):
        raise ConfigValueError(f"config key task.num_classes={classes!r} (from data.num_classes) is not valid for "
                               f"{target.rpartition('.')[2]}: expected a whole number >= {minimum}")


_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)
    except Exception as err:  # an interpolation that does not resolve: say which key holds it
        raise ConfigValueError(f"config key {key} does not resolve: {err}") from err
