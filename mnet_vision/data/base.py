"""What every DataModule shares: the three splits, the loader and reading settings, the square-crop
transforms, seeded loaders, the test->val fallback, sample ids, and the ``generate`` hook that
writes a (synthetic) set on first use.

A format's DataModule takes its own arguments plus the shared settings by keyword: the fields of
:class:`LoaderSettings` (every DataModule) and of :class:`CropSettings` (formats of one square crop
per sample). Its class attributes ``loader_defaults`` and ``crop_defaults`` hold the format's
defaults of them (FaceNet's standardisation for faces, the TF release's for ImageNet), so each
default is written once and a DataModule's ``__init__`` lists only what is its own. Its
``inspect.signature`` (what ``help()`` shows) spells the settings out, with the format's defaults.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from mnet_vision.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.data.sampling import EpochSampler
from mnet_vision.data.transforms import (TF_MEAN, TF_STD, classification_eval_transform,
                                         classification_train_transform)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class LoaderSettings:
    """How a DataModule reads and batches its samples.

    ``batch_size`` and ``num_workers`` are DataLoader settings (per process under DDP); ``seed``
    seeds the per-epoch shuffle and the augmentation (:class:`~mnet_vision.data.sampling.EpochSampler`);
    ``strict`` raises on the first unreadable image (or bad annotation) instead of skipping and
    counting it; images of more than ``max_pixels`` pixels are skipped (or raise when ``strict``),
    checked before decoding (:func:`mnet_vision.images.read_rgb`; ``None``: no limit).
    """

    batch_size: int = 64
    num_workers: int = 2
    seed: int = 0
    strict: bool = False
    max_pixels: int | None = MAX_PIXELS


@dataclass(frozen=True)
class CropSettings:
    """The square crops of a sample fed to the model (see :mod:`mnet_vision.data.transforms`).

    ``input_size``: their side, pixels; training takes a random crop of at least ``min_crop_scale``
    of the image area, flipped horizontally at random when ``hflip``; evaluation the central
    ``crop_fraction`` of the shorter side; both normalise by ``mean`` and ``std`` (fractions of 255).
    """

    input_size: int = 224
    min_crop_scale: float = 0.25
    crop_fraction: float = 0.875
    hflip: bool = True
    mean: Sequence[float] = TF_MEAN
    std: Sequence[float] = TF_STD

    def train_transform(self):
        return classification_train_transform(self.input_size, self.min_crop_scale, self.hflip, self.mean, self.std)

    def eval_transform(self):
        return classification_eval_transform(self.input_size, self.crop_fraction, self.mean, self.std)


def _field_names(settings: type) -> set[str]:
    return {f.name for f in fields(settings)}


def named_splits(splits: Sequence[str]) -> dict[str, str]:
    """``{"train": ..., "val": ..., "test": ...}``: the folder (or file) names of the three splits."""
    if len(splits) != len(SPLITS):
        raise ValueError(f"splits must name the train, val and test folders, got {list(splits)}")
    return dict(zip(SPLITS, splits))


def split_files(files: Mapping[str, str] | None) -> dict[str, str]:
    """``{split: CSV file}`` for each of :data:`SPLITS` (default ``<split>.csv``); a missing or
    unknown split is an error."""
    files = dict(files or {split: f"{split}.csv" for split in SPLITS})
    if set(files) != set(SPLITS):
        raise ValueError(f"data.files must name a CSV for each of {SPLITS}, got {sorted(files)}")
    return files


def _spelled_signature(cls: type) -> inspect.Signature:
    """``cls(...)``'s parameters: its ``__init__``'s own, then (keyword-only) those its ``**kwargs``
    passes on to the parent class and the settings fields, with ``cls``'s defaults; keywords the class
    sets itself (``fixed_keywords``) are left out."""
    settings = [(f.name, getattr(cls.loader_defaults, f.name)) for f in fields(LoaderSettings)]
    if getattr(cls, "crop_defaults", None) is not None:  # an ImageCropsDataModule (being defined, maybe)
        settings += [(f.name, getattr(cls.crop_defaults, f.name)) for f in fields(CropSettings)]
    own = [p for p in list(inspect.signature(cls.__init__).parameters.values())[1:] if p.kind != p.VAR_KEYWORD]
    named = {p.name for p in own} | {name for name, _ in settings} | set(cls.fixed_keywords)
    parent = cls.__mro__[1]
    inherited = parent.__dict__.get("__signature__", inspect.Signature())
    passed_on = [p.replace(kind=p.KEYWORD_ONLY) for p in inherited.parameters.values() if p.name not in named]
    return inspect.Signature(own + passed_on + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=value)
                                                for name, value in settings])


class SeededLoadersDataModule(pl.LightningDataModule):
    """Base of our DataModules: the data folder ``root``, the :class:`LoaderSettings` (keywords,
    defaults ``loader_defaults``), train/val/test loaders over ``train_set``/``val_set``/``test_set``
    (made in ``setup``), each with an :class:`EpochSampler` and its own generator, so loading never
    draws from the global torch RNG, which the checkpointed RNG state (dropout) must find untouched
    after a resume.

    ``generate``: called with ``root`` in ``prepare_data`` (once per node, before ``setup``), e.g. a
    synthetic set's generator, which writes the set unless it is there.

    Subclasses set ``collate`` (how samples become a batch) and ``drop_last_train``, and override
    :meth:`has_split` where a missing test split falls back to val.
    """

    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    drop_last_train = False
    loader_defaults: ClassVar[LoaderSettings] = LoaderSettings()
    #: keywords of the parent's that a subclass passes itself (a synthetic set's ``generate``)
    fixed_keywords: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        cls.__signature__ = _spelled_signature(cls)

    def __init__(self, root: str | Path, generate: Callable[[Path], Any] | None = None, **settings: Any):
        super().__init__()
        unknown = set(settings) - _field_names(LoaderSettings)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) {sorted(unknown)}")
        loader = replace(self.loader_defaults, **settings)
        self.max_pixels = checked_max_pixels(loader.max_pixels)  # a bad value fails here, not in a worker
        self.root = Path(root)
        self.batch_size, self.num_workers, self.strict, self.seed = (loader.batch_size, loader.num_workers,
                                                                     loader.strict, loader.seed)
        self.generate = generate

    def prepare_data(self) -> None:
        if self.generate is not None:
            self.generate(self.root)

    def has_split(self, split: str) -> bool:
        """Whether ``split``'s data exists; where it may not, the test split falls back to val."""
        return True

    def source_split(self, split: str) -> str:
        """The split whose data serves ``split``: itself, or ``val`` for a ``test`` split whose data
        does not exist (:meth:`has_split`)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return "val" if split == "test" and not self.has_split("test") else split

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                          sampler=EpochSampler(len(dataset), self.seed, shuffle), collate_fn=type(self).collate,
                          generator=torch.Generator().manual_seed(self.seed),
                          drop_last=shuffle and self.drop_last_train and len(dataset) > self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)


class ImageCropsDataModule(SeededLoadersDataModule):
    """A :class:`SeededLoadersDataModule` whose samples are one square crop of one image each, with
    string ids: the :class:`CropSettings` are keywords too (defaults ``crop_defaults``), and give
    ``train_transform`` and ``eval_transform`` (what embedding tools and teacher dumps apply to any
    image); :meth:`sample_ids` lists a split's ids in loader order (val/test loaders keep it)."""

    crop_defaults: ClassVar[CropSettings] = CropSettings()

    def __init__(self, root: str | Path, generate: Callable[[Path], Any] | None = None, **settings: Any):
        super().__init__(root, generate, **{k: v for k, v in settings.items() if k not in _field_names(CropSettings)})
        crops = replace(self.crop_defaults, **{k: v for k, v in settings.items() if k in _field_names(CropSettings)})
        self.input_size = crops.input_size
        self.train_transform = crops.train_transform()
        self.eval_transform = crops.eval_transform()
        self.crops = crops

    def sample_ids(self, split: str) -> list[str]:
        """The sample ids of the ``train``/``val``/``test`` split (stored teacher outputs find their
        samples by them)."""
        if not hasattr(self, f"{split}_set"):
            self.setup("fit")
        return getattr(self, f"{split}_set").ids
