"""Multi-attribute data: images with K binary labels, from the CelebA layout or a generic CSV.

Labels are ``int8`` per attribute: 1 present, 0 absent, -1 unknown (left out of the loss and the
metrics, attribute by attribute). The two on-disk formats:

- **CelebA** (``<root>/list_attr_celeba.txt``, ``list_eval_partition.txt``, ``img_align_celeba/``):
  the attribute file's line 1 is the image count, line 2 the K names, then ``file v1 ... vK`` with
  values ``1`` (present) and ``-1`` (absent) separated by any run of spaces; we also read ``0`` as
  unknown. The partition file maps each file to 0 (train), 1 (val) or 2 (test).
- **CSV** (one file per split, e.g. ``<root>/train.csv``): a header ``path,attr1,...,attrK``, then
  one row per image with ``1``, ``0`` or an empty field (unknown). ``-1`` is refused there: in
  CelebA it means absent, in other conventions unknown, and a guess would be a silent wrong label.
  Columns named as ``regression`` outputs hold a number (age in years) and those named as
  ``categorical`` outputs one of their class names (``male``); empty is unknown there too. They come
  as ``sample["targets"][name]``: float32 (NaN unknown) or int64 class indices (-1 unknown).

Every error names the file, the line and what was expected; images listed but missing from the
image folder are an error when the data is set up, not a crash in a worker at step 1000.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mnet_vision.data.base import SPLITS, ImageCropsDataModule, split_files
from mnet_vision.data.skipping import collate_skipping, read_or_skip
from mnet_vision.images import MAX_PIXELS, check_images_exist, checked_max_pixels
from mnet_vision.textfiles import read_csv_rows, read_lines

log = logging.getLogger(__name__)

UNKNOWN = -1
CELEBA_VALUES = {"1": 1, "+1": 1, "-1": 0, "0": UNKNOWN}
CSV_VALUES = {"1": 1, "0": 0, "": UNKNOWN}


@dataclass
class AttributeTable:
    """The labels of one attribute file: ``names`` (K), ``files`` (N, relative to the image
    folder), ``labels`` ``(N, K)`` int8 in {1, 0, -1} and ``targets``, the other outputs' ``(N,)``
    columns by name (float32 with NaN unknown; int64 class indices with -1 unknown)."""

    names: list[str]
    files: list[str]
    labels: np.ndarray
    source: str
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    def subset(self, keep: Sequence[int]) -> AttributeTable:
        keep = list(keep)
        return AttributeTable(self.names, [self.files[i] for i in keep], self.labels[keep], self.source,
                              {name: values[keep] for name, values in self.targets.items()})


def _parse_values(rows: list[list[str]], lines: Sequence[int], names: Sequence[str], mapping: Mapping[str, int],
                  source: str) -> np.ndarray:
    """``(N, K)`` int8 labels from the value fields of ``rows``; row ``i`` is line ``lines[i]`` of
    ``source``. An unexpected value is an error naming its line and attribute."""
    values = np.array(rows, dtype=object).reshape(len(rows), len(names))
    labels = np.full(values.shape, 127, dtype=np.int8)
    for text, label in mapping.items():
        labels[values == text] = label
    bad = np.argwhere(labels == 127)
    if len(bad):
        i, j = bad[0]
        raise ValueError(f"{source}, line {lines[i]}: attribute {names[j]!r} is {values[i, j]!r}; expected one of "
                         f"{', '.join(repr(v) for v in mapping)} ({len(bad)} such value(s) in the file)")
    return labels


def _repeats(items: Sequence[str]) -> list[str]:
    """Every item that occurs before in ``items``, in order (empty when all are distinct)."""
    seen: set[str] = set()
    return [x for x in items if x in seen or seen.add(x)]


def _check_unique(files: Sequence[str], source: str) -> None:
    repeated = _repeats(files)
    if repeated:
        raise ValueError(f"{source}: {len(repeated)} image(s) listed more than once (first: {repeated[:3]})")


def read_celeba_attributes(path: str | Path) -> AttributeTable:
    """Read CelebA's ``list_attr_celeba.txt`` (count line, names line, ``file v1 .. vK`` rows)."""
    path = Path(path)
    lines = read_lines(path, "CelebA attribute file")
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected an image-count line and an attribute-names line, found {len(lines)} line(s)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}, line 1: expected the number of images, got {lines[0].strip()[:60]!r}") from None
    names = lines[1].split()
    if not names:
        raise ValueError(f"{path}, line 2: expected the attribute names, found none")
    if _repeats(names):
        raise ValueError(f"{path}, line 2: attribute names repeat: {sorted(set(_repeats(names)))}")
    rows = [line.split() for line in lines[2:]]
    for i, row in enumerate(rows):
        if len(row) != len(names) + 1:
            raise ValueError(f"{path}, line {i + 3}: expected a file name and {len(names)} values, found "
                             f"{len(row)} field(s)")
    if count != len(rows):
        raise ValueError(f"{path}, line 1: says {count} images but the file lists {len(rows)}")
    files = [row[0] for row in rows]
    _check_unique(files, str(path))
    labels = _parse_values([row[1:] for row in rows], range(3, 3 + len(rows)), names, CELEBA_VALUES, str(path))
    return AttributeTable(names, files, labels, str(path))


def read_celeba_partition(path: str | Path) -> dict[str, int]:
    """Read CelebA's ``list_eval_partition.txt``: ``{file: 0 train | 1 val | 2 test}``."""
    path = Path(path)
    partition: dict[str, int] = {}
    for number, line in enumerate(read_lines(path, "CelebA partition file"), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise ValueError(f"{path}, line {number}: expected '<file> <0|1|2>' (train, val, test), got {line.strip()[:80]!r}")
        if fields[0] in partition:
            raise ValueError(f"{path}, line {number}: {fields[0]} is listed twice")
        partition[fields[0]] = int(fields[1])
    if not partition:
        raise ValueError(f"{path} lists no images")
    return partition


def _parse_targets(body: list[tuple[int, list[str]]], header: list[str], regression: Sequence[str],
                   categorical: Mapping[str, Sequence[str]], source: str) -> dict[str, np.ndarray]:
    """The regression and categorical columns of a CSV's ``body`` rows (see :func:`read_attribute_csv`)."""
    targets: dict[str, np.ndarray] = {}
    for name in [*regression, *categorical]:
        column = header.index(name)
        values = [(line, row[column].strip()) for line, row in body]
        if name in categorical:
            classes = {c: i for i, c in enumerate(categorical[name])}
            bad = [(line, v) for line, v in values if v and v not in classes]
            if bad:
                raise ValueError(f"{source}, line {bad[0][0]}: {name!r} is {bad[0][1]!r}; expected one of "
                                 f"{list(classes)} or empty (unknown) ({len(bad)} such value(s) in the file)")
            targets[name] = np.array([classes[v] if v else UNKNOWN for _, v in values], dtype=np.int64)
            continue
        numbers = []
        for line, v in values:
            try:
                number = float(v) if v else math.nan
            except ValueError:
                number = math.inf
            if math.isinf(number) or (v and math.isnan(number)):
                raise ValueError(f"{source}, line {line}: {name!r} is {v!r}; expected a finite number or empty "
                                 f"(unknown)")
            numbers.append(number)
        targets[name] = np.array(numbers, dtype=np.float32)
    return targets


def read_attribute_csv(path: str | Path, regression: Sequence[str] = (),
                       categorical: Mapping[str, Sequence[str]] | None = None) -> AttributeTable:
    """Read a ``path,attr1,...,attrK`` CSV with values 1, 0 or empty (unknown). The columns named in
    ``regression`` (numbers) and ``categorical`` (``name -> class names``) are read as
    :attr:`AttributeTable.targets` instead; the rest are the binary attributes (none is allowed
    when there are such columns)."""
    categorical = dict(categorical or {})
    path = Path(path)
    rows = read_csv_rows(path, "attribute CSV")  # (line, fields): lines stay right past quoted newlines
    while rows and not any(field.strip() for field in rows[-1][1]):
        rows.pop()
    if not rows:
        raise ValueError(f"{path} is empty; expected a header 'path,attr1,...' and one row per image")
    header = [h.strip() for h in rows[0][1]]
    columns = header[1:]
    if not columns or not all(columns):
        raise ValueError(f"{path}, line {rows[0][0]}: expected a header 'path,attr1,attr2,...' with named attributes, "
                         f"got {header}")
    if _repeats(columns):
        raise ValueError(f"{path}, line {rows[0][0]}: attribute names repeat: {sorted(set(_repeats(columns)))}")
    missing = [name for name in [*regression, *categorical] if name not in columns]
    if missing:
        raise ValueError(f"{path}, line {rows[0][0]}: no column {missing} (the configured regression/categorical "
                         f"outputs); the header has {columns}")
    names = [name for name in columns if name not in regression and name not in categorical]
    body = rows[1:]
    for line, row in body:
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: expected {len(header)} fields (path and {len(names)} attributes), "
                             f"found {len(row)}")
        if not row[0].strip():
            raise ValueError(f"{path}, line {line}: the image path is empty")
    if not body:
        raise ValueError(f"{path} has a header but no images")
    files = [row[0].strip() for _, row in body]
    _check_unique(files, str(path))
    binary = [header.index(name) for name in names]
    labels = _parse_values([[row[j].strip() for j in binary] for _, row in body], [line for line, _ in body], names,
                           CSV_VALUES, str(path))
    return AttributeTable(names, files, labels, str(path),
                          _parse_targets(body, header, regression, categorical, str(path)))


class AttributeDataset(Dataset):
    """Samples ``{"image": (3, S, S) float, "attributes": (K,) int8 (1, 0, -1 unknown),
    "path": str, "id": str, "index": int}`` of one split; ``id`` is the file name as listed,
    ``index`` its row (the metrics count a photo that two processes score once). Unreadable images
    (and images of more than ``max_pixels`` pixels) raise :class:`ImageReadError` when ``strict``,
    else become counted skip records."""

    def __init__(self, folder: str | Path, table: AttributeTable, transform=None, strict: bool = False,
                 max_pixels: int | None = MAX_PIXELS):
        self.folder, self.table, self.transform, self.strict = Path(folder), table, transform, strict
        self.max_pixels = checked_max_pixels(max_pixels)  # a bad value fails here, not in a worker

    def __len__(self) -> int:
        return len(self.table.files)

    @property
    def ids(self) -> list[str]:
        return self.table.files

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """``key`` is an index, or ``(index, augmentation_seed)`` as :class:`EpochSampler` yields."""
        index, seed = key if isinstance(key, tuple) else (key, key)
        path = str(self.folder / self.table.files[index])
        image = read_or_skip(path, self.transform, seed, self.strict, self.max_pixels)
        if isinstance(image, dict):
            return image
        sample = {"image": image, "attributes": torch.from_numpy(self.table.labels[index]), "path": path,
                  "id": self.table.files[index], "index": index}
        if self.table.targets:
            sample["targets"] = {name: torch.tensor(values[index]) for name, values in self.table.targets.items()}
        return sample


class AttributeDataModule(ImageCropsDataModule):
    """Train/val/test loaders of an attribute set; subclasses say where the tables come from
    (:meth:`read_splits`).

    Args:
        root: the data folder.
        num_attributes: how many attributes the files must have (the model is built for it).
        generate: see :class:`~mnet_vision.data.base.SeededLoadersDataModule`.
        settings: by keyword, :class:`~mnet_vision.data.base.LoaderSettings` and
            :class:`~mnet_vision.data.base.CropSettings` (defaults: the TF release's ImageNet ones).
            Horizontal flips suit attributes that a mirror image keeps (faces: yes; "on the left": no).
    """

    collate = staticmethod(collate_skipping)

    def __init__(self, root: str, num_attributes: int, generate: Callable[[Path], Any] | None = None,
                 **settings: Any):
        super().__init__(root, generate, **settings)
        self.num_attributes = num_attributes
        self.names: list[str] | None = None

    def read_splits(self) -> dict[str, tuple[Path, AttributeTable]]:
        """``{split: (image folder, table)}`` for train, val and test, images checked to exist."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        splits = self.read_splits()
        names = splits["train"][1].names
        for split, (_, table) in splits.items():
            if table.names != names:
                raise ValueError(f"{table.source}: the {split} attributes {table.names} differ from the training "
                                 f"split's {names}")
            if not table.files:
                raise ValueError(f"{table.source}: the {split} split has no images")
        if len(names) != self.num_attributes:
            raise ValueError(f"{splits['train'][1].source} has {len(names)} attributes but the model is configured "
                             f"for data.num_attributes={self.num_attributes}")
        self.names = names
        transforms = {"train": self.train_transform, "val": self.eval_transform, "test": self.eval_transform}
        for split, (folder, table) in splits.items():
            setattr(self, f"{split}_set", AttributeDataset(folder, table, transforms[split], self.strict,
                                                          self.max_pixels))
        labels = splits["train"][1].labels
        log.info("%s: %d train / %d val / %d test images, %d attributes, %.1f %% of training labels unknown",
                 self.root, len(self.train_set), len(self.val_set), len(self.test_set), len(names),
                 100 * float((labels == UNKNOWN).mean()) if labels.size else 0.0)

    def label_counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positives, negatives)``, each ``(K,)``: the known training labels per attribute."""
        if not hasattr(self, "train_set"):
            self.setup("fit")
        labels = torch.from_numpy(self.train_set.table.labels)
        return (labels == 1).sum(0), (labels == 0).sum(0)


class CelebADataModule(AttributeDataModule):
    """CelebA's layout: ``<root>/<attributes_file>``, ``<partition_file>``, ``<images>/``.

    The defaults are torchvision's flat layout; the original release's ``Anno/list_attr_celeba.txt``
    and ``Eval/list_eval_partition.txt`` work by setting those paths. Every image of the attribute
    file needs a partition entry; partition entries without attributes are ignored (counted).
    """

    def __init__(self, root: str, num_attributes: int = 40, attributes_file: str = "list_attr_celeba.txt",
                 partition_file: str = "list_eval_partition.txt", images: str = "img_align_celeba", **kwargs):
        super().__init__(root, num_attributes, **kwargs)
        self.attributes_file, self.partition_file, self.images = attributes_file, partition_file, images

    def read_splits(self) -> dict[str, tuple[Path, AttributeTable]]:
        for name in (self.attributes_file, self.partition_file):
            if not (self.root / name).is_file():
                raise FileNotFoundError(f"{self.root / name} does not exist; expected CelebA's layout <root>/"
                                        f"{{{self.attributes_file}, {self.partition_file}, {self.images}/}}")
        table = read_celeba_attributes(self.root / self.attributes_file)
        partition_path = self.root / self.partition_file
        partition = read_celeba_partition(partition_path)
        unassigned = [f for f in table.files if f not in partition]
        if unassigned:
            raise ValueError(f"{len(unassigned)} image(s) of {table.source} have no split in {partition_path} "
                             f"(first: {unassigned[:5]})")
        if len(partition) > len(table.files):
            log.info("%s: %d partition entries have no attributes and are ignored", partition_path,
                     len(partition) - len(table.files))
        folder = self.root / self.images
        check_images_exist(folder, table.files, table.source)
        return {split: (folder, table.subset([i for i, f in enumerate(table.files) if partition[f] == code]))
                for code, split in enumerate(SPLITS)}


class AttributeCSVDataModule(AttributeDataModule):
    """One ``path,attr1,...`` CSV per split (``files``, relative to ``root``), image paths relative
    to ``<root>/<images>``; the columns named in ``regression`` (numbers, e.g. ``[age]``) and
    ``categorical`` (``{gender: [male, female]}``) are the other outputs' targets
    (:func:`read_attribute_csv`); ``num_attributes`` counts the remaining, binary columns."""

    def __init__(self, root: str, num_attributes: int, files: Mapping[str, str] | None = None, images: str = ".",
                 regression: Sequence[str] = (), categorical: Mapping[str, Sequence[str]] | None = None, **kwargs):
        super().__init__(root, num_attributes, **kwargs)
        self.files = split_files(files)
        self.images = images
        self.regression, self.categorical = list(regression), {k: list(v) for k, v in (categorical or {}).items()}

    def read_splits(self) -> dict[str, tuple[Path, AttributeTable]]:
        folder = self.root / self.images
        splits = {}
        for split in SPLITS:
            path = self.root / self.files[split]
            if not path.is_file():
                raise FileNotFoundError(f"{path} ({split} split) does not exist; expected <root>/{self.files[split]} "
                                        f"with a header 'path,attr1,...'")
            table = read_attribute_csv(path, self.regression, self.categorical)
            check_images_exist(folder, table.files, table.source)
            splits[split] = (folder, table)
        return splits
