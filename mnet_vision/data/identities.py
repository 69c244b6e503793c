"""Face-identity data: one folder per person (``<root>/<split>/<identity>/*.jpg``: VGGFace2,
CASIA-WebFace, MS1M exported to folders, the LFW folder itself), LFW ``pairs.txt`` verification
pairs, metric-learning PK batches, and the synthetic default set."""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from mnet_vision.data.image_folder import ImageFolderDataset
from mnet_vision.data.images import MAX_PIXELS, checked_max_pixels
from mnet_vision.data.lfw import LfwPairs, read_lfw_pairs
from mnet_vision.data.sampling import PKBatchSampler, SeededLoadersDataModule
from mnet_vision.data.skipping import collate_skipping
from mnet_vision.data.transforms import classification_eval_transform, classification_train_transform

log = logging.getLogger(__name__)

LAYOUT = "<root>/<split>/<identity>/*.jpg, one folder per person (LFW: <name>/<name>_0001.jpg)"
ROLES = ("train", "val", "test")
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


class IdentityFolderDataModule(SeededLoadersDataModule):
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
        input_size: side of the square crops fed to the model, pixels.
        batch_size: P x K samples per batch (also the val/test batch size).
        images_per_identity: K, samples of each identity in a training batch.
        num_workers: DataLoader worker processes (per process under DDP).
        strict: raise on the first unreadable image instead of skipping and counting it.
        max_pixels: images of more pixels are skipped (or raise when ``strict``), checked before decoding
            (:func:`mnet_vision.data.images.read_rgb`; default 64 megapixels, ``None``: no limit).
        seed: seeds the PK draws, shuffles and augmentation (see :class:`EpochSampler`).
        hflip, min_crop_scale, crop_fraction, mean, std: see :mod:`mnet_vision.data.transforms`;
            ``crop_fraction`` 1.0 keeps the whole aligned face at evaluation.
        splits: folder names of the train, val and test splits.
        pairs: ``{"val"|"test": LFW pairs.txt}``, relative to ``root`` or absolute, read against
            that split's folder; a split without an entry has no pairs.
    """

    collate = staticmethod(collate_skipping)

    def __init__(self, root: str, input_size: int = 160, batch_size: int = 90, images_per_identity: int = 10,
                 num_workers: int = 0, strict: bool = False, seed: int = 0, hflip: bool = True,
                 min_crop_scale: float = 0.8, crop_fraction: float = 1.0, mean: Sequence[float] = FACENET_MEAN,
                 std: Sequence[float] = FACENET_STD, splits: Sequence[str] = ROLES,
                 pairs: Mapping[str, str] | None = None, max_pixels: int | None = MAX_PIXELS):
        super().__init__()
        self.root = Path(root)
        self.max_pixels = checked_max_pixels(max_pixels)  # a bad value fails here, not in a worker
        self.input_size = input_size
        self.batch_size, self.images_per_identity = batch_size, images_per_identity
        self.num_workers, self.strict, self.seed = num_workers, strict, seed
        eval_transform = classification_eval_transform(input_size, crop_fraction, mean, std)
        self.transforms = {"train": classification_train_transform(input_size, min_crop_scale, hflip, mean, std),
                           "val": eval_transform, "test": eval_transform}
        self.eval_transform = eval_transform  # what embedding tools and teacher dumps apply to any image
        if len(splits) != len(ROLES):
            raise ValueError(f"splits must name the train, val and test folders, got {list(splits)}")
        self.folders = dict(zip(ROLES, splits))
        self.pairs_files = dict(pairs or {})
        if not set(self.pairs_files) <= set(ROLES):
            raise ValueError(f"pairs keys must be among {ROLES}, got {sorted(self.pairs_files)}")
        self._datasets: dict[str, IdentityFolderDataset] = {}
        self._pairs: dict[str, LfwPairs] = {}

    def _role(self, split: str) -> str:
        """The split whose folder serves ``split``: itself, or ``val`` for a missing test folder."""
        if split not in ROLES:
            raise ValueError(f"split must be one of {ROLES}, got {split!r}")
        if split == "test" and not (self.root / self.folders["test"]).is_dir():
            return "val"
        return split

    def dataset(self, split: str) -> IdentityFolderDataset:
        """The dataset of the ``train``/``val``/``test`` split, made once on first use."""
        role = self._role(split)
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
        for split in needed.get(stage, ROLES):
            dataset = self.dataset(split)
            pairs = self.pairs(split)
            log.info("%s %s: %d images of %d identities%s", self.root, self.folders[self._role(split)], len(dataset),
                     len(dataset.classes), f", {len(pairs)} verification pairs" if pairs is not None else "")

    def sample_ids(self, split: str) -> list[str]:
        """Sample ids of the ``train``/``val``/``test`` split in loader order (val/test loaders keep it)."""
        return self.dataset(split).ids

    def pairs(self, split: str) -> LfwPairs | None:
        """The split's LFW verification pairs, read once against its folder (pairs whose images are
        missing are left out and listed in ``missing``), or ``None`` when it has no pairs file."""
        role = self._role(split)
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
