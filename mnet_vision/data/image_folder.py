"""ImageFolder classification data (``<root>/<split>/<class>/*.jpg``): ImageNet, Stanford Dogs,
or any tree in that layout."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from mnet_vision.data.base import SPLITS, ImageCropsDataModule, named_splits
from mnet_vision.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.data.skipping import collate_skipping, read_or_skip

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


class ImageFolderDataModule(ImageCropsDataModule):
    """Train/val/test loaders over ``<root>/{train,val,test}``; ``test`` falls back to ``val``.

    Args:
        root: the folder holding the split folders.
        num_classes: how many class folders the training split must have (the model is built for it).
        splits: folder names of the train, val and test splits.
        generate: see :class:`~mnet_vision.data.base.SeededLoadersDataModule`.
        settings: by keyword, :class:`~mnet_vision.data.base.LoaderSettings` (``batch_size``,
            ``num_workers``, ``seed``, ``strict``, ``max_pixels``) and
            :class:`~mnet_vision.data.base.CropSettings` (``input_size``, ``min_crop_scale``,
            ``crop_fraction``, ``hflip``, ``mean``, ``std``); defaults: the TF release's ImageNet ones.
    """

    collate = staticmethod(collate_skipping)

    def __init__(self, root: str, num_classes: int, splits: Sequence[str] = SPLITS,
                 generate: Callable[[Path], Any] | None = None, **settings: Any):
        super().__init__(root, generate, **settings)
        self.num_classes = num_classes
        self.folders = named_splits(splits)
        self.classes: list[str] | None = None

    def has_split(self, split: str) -> bool:
        return (self.root / self.folders[split]).is_dir()

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

    def setup(self, stage: str | None = None) -> None:
        self.classes = None
        self.train_set = self._split(self.folders["train"], self.train_transform)
        self.val_set = self._split(self.folders["val"], self.eval_transform)
        test_name = self.folders[self.source_split("test")]
        self.test_set = self._split(test_name, self.eval_transform)
        log.info("%s: %d train / %d val / %d test (%s) images, %d classes", self.root, len(self.train_set),
                 len(self.val_set), len(self.test_set), test_name, len(self.classes))
