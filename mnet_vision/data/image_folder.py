"""ImageFolder classification data (``<root>/<split>/<class>/*.jpg``): ImageNet, Stanford Dogs,
or any tree in that layout."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from mnet_vision.data.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.data.sampling import SeededLoadersDataModule
from mnet_vision.data.skipping import collate_skipping, read_or_skip
from mnet_vision.data.transforms import (TF_MEAN, TF_STD, classification_eval_transform,
                                         classification_train_transform)

log = logging.getLogger(__name__)

LAYOUT = "<root>/<split>/<class_name>/<image>.jpg (ImageFolder)"


class ImageFolderDataset(Dataset):
    """Samples of one split folder: ``{"image": (3, S, S) float, "label": int, "path": str, "id": str}``.

    The file index comes from torchvision's ImageFolder helpers (``find_classes``/``make_dataset``),
    so an empty class folder is an error that names the class. Unreadable images (and images of
    more than ``max_pixels`` pixels) raise :class:`ImageReadError` when ``strict``, else become
    counted skip records.
    """

    def __init__(self, split_dir: str | Path, transform=None, strict: bool = False,
                 classes: Sequence[str] | None = None, max_pixels: int | None = MAX_PIXELS):
        split_dir = Path(split_dir)
        if not split_dir.is_dir():
            raise FileNotFoundError(f"image folder {split_dir} does not exist; expected layout {LAYOUT}")
        try:
            found, _ = find_classes(str(split_dir))
        except FileNotFoundError as err:  # torchvision's message lacks the expected layout
            raise FileNotFoundError(f"image folder {split_dir} has no class sub-folders; expected layout {LAYOUT}") from err
        if classes is not None and list(classes) != found:
            missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
            raise ValueError(f"classes in {split_dir} differ from the training split: missing {missing}, extra {extra}")
        self.classes = found
        self.class_to_idx = {c: i for i, c in enumerate(found)}
        try:
            self.samples = make_dataset(str(split_dir), self.class_to_idx, extensions=IMG_EXTENSIONS)
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{split_dir}: {err}") from err
        self.transform = transform
        self.strict, self.max_pixels = strict, checked_max_pixels(max_pixels)
        self.split_dir = split_dir

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key`` is an index, or ``(index, augmentation_seed)`` as :class:`EpochSampler` yields."""
        index, seed = key if isinstance(key, tuple) else (key, key)
        path, label = self.samples[index]
        image = read_or_skip(path, self.transform, seed, self.strict, self.max_pixels)
        if isinstance(image, dict):
            return image
        return {"image": image, "label": label, "path": path, "id": self.ids[index]}

    @property
    def ids(self) -> list[str]:
        """Sample ids: paths relative to the split folder (``<class>/<file>``), stable across
        machines, so stored teacher outputs (:mod:`mnet_vision.tasks.teachers`) find their samples."""
        if not hasattr(self, "_ids"):
            self._ids = [Path(path).relative_to(self.split_dir).as_posix() for path, _ in self.samples]
        return self._ids


class ImageFolderDataModule(SeededLoadersDataModule):
    """Train/val/test loaders over ``<root>/{train,val,test}``; ``test`` falls back to ``val``.

    Args:
        root: the folder holding the split folders.
        num_classes: how many class folders the training split must have (the model is built for it).
        input_size: side of the square crops fed to the model.
        batch_size, num_workers: DataLoader settings (per process under DDP).
        seed: seeds the per-epoch shuffle and the augmentation (see :class:`EpochSampler`).
        strict: raise on the first unreadable image instead of skipping and counting it.
        min_crop_scale, crop_fraction, hflip, mean, std: see :mod:`mnet_vision.data.transforms`.
        max_pixels: images of more pixels are skipped (or raise when ``strict``), checked before decoding
            (:func:`mnet_vision.data.images.read_rgb`; default 64 megapixels, ``None``: no limit).
    """

    collate = staticmethod(collate_skipping)

    def __init__(self, root: str, num_classes: int, input_size: int = 224, batch_size: int = 64,
                 num_workers: int = 2, strict: bool = False, min_crop_scale: float = 0.25,
                 crop_fraction: float = 0.875, hflip: bool = True, mean: Sequence[float] = TF_MEAN,
                 std: Sequence[float] = TF_STD, splits: Sequence[str] = ("train", "val", "test"), seed: int = 0,
                 max_pixels: int | None = MAX_PIXELS):
        super().__init__()
        self.max_pixels = checked_max_pixels(max_pixels)  # a bad value fails here, not in a worker
        self.root = Path(root)
        self.num_classes = num_classes
        self.input_size = input_size
        self.batch_size, self.num_workers, self.strict, self.seed = batch_size, num_workers, strict, seed
        self.train_transform = classification_train_transform(input_size, min_crop_scale, hflip, mean, std)
        self.eval_transform = classification_eval_transform(input_size, crop_fraction, mean, std)
        self.train_split, self.val_split, self.test_split = splits
        self.classes: list[str] | None = None

    def _split(self, name: str, transform) -> ImageFolderDataset:
        if not self.root.is_dir():
            raise FileNotFoundError(f"data root {self.root} does not exist; expected layout {LAYOUT}")
        dataset = ImageFolderDataset(self.root / name, transform, self.strict, self.classes, self.max_pixels)
        if self.classes is None:
            if len(dataset.classes) != self.num_classes:
                raise ValueError(f"{self.root / name} has {len(dataset.classes)} class folders but the model "
                                 f"is configured for data.num_classes={self.num_classes}")
            self.classes = dataset.classes
        return dataset

    def sample_ids(self, split: str) -> list[str]:
        """The sample ids (:attr:`ImageFolderDataset.ids`) of the ``train``/``val``/``test`` split."""
        if not hasattr(self, f"{split}_set"):
            self.setup("fit")
        return getattr(self, f"{split}_set").ids

    def setup(self, stage: str | None = None) -> None:
        self.classes = None
        self.train_set = self._split(self.train_split, self.train_transform)
        self.val_set = self._split(self.val_split, self.eval_transform)
        test_name = self.test_split if (self.root / self.test_split).is_dir() else self.val_split
        self.test_set = self._split(test_name, self.eval_transform)
        log.info("%s: %d train / %d val / %d test (%s) images, %d classes", self.root, len(self.train_set),
                 len(self.val_set), len(self.test_set), test_name, len(self.classes))
