"""COCO-format detection data: any ``instances_*.json`` + image folder, COCO itself or custom classes.

The reader maps category ids (COCO's are 1..90 with gaps) to contiguous model labels 1..K (0 is
background, as torchvision's detectors expect) and back for evaluation; drops ``iscrowd`` boxes
from training targets (they stay in the JSON that pycocotools evaluates against); keeps images
without boxes (background images are valid training data); converts xywh to xyxy, clips boxes to
the image and drops degenerate ones. Every dropped annotation is counted by reason and logged with
its id; ``strict`` turns any such problem into an error instead. A file no choice of annotations can
make right (repeated image, annotation or category ids, repeated file names, bad image sizes) is an
error either way. The file checks are the COCO metric's own
(:func:`mnet_vision.metrics.coco.load_coco_json`, :func:`~mnet_vision.metrics.coco.annotation_problem`),
so training and scoring see one file alike.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mnet_vision.data.base import LoaderSettings, SeededLoadersDataModule, named_splits
from mnet_vision.images import MAX_PIXELS, checked_max_pixels, ImageReadError, read_rgb
from mnet_vision.data.skipping import SKIPPED, skip_record
from mnet_vision.metrics.coco import annotation_problem, load_coco_gt, load_coco_json
from mnet_vision.data.transforms import apply_seeded, detection_eval_transform, detection_train_transform

log = logging.getLogger(__name__)

COCO_LAYOUT = "<root>/annotations/instances_<split>.json + <root>/<split>/<file_name> (COCO)"


@dataclass
class CocoIndex:
    """What :func:`read_coco` found: images, class maps and per-image training targets."""

    images: list[dict]                      # {"id", "file_name", "width", "height"}, in file order
    categories: list[dict]                  # sorted by id
    boxes: dict[int, np.ndarray]            # image id -> (N, 4) float32 xyxy pixels
    labels: dict[int, np.ndarray]           # image id -> (N,) int64 contiguous labels 1..K
    dropped: Counter = field(default_factory=Counter)  # reason -> annotations left out of the targets

    @property
    def label_to_category(self) -> list[int]:
        """Index = model label; 0 is background (category id 0 is never used by COCO)."""
        return [0] + [c["id"] for c in self.categories]

    @property
    def category_to_label(self) -> dict[int, int]:
        return {c["id"]: i for i, c in enumerate(self.categories, start=1)}

    @property
    def class_names(self) -> list[str]:
        return ["__background__"] + [c["name"] for c in self.categories]


def read_coco(annotation_file: str | Path, strict: bool = False) -> CocoIndex:
    """Index a COCO detection JSON into per-image xyxy boxes and contiguous labels.

    The file is checked by :func:`~mnet_vision.metrics.coco.load_coco_json` (repeated ids or file
    names, bad widths or heights are errors). Dropped from the training targets, counted by reason:
    ``iscrowd`` boxes, boxes of zero or negative size (after clipping to the image), boxes entirely
    outside their image, and the annotations :func:`~mnet_vision.metrics.coco.annotation_problem`
    refuses (undeclared ``image_id`` or ``category_id``, a malformed or non-finite ``bbox``, a bad
    ``iscrowd``). With ``strict``, all but ``iscrowd`` raise ``ValueError`` naming the file and
    annotation id.
    """
    path = Path(annotation_file)
    data = load_coco_json(path)
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat.get("name"), str):
            raise ValueError(f"{path}: categories[{i}] (id {cat['id']}) has name {cat.get('name')!r}; expected a string")
    categories = sorted(data["categories"], key=lambda c: c["id"])
    if not categories:
        raise ValueError(f"{path}: 'categories' is empty")
    category_to_label = {c["id"]: i for i, c in enumerate(categories, start=1)}
    images = []
    for i, img in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name", "width", "height") if k not in img]
        if missing:
            raise ValueError(f"{path}: images[{i}] lacks {missing}")
        images.append({k: img[k] for k in ("id", "file_name", "width", "height")})
    sizes = {img["id"]: (img["width"], img["height"]) for img in images}
    boxes: dict[int, list] = {img["id"]: [] for img in images}
    labels: dict[int, list] = {img["id"]: [] for img in images}
    dropped: Counter = Counter()

    def drop(reason: str, ann: dict) -> None:
        if strict and reason != "iscrowd":
            raise ValueError(f"{path}: annotation id {ann.get('id')}: {reason} (bbox {ann.get('bbox')!r}, "
                             f"image_id {ann.get('image_id')!r})")
        dropped[reason] += 1
        if reason != "iscrowd":
            log.warning("%s: annotation id %s dropped: %s (bbox %r)", path, ann.get("id"), reason, ann.get("bbox"))

    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in ("image_id", "category_id", "bbox") if k not in ann]
        if missing:
            raise ValueError(f"{path}: annotations[{i}] lacks {missing}")
        problem = annotation_problem(ann, sizes, category_to_label)
        if problem is not None:
            drop(problem, ann)
            continue
        if ann.get("iscrowd", 0):
            drop("iscrowd", ann)
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        width, height = sizes[ann["image_id"]]
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, float(width)), min(y + h, float(height))
        if w <= 0 or h <= 0:
            drop("box of zero or negative size", ann)
            continue
        if x2 <= x1 or y2 <= y1:
            drop("box outside its image", ann)
            continue
        boxes[ann["image_id"]].append((x1, y1, x2, y2))
        labels[ann["image_id"]].append(category_to_label[ann["category_id"]])
    if dropped:
        log.info("%s: %d images; annotations left out of training targets: %s", path, len(images), dict(dropped))
    return CocoIndex(
        images=images,
        categories=categories,
        boxes={k: np.asarray(v, dtype=np.float32).reshape(-1, 4) for k, v in boxes.items()},
        labels={k: np.asarray(v, dtype=np.int64) for k, v in labels.items()},
        dropped=dropped,
    )


class CocoDetectionDataset(Dataset):
    """Samples ``{"image": (3, H, W) float, "boxes": (N, 4) float32 xyxy, "labels": (N,) int64,
    "image_id": int, "orig_size": (h, w)}`` of a COCO JSON and its image folder.

    ``transform`` is an albumentations ``Compose`` with ``bbox_params`` in ``pascal_voc`` format and
    ``label_fields=["labels"]``; boxes it drops (cropped away) disappear with their labels.
    Unreadable images (and images of more than ``max_pixels`` pixels, checked before decoding) raise
    when ``strict``, else become counted skip records.
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, transform=None, strict: bool = False,
                 max_pixels: int | None = MAX_PIXELS):
        self.index = read_coco(annotation_file, strict)
        self.max_pixels = checked_max_pixels(max_pixels)  # a bad value fails here, not in a worker
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder {self.image_dir} (for {annotation_file}) does not exist")
        self.transform, self.strict = transform, strict

    def __len__(self) -> int:
        return len(self.index.images)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        info = self.index.images[index]
        path = self.image_dir / info["file_name"]
        try:
            image = read_rgb(path, self.max_pixels)
        except ImageReadError as err:
            if self.strict:
                raise
            return skip_record(str(path), err)
        boxes, labels = self.index.boxes[info["id"]], self.index.labels[info["id"]]
        if image.shape[:2] != (info["height"], info["width"]):
            err = ImageReadError(path, f"is {image.shape[1]}x{image.shape[0]}, the JSON says "
                                       f"{info['width']}x{info['height']}")
            if self.strict:
                raise err
            return skip_record(str(path), err)
        if self.transform is not None:
            out = apply_seeded(self.transform, seed, image=image, bboxes=boxes, labels=labels)
            image, boxes, labels = out["image"], out["bboxes"], out["labels"]
        else:
            image = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        # torchvision's detectors raise on any box without positive width and height: a transform
        # must never hand one on (the reader already dropped those of the JSON, counted).
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return {
            "image": image,
            "boxes": torch.as_tensor(boxes[keep]),
            "labels": torch.as_tensor(labels[keep]),
            "image_id": info["id"],
            "orig_size": (info["height"], info["width"]),
        }


def collate_detection(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch detection samples as torchvision's detectors take them: ``images`` a list of ``(3, H, W)``
    tensors (sizes may differ), ``targets`` a list of ``{"boxes": (N, 4) xyxy, "labels": (N,)}``
    (``N`` may be 0), ``image_ids`` and ``orig_sizes`` lists; unreadable samples are left out and
    listed under ``skipped`` (see :mod:`mnet_vision.data.skipping`)."""
    good = [s for s in samples if SKIPPED not in s]
    return {
        "images": [s["image"] for s in good],
        "targets": [{"boxes": s["boxes"], "labels": s["labels"]} for s in good],
        "image_ids": [s["image_id"] for s in good],
        "orig_sizes": [s["orig_size"] for s in good],
        SKIPPED: [s[SKIPPED] for s in samples if SKIPPED in s],
    }


class CocoDetectionDataModule(SeededLoadersDataModule):
    """Train/val/test loaders over a COCO layout: ``<root>/annotations/instances_<split>.json`` and
    ``<root>/<split>/<file_name>`` for each split (``train2017``, ``val2017`` by default; the test
    split falls back to the val split when its JSON is missing).

    Args:
        root: the folder holding ``annotations/`` and the image folders.
        num_classes: object categories the model is built for (background excluded); the training
            JSON must declare exactly this many.
        augment: training augmentation, ``ssd`` | ``flip`` | ``none``
            (:func:`mnet_vision.data.transforms.detection_train_transform`).
        splits: the train, val and test split names (of the JSONs and image folders).
        generate: see :class:`~mnet_vision.data.base.SeededLoadersDataModule`.
        settings: :class:`~mnet_vision.data.base.LoaderSettings` by keyword (``batch_size``,
            ``num_workers``, ``seed``, ``strict``, ``max_pixels``). ``strict`` applies to the
            evaluation ground truth too (:func:`mnet_vision.metrics.coco.load_coco_gt`).

    After ``setup``: ``label_to_category``, ``class_names`` (index = model label, 0 background) and
    :meth:`ground_truth` (the pycocotools ``COCO`` a split is scored against).
    """

    collate = staticmethod(collate_detection)
    # A last partial batch of one image cannot train BatchNorm on SSD's 1x1 extra-layer maps.
    drop_last_train = True

    loader_defaults = LoaderSettings(batch_size=16)

    def __init__(self, root: str, num_classes: int, augment: str = "ssd",
                 splits: Sequence[str] = ("train2017", "val2017", "test2017"),
                 generate: Callable[[Path], Any] | None = None, **settings: Any):
        super().__init__(root, generate, **settings)
        self.num_classes, self.augment = num_classes, augment
        self.folders = named_splits(splits)
        self.train_transform = detection_train_transform(augment)
        self.eval_transform = detection_eval_transform()
        self._gt: dict[str, Any] = {}

    def annotation_file(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{split}.json"

    def has_split(self, split: str) -> bool:
        return self.annotation_file(self.folders[split]).is_file()

    def _split(self, split: str, transform) -> CocoDetectionDataset:
        if not self.root.is_dir():
            raise FileNotFoundError(f"data root {self.root} does not exist; expected layout {COCO_LAYOUT}")
        if not self.annotation_file(split).is_file():
            raise FileNotFoundError(f"{self.annotation_file(split)} does not exist; expected layout {COCO_LAYOUT}")
        return CocoDetectionDataset(self.annotation_file(split), self.root / split, transform, self.strict,
                                    self.max_pixels)

    def setup(self, stage: str | None = None) -> None:
        train, val = self.folders["train"], self.folders["val"]
        self.train_set = self._split(train, self.train_transform)
        index = self.train_set.index
        if len(index.categories) != self.num_classes:
            raise ValueError(f"{self.annotation_file(train)} declares {len(index.categories)} categories "
                             f"but the model is configured for data.num_classes={self.num_classes}")
        self.label_to_category, self.class_names = index.label_to_category, index.class_names
        self.val_set = self._split(val, self.eval_transform)
        if self.val_set.index.label_to_category != self.label_to_category:
            raise ValueError(f"categories of {self.annotation_file(val)} differ from the training split's")
        self.test_name = self.folders[self.source_split("test")]
        self.test_set = self.val_set if self.test_name == val else self._split(self.test_name, self.eval_transform)
        log.info("%s: %d train / %d val / %d test (%s) images, %d categories", self.root, len(self.train_set),
                 len(self.val_set), len(self.test_set), self.test_name, self.num_classes)

    def ground_truth(self, stage: str):
        """The pycocotools ``COCO`` of the ``val`` or ``test`` split (loaded once, checked as the
        training reader checks it: bad annotations are counted drops, or errors when ``strict``)."""
        split = self.folders["val"] if stage == "val" else self.test_name
        if split not in self._gt:
            self._gt[split] = load_coco_gt(self.annotation_file(split), strict=self.strict)
        return self._gt[split]
