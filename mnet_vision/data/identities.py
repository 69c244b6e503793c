"""Face-identity data: one folder per person (``<root>/<split>/<identity>/*.jpg``: VGGFace2,
CASIA-WebFace, MS1M exported to folders, the LFW folder itself), LFW ``pairs.txt`` verification
pairs, metric-learning PK batches, and the synthetic default set."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mnet_vision.data.base import SPLITS, CropSettings, ImageCropsDataModule, LoaderSettings, named_splits
from mnet_vision.data.image_folder import ImageFolderDataset
from mnet_vision.images import MAX_PIXELS
from mnet_vision.data.lfw import LfwPairs, read_lfw_pairs
from mnet_vision.data.sampling import PKBatchSampler
from mnet_vision.data.skipping import collate_skipping

log = logging.getLogger(__name__)

LAYOUT = "<root>/<split>/<identity>/*.jpg, one folder per person (LFW: <name>/<name>_0001.jpg)"
# FaceNet's fixed image standardisation (x - 127.5) / 128, written as albumentations' Normalize
# computes it: (x - mean * 255) / (std * 255).
FACENET_MEAN = (0.5, 0.5, 0.5)
FACENET_STD = (128 / 255,) * 3


class IdentityFolderDataset(ImageFolderDataset):
    """Samples of one split folder of identity folders: ``{"image": (3, S, S) float, "label": int
    (identity index, folder names sorted), "path": str, "id": str}`` where ``id`` is the path
    relative to the split folder with ``/`` (``id00042/id00042_0003.png``).

    An identity with a single image is kept (LFW has 4069 of them): it is a valid gallery entry
    and negative, but :class:`PKBatchSampler` never draws it. A missing split folder, one without
    identity folders, or an empty identity folder is an error naming it and the expected layout.
    Unreadable images are counted skips unless ``strict`` (see :class:`ImageFolderDataset`).
    """

    def __init__(self, split_dir: str | Path, transform=None, strict: bool = False,
                 max_pixels: int | None = MAX_PIXELS):
        try:
            super().__init__(split_dir, transform, strict, max_pixels=max_pixels)
        except FileNotFoundError as err:  # the parent says "class" where a face set means "identity"
            raise FileNotFoundError(f"{err}; for face identities: {LAYOUT}") from err

    @property
    def labels(self) -> list[int]:
        """Identity index of every sample, in dataset order."""
        return [label for _, label in self.samples]

    @property
    def image_extension(self) -> str:
        """The most common file extension of the images, without the dot (``jpg``, ``png``)."""
        return Counter(Path(path).suffix[1:] for path, _ in self.samples).most_common(1)[0][0]


class IdentityFolderDataModule(ImageCropsDataModule):
    """Loaders over ``<root>/{train,val,test}`` identity folders: PK batches for training, every
    image in order for val/test, with LFW verification pairs per split where a pairs file is given.

    Batches are dicts: ``image`` ``(B, 3, input_size, input_size)`` float (FaceNet standardisation
    by default), ``label`` ``(B,)`` int64 identity indices of that split, ``path`` and ``id``
    lists of B strings, ``skipped`` the paths of unreadable images left out. A training batch is
    ``batch_size / images_per_identity`` identities x ``images_per_identity`` images, grouped by
    identity (:class:`PKBatchSampler`). The ``test`` split falls back to ``val`` when its folder
    is missing.

    Args:
        root: the folder holding the split folders.
        images_per_identity: K, samples of each identity in a training batch (``batch_size`` is
            P x K, also the val/test batch size).
        splits: folder names of the train, val and test splits.
        pairs: ``{"val"|"test": LFW pairs.txt}``, relative to ``root`` or absolute, read against
            that split's folder; a split without an entry has no pairs.
        generate: see :class:`~mnet_vision.data.base.SeededLoadersDataModule`.
        settings: by keyword, :class:`~mnet_vision.data.base.LoaderSettings` (``seed`` seeds the PK
            draws too) and :class:`~mnet_vision.data.base.CropSettings`; defaults: 160-pixel crops
            of at least 0.8 of the face, the whole aligned face at evaluation (``crop_fraction``
            1.0), FaceNet's standardisation, batches of 90, no worker processes.
    """

    collate = staticmethod(collate_skipping)

    loader_defaults = LoaderSettings(batch_size=90, num_workers=0)
    crop_defaults = CropSettings(input_size=160, min_crop_scale=0.8, crop_fraction=1.0, mean=FACENET_MEAN,
                                 std=FACENET_STD)

    def __init__(self, root: str, images_per_identity: int = 10, splits: Sequence[str] = SPLITS,
                 pairs: Mapping[str, str] | None = None, generate: Callable[[Path], Any] | None = None,
                 **settings: Any):
        super().__init__(root, generate, **settings)
        self.images_per_identity = images_per_identity
        self.transforms = {"train": self.train_transform, "val": self.eval_transform, "test": self.eval_transform}
        self.folders = named_splits(splits)
        self.pairs_files = dict(pairs or {})
        if not set(self.pairs_files) <= set(SPLITS):
            raise ValueError(f"pairs keys must be among {SPLITS}, got {sorted(self.pairs_files)}")
        self._datasets: dict[str, IdentityFolderDataset] = {}
        self._pairs: dict[str, LfwPairs] = {}

    def has_split(self, split: str) -> bool:
        return (self.root / self.folders[split]).is_dir()

    def dataset(self, split: str) -> IdentityFolderDataset:
        """The dataset of the ``train``/``val``/``test`` split, made once on first use."""
        role = self.source_split(split)
        if role not in self._datasets:
            if not self.root.is_dir():
                raise FileNotFoundError(f"data root {self.root} does not exist; expected layout {LAYOUT}")
            self._datasets[role] = IdentityFolderDataset(self.root / self.folders[role], self.transforms[role],
                                                         self.strict, self.max_pixels)
        return self._datasets[role]

    # the base class's val/test loaders read these
    train_set = property(lambda self: self.dataset("train"))
    val_set = property(lambda self: self.dataset("val"))
    test_set = property(lambda self: self.dataset("test"))

    def setup(self, stage: str | None = None) -> None:
        """Index the splits the stage needs and read their pairs files, so a bad layout or pairs
        file fails here rather than at the end of the first epoch."""
        needed = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in needed.get(stage, SPLITS):
            dataset = self.dataset(split)
            pairs = self.pairs(split)
            found = f", {len(pairs)} verification pairs" if pairs is not None else ""
            log.info("%s %s: %d images of %d identities%s", self.root, self.folders[self.source_split(split)],
                     len(dataset), len(dataset.classes), found)

    def pairs(self, split: str) -> LfwPairs | None:
        """The split's LFW verification pairs, read once against its folder (pairs whose images are
        missing are left out and listed in ``missing``), or ``None`` when it has no pairs file."""
        role = self.source_split(split)
        if role not in self.pairs_files:
            return None
        if role not in self._pairs:
            dataset = self.dataset(role)
            path = self.root / self.pairs_files[role]  # an absolute path stays as it is
            self._pairs[role] = read_lfw_pairs(path, self.root / self.folders[role], dataset.image_extension)
        return self._pairs[role]

    @property
    def num_identities(self) -> int:
        """Identities in the training split (the size of a softmax over identities)."""
        return len(self.dataset("train").classes)

    def train_dataloader(self) -> DataLoader:
        train = self.dataset("train")
        sampler = PKBatchSampler(train.labels, self.batch_size, self.images_per_identity, self.seed)
        if len(sampler.pools) < len(train.classes):
            log.info("%d of %d training identities have a single image and never appear in a PK batch",
                     len(train.classes) - len(sampler.pools), len(train.classes))
        # its own generator: worker seeds must not draw from the global RNG (see SeededLoadersDataModule)
        return DataLoader(train, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=type(self).collate,
                          generator=torch.Generator().manual_seed(self.seed))
