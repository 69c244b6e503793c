"""COCO-format detection data: any ``instances_*.json`` + image folder, COCO itself or custom classes.

The reader maps category ids (COCO's are 1..90 with gaps) to contiguous model labels 1..K (0 is
background, as torchvision's detectors expect) and back for evaluation; drops ``iscrowd`` boxes
from training targets (they stay in the JSON that pycocotools evaluates against); keeps images
without boxes (background images are valid training data); converts xywh to xyxy, clips boxes to
the image and drops degenerate ones. Every dropped annotation is counted by reason and logged with
its id; ``strict`` turns any such problem into an error instead.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mnet_vision.data.images import ImageReadError, read_rgb
from mnet_vision.data.skipping import skip_record
from mnet_vision.data.transforms import apply_seeded
from mnet_vision.jsonfiles import read_json

log = logging.getLogger(__name__)


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


def load_coco_json(source: str | Path | dict, what: str = "COCO annotation file") -> dict:
    """A COCO dataset dict from a JSON file (or a dict, checked as is), with lists under
    ``images``, ``annotations`` and ``categories``; errors name the file."""
    data = source if isinstance(source, dict) else read_json(source, what)
    name = "<COCO dict>" if isinstance(source, dict) else str(source)
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{name}: expected a list under {key!r}")
    return data


def read_coco(annotation_file: str | Path, strict: bool = False) -> CocoIndex:
    """Index a COCO detection JSON into per-image xyxy boxes and contiguous labels.

    Dropped from the training targets, counted by reason: ``iscrowd`` boxes, boxes of zero or
    negative size (after clipping to the image), boxes entirely outside their image, annotations
    whose ``image_id`` or ``category_id`` is not declared. With ``strict``, all but ``iscrowd``
    raise ``ValueError`` naming the file and annotation id.
    """
    path = Path(annotation_file)
    data = load_coco_json(path)
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
            raise ValueError(f"{path}: annotation id {ann.get('id')}: {reason} (bbox {ann.get('bbox')})")
        dropped[reason] += 1
        if reason != "iscrowd":
            log.warning("%s: annotation id %s dropped: %s", path, ann.get("id"), reason)

    for i, ann in enumerate(data["annotations"]):
        missing = [k for k in ("image_id", "category_id", "bbox") if k not in ann]
        if missing:
            raise ValueError(f"{path}: annotations[{i}] lacks {missing}")
        if ann["image_id"] not in sizes:
            drop(f"image_id {ann['image_id']} is not in 'images'", ann)
            continue
        if ann["category_id"] not in category_to_label:
            drop(f"category_id {ann['category_id']} is not in 'categories'", ann)
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
    Unreadable images raise when ``strict``, else become counted skip records.
    """

    def __init__(self, annotation_file: str | Path, image_dir: str | Path, transform=None, strict: bool = False):
        self.index = read_coco(annotation_file, strict)
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
            image = read_rgb(path)
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
        return {
            "image": image,
            "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64).reshape(-1)),
            "image_id": info["id"],
            "orig_size": (info["height"], info["width"]),
        }
