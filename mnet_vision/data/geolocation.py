"""Geolocation data: geotagged photos labelled with their cell in every partition, as datasets
and DataModules (the CSV reader is :mod:`mnet_vision.data.geotagged`)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mnet_vision.data.base import SPLITS, CropSettings, ImageCropsDataModule, split_files
from mnet_vision.data.geotagged import GeotaggedPhotos, read_geotagged_csv
from mnet_vision.images import MAX_PIXELS, checked_max_pixels, check_images_exist
from mnet_vision.data.skipping import collate_skipping, read_or_skip
from mnet_vision.data.transforms import FiveCropEval
from mnet_vision.geo.cells import GeoCellPartition

log = logging.getLogger(__name__)


class GeotaggedDataset(Dataset):
    """Samples ``{"image": (3, S, S) float, "lat", "lon": float64 degrees, "cells": (P,) int64
    (the photo's class in each partition, -1 where no cell holds it), "path", "id", "index"}``
    (``index`` into the split: the metrics count a photo that two processes score once). Unreadable
    images (and images of more than ``max_pixels`` pixels) raise when ``strict``, else become
    counted skip records."""

    def __init__(self, folder: str | Path, photos: GeotaggedPhotos, cells: np.ndarray, transform=None,
                 strict: bool = False, max_pixels: int | None = MAX_PIXELS):
        self.folder, self.photos, self.cells = Path(folder), photos, cells
        self.transform, self.strict, self.max_pixels = transform, strict, checked_max_pixels(max_pixels)

    def __len__(self) -> int:
        return len(self.photos.paths)

    @property
    def ids(self) -> list[str]:
        return self.photos.paths

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key`` is an index, or ``(index, augmentation_seed)`` as :class:`EpochSampler` yields."""
        index, seed = key if isinstance(key, tuple) else (key, key)
        path = str(self.folder / self.photos.paths[index])
        image = read_or_skip(path, self.transform, seed, self.strict, self.max_pixels)
        if isinstance(image, dict):
            return image
        return {"image": image, "lat": float(self.photos.lat[index]), "lon": float(self.photos.lon[index]),
                "cells": torch.from_numpy(self.cells[index]), "path": path, "id": self.photos.paths[index],
                "index": index}


def _subset(photos: GeotaggedPhotos, keep: np.ndarray) -> GeotaggedPhotos:
    return GeotaggedPhotos([photos.paths[i] for i in np.flatnonzero(keep)], photos.lat[keep], photos.lon[keep],
                           photos.source)


class GeotaggedDataModule(ImageCropsDataModule):
    """Train/val/test loaders of geotagged photos, labelled with their cells in each partition.

    Args:
        root: the data folder; the CSVs (``files``) are relative to it, image paths to ``<root>/<images>``.
        partitions: cell CSVs written by ``tools/make_cells.py`` from the training photos, coarsest
            first (the last is the one photos are located in).
        num_cells: their cell counts: the model's classifiers are built for these, and a file with
            another count is an error naming it.
        files: ``{split: CSV}`` relative to ``root`` (default ``<split>.csv``).
        images: the folder the CSVs' image paths are relative to, under ``root``.
        test_crops: 1 for the central crop; 5 for TIB GeoEstimation's test protocol: test photos
            become :class:`~mnet_vision.data.transforms.FiveCropEval`'s ``(5, 3, S, S)`` crops, and
            the task takes each cell's highest probability over them. Validation keeps one crop.
        generate: see :class:`~mnet_vision.data.base.SeededLoadersDataModule`.
        settings: by keyword, :class:`~mnet_vision.data.base.LoaderSettings` and
            :class:`~mnet_vision.data.base.CropSettings` (defaults: the TF release's ImageNet ones
            but TIB GeoEstimation's ``min_crop_scale`` 0.66).

    Training photos that no cell of some partition holds (they fell in cells dropped for holding
    fewer than ``t_min`` photos) are counted, logged and left out of training, as PlaNet does;
    validation and test keep every photo (the distance metrics need no cell; the loss ignores -1).
    """

    collate = staticmethod(collate_skipping)

    crop_defaults = CropSettings(min_crop_scale=0.66)

    def __init__(self, root: str, partitions: Sequence[str] | None, num_cells: Sequence[int],
                 files: Mapping[str, str] | None = None, images: str = ".", test_crops: int = 1,
                 generate: Callable[[Path], Any] | None = None, **settings: Any):
        super().__init__(root, generate, **settings)
        self.images = images
        self.partition_files = [str(p) for p in partitions or ()]
        self.num_cells = [int(n) for n in num_cells]
        self.files = split_files(files)
        if test_crops not in (1, FiveCropEval.crops):
            raise ValueError(f"data.test_crops must be 1 (central crop) or 5 (FiveCrop), got {test_crops}")
        crops = self.crops
        self.test_transform = (FiveCropEval(crops.input_size, crops.crop_fraction, crops.mean, crops.std)
                               if test_crops > 1 else self.eval_transform)
        self.partitions: list[GeoCellPartition] = []
        self.excluded_train_photos = 0

    def read_partitions(self) -> list[GeoCellPartition]:
        """The partition files, checked against ``num_cells``."""
        if not self.partition_files:
            raise ValueError("data.partitions lists no cell files; build them with tools/make_cells.py csv=<train CSV>")
        if len(self.partition_files) != len(self.num_cells):
            raise ValueError(f"data.partitions lists {len(self.partition_files)} file(s) but data.num_cells "
                             f"{len(self.num_cells)} count(s): {self.num_cells}")
        partitions = []
        for path, n in zip(self.partition_files, self.num_cells):
            if not Path(path).is_file():
                raise FileNotFoundError(f"partition file {path} does not exist; build it with tools/make_cells.py")
            partition = GeoCellPartition.read_csv(path)
            if len(partition) != n:
                raise ValueError(f"{path} has {len(partition)} cells but data.num_cells gives {n}; the model's "
                                 f"classifier is built for data.num_cells, so set it to the files' counts")
            partitions.append(partition)
        return partitions

    def setup(self, stage: str | None = None) -> None:
        self.partitions = self.read_partitions()
        folder = self.root / self.images
        for split in SPLITS:
            path = self.root / self.files[split]
            if not path.is_file():
                raise FileNotFoundError(f"{path} ({split} split) does not exist; expected <root>/{self.files[split]} "
                                        f"with a header 'path,lat,lon'")
            photos = read_geotagged_csv(path)
            check_images_exist(folder, photos.paths, photos.source)
            cells = np.stack([p.assign(photos.lat, photos.lon) for p in self.partitions], axis=1)
            if split == "train":
                kept = (cells >= 0).all(axis=1)
                self.excluded_train_photos = int((~kept).sum())
                if self.excluded_train_photos:
                    log.info("%s: %d of %d training photos lie in no cell of some partition (dropped for holding "
                             "fewer than t_min photos) and are left out of training", path,
                             self.excluded_train_photos, len(kept))
                    if not kept.any():
                        raise ValueError(f"{path}: no training photo lies in a cell of every partition "
                                         f"{self.partition_files}; were the cells built from another photo list?")
                photos, cells = _subset(photos, kept), cells[kept]
            transform = {"train": self.train_transform, "val": self.eval_transform, "test": self.test_transform}[split]
            setattr(self, f"{split}_set", GeotaggedDataset(folder, photos, cells, transform, self.strict,
                                                                  self.max_pixels))
        log.info("%s: %d train / %d val / %d test photos; partitions %s", self.root, len(self.train_set),
                 len(self.val_set), len(self.test_set), ", ".join(f"{p.source} ({len(p)} cells)" for p in self.partitions))
