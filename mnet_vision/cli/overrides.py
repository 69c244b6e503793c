"""Reading what the user gave on the command line out of a tool's Hydra config.

A tool's yaml declares each key it takes; keys with no default of their own are ``???`` (missing)
there, so "not given" stays distinct from an explicit ``key=null``.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf


def given(cfg: DictConfig, keys: Iterable[str]) -> dict[str, Any]:
    """``{key: value}`` for the ``keys`` of ``cfg`` that are set (not ``???``), as plain Python."""
    return {key: _plain(cfg[key]) for key in keys if not OmegaConf.is_missing(cfg, key)}


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def command_line_overrides(cfg: DictConfig, own: Iterable[str]) -> DictConfig:
    """The dotted keys the user set on the command line (``data.root=...``, ``+data.x=...``,
    ``trainer.accelerator=cpu``), other than the tool's ``own`` top-level keys and config-group
    choices (``data=identities``), with the values Hydra parsed: the overrides a tool passes on to a
    checkpoint's stored config."""
    own, overrides = set(own), OmegaConf.create()
    for line in HydraConfig.get().overrides.task:
        key = line.split("=", 1)[0].lstrip("+~")
        if "." not in key or key.split(".", 1)[0] in own or key.startswith("hydra."):
            continue  # one of the tool's own keys, or a group choice (data=NAME: no dot)
        OmegaConf.update(overrides, key, OmegaConf.select(cfg, key), force_add=True)
    return overrides
