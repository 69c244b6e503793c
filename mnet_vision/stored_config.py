"""A run config read back from a checkpoint is data, never code.

Every checkpoint holds its run config (``mnet_config``), and the tools rebuild the model from it
through Hydra's ``instantiate``, which imports and calls whatever a ``_target_`` names. A
checkpoint passes ``torch.load(weights_only=True)`` with any strings in that config, so a crafted
one could otherwise run ``builtins.open(path, "w")`` (or anything else) through every ``ckpt=`` tool.
:func:`check_stored_config` refuses such a config before anything is built:

- every ``_target_`` must be a class defined in ``mnet_vision``, one that the shipped configs in
  ``conf/`` name (torch optimizers and schedulers, Lightning's trainer and loggers), or one the user
  allowed (:func:`allow_targets` or ``MNET_VISION_ALLOWED_TARGETS``, comma-separated);
- Hydra's own keys (``_partial_``, ``_recursive_``, ``_convert_``) must be the scalars Hydra expects;
- a constructor argument annotated as a scalar (``alpha: float``) must be given a scalar.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import os
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from mnet_vision.config import CONF_DIR

ENV_ALLOWED = "MNET_VISION_ALLOWED_TARGETS"
_HYDRA_SCALARS = {"_partial_": (bool,), "_recursive_": (bool,), "_convert_": (str,)}
_SCALARS = (bool, int, float, str)
_user_allowed: set[str] = set()


#: ``_target_`` -> its new name, for checkpoints written before a class moved (the package
#: re-exports of ``mnet_vision.data`` went when its init stopped importing Lightning).
MOVED_TARGETS = {
    **{f"mnet_vision.data.{name}": f"mnet_vision.data.{module}.{name}" for module, names in {
        "attributes": ("AttributeCSVDataModule", "CelebADataModule"),
        "coco": ("CocoDetectionDataModule",),
        "geolocation": ("GeotaggedDataModule",),
        "identities": ("IdentityFolderDataModule",),
        "image_folder": ("ImageFolderDataModule",),
        "synthetic.datamodules": ("SyntheticAttributesDataModule", "SyntheticDetectionDataModule",
                                  "SyntheticGeotaggedDataModule", "SyntheticIdentityDataModule",
                                  "SyntheticShapesDataModule"),
    }.items() for name in names},
}


def upgrade_targets(node: Any) -> Any:
    """A copy of the plain config ``node`` with every moved ``_target_`` (:data:`MOVED_TARGETS`)
    renamed, so checkpoints of earlier versions load; everything else unchanged."""
    if isinstance(node, Mapping):
        return {k: (MOVED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else upgrade_targets(v))
                for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [upgrade_targets(v) for v in node]
    return node


class UnsafeConfigError(ValueError):
    """A stored config that would make the loader run code it should not: names the key."""


def allow_targets(*targets: str) -> None:
    """Allow more ``_target_`` names in stored configs (e.g. the class of your own teacher model)."""
    _user_allowed.update(targets)


@functools.cache
def shipped_targets() -> frozenset[str]:
    """Every ``_target_`` that a config file in ``conf/`` names."""
    found: set[str] = set()
    for path in CONF_DIR.rglob("*.yaml"):
        found.update(target for _, target in _targets(OmegaConf.to_container(OmegaConf.load(path)), ""))
    return frozenset(found)


def _targets(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """``(key of the node, its _target_)`` for every node of a plain container that has one."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield key, node["_target_"]
        for k, v in node.items():
            yield from _targets(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _targets(v, f"{key}[{i}]")


def _project_class(target: str) -> type | None:
    """The class ``target`` names if it is one of mnet_vision's (importing only mnet_vision modules)."""
    if not target.startswith("mnet_vision."):
        return None
    module, _, name = target.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    if inspect.isclass(obj) and obj.__module__.startswith("mnet_vision"):
        return obj
    return None


def _allowed(target: str) -> bool:
    extra = {t.strip() for t in os.environ.get(ENV_ALLOWED, "").split(",") if t.strip()}
    return target in shipped_targets() or target in _user_allowed or target in extra or \
        _project_class(target) is not None


def _scalar_parameters(cls: type) -> dict[str, tuple[type, ...]]:
    """Constructor parameters annotated as ``bool``/``int``/``float``/``str`` (or optional ones)."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: nothing to check against
        return {}
    scalar: dict[str, tuple[type, ...]] = {}  # Sequence[str] and the like are not scalars
    for name, hint in hints.items():
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        options = [a for a in typing.get_args(hint) if a is not type(None)] if union else [hint]
        if options and all(o in _SCALARS for o in options):
            scalar[name] = tuple(options)
    return scalar


def check_stored_config(cfg: DictConfig | Mapping[str, Any], source: str, built: Sequence[str] | None = None) -> None:
    """Raise :class:`UnsafeConfigError` naming the key if ``cfg`` (a config read from ``source``)
    names a ``_target_`` outside the allow-list, gives Hydra's keys other than scalars, or gives a
    scalar constructor argument a mapping or a list. Interpolations are left unresolved.

    ``built``: the keys the caller will instantiate (``("backbone", "task.head")`` for inference),
    whose classes are imported to read their constructors' annotations; ``None``: all of them. Every
    ``_target_`` is checked against the allow-list either way, by name (a shipped name imports
    nothing: serving a model does not import the training stack through its task's class)."""
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, (DictConfig, ListConfig)) else cfg
    for key, target in _targets(plain, ""):
        where = f"{source}: stored config key {key + '._target_' if key else '_target_'}"
        if not isinstance(target, str):
            raise UnsafeConfigError(f"{where} is a {type(target).__name__}, expected a class name")
        if not _allowed(target):
            raise UnsafeConfigError(
                f"{where} names {target!r}, which is not a class of mnet_vision nor one of the shipped "
                f"configs' targets: refused, a checkpoint must not make the loader run code. If you trust "
                f"this checkpoint, allow it with {ENV_ALLOWED}={target} or "
                f"mnet_vision.stored_config.allow_targets({target!r})")
    for key, node in _nodes(plain, ""):
        for name, kinds in _HYDRA_SCALARS.items():
            if name in node and not isinstance(node[name], kinds):
                raise UnsafeConfigError(f"{source}: stored config key {_join(key, name)} is "
                                        f"{_kind(node[name])}, expected a {kinds[0].__name__}")
        building = built is None or any(key == b or key.startswith(b + ".") for b in built)
        cls = _project_class(node["_target_"]) if building and isinstance(node.get("_target_"), str) else None
        for name, kinds in (_scalar_parameters(cls) if cls is not None else {}).items():
            value = node.get(name)
            if isinstance(value, (Mapping, list, tuple)):  # a string may be an interpolation: resolved later
                raise UnsafeConfigError(f"{source}: stored config key {_join(key, name)} is {_kind(value)}, "
                                        f"expected a {' or '.join(t.__name__ for t in kinds)}")


def _nodes(node: Any, key: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    if isinstance(node, Mapping):
        yield key, node
        for k, v in node.items():
            yield from _nodes(v, _join(key, str(k)))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _nodes(v, f"{key}[{i}]")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _kind(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
