"""The synthetic shapes sets, written to disk in the same layouts real data uses, so the real
readers are what every default run exercises.

``make_shapes_dataset`` draws an ImageFolder classification set: one class per shape, each image
a shape in a random colour, size, position and rotation over a noisy gradient background with
distractor strokes. ``make_shapes_detection_dataset`` draws a COCO-format detection set: 0..N
shapes per image over a range of scales, partly occluding each other. Every image is a pure
function of the seed, its split and its index.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mnet_vision.data.synthetic.drawing import SHAPES, background, fill_colour, shape_mask
from mnet_vision.data.synthetic.generate import generate_once

DEFAULT_SPLITS = {"train": 300, "val": 50, "test": 50}
DEFAULT_DETECTION_SPLITS = {"train2017": 1200, "val2017": 100, "test2017": 200}
# Bump when drawing changes, so a set made by an older generator is reported, never silently mixed.
GENERATOR_VERSION = 1


def draw_shape_image(shape: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of ``shape`` with random appearance drawn from ``rng``."""
    img, mean_bg = background(rng, size)
    fill = fill_colour(rng, mean_bg)
    r = rng.uniform(0.25, 0.45) * size
    cx, cy = rng.uniform(r, size - r, 2)
    img.paste(fill, mask=shape_mask(shape, size, cx, cy, r, rng.uniform(0, 2 * math.pi)))
    return np.asarray(img)


def draw_detection_image(rng: np.random.Generator, size: int, num_classes: int, max_objects: int,
                         scale: tuple[float, float] = (0.06, 0.3)) -> tuple[np.ndarray, list[dict]]:
    """An image with 0..``max_objects`` shapes of random class, colour, radius (``scale`` times the
    image side), position and rotation; later shapes may partly cover earlier ones.

    Returns the ``(size, size, 3)`` uint8 image and one ``{"class": i, "bbox": [x, y, w, h],
    "area": pixels}`` per shape: the box and area of its *visible* pixels, as COCO annotates. A
    placement that would leave an earlier shape less than 75 % visible is drawn again elsewhere.
    """
    img, mean_bg = background(rng, size)
    visible: list[np.ndarray] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(0, max_objects + 1))):
        for _attempt in range(20):
            cls = int(rng.integers(0, num_classes))
            r = rng.uniform(*scale) * size
            cx, cy = rng.uniform(r, size - r, 2)
            mask = np.asarray(shape_mask(SHAPES[cls], size, cx, cy, r, rng.uniform(0, 2 * math.pi))) > 0
            # keep every earlier shape at least 75 % visible, so occlusion stays partial
            if all((v & ~mask).sum() >= 0.75 * v.sum() for v in visible) and mask.any():
                break
        else:
            continue
        img.paste(fill_colour(rng, mean_bg), mask=Image.fromarray(mask.astype(np.uint8) * 255))
        visible = [v & ~mask for v in visible] + [mask]
        classes.append(cls)
    objects = []
    for cls, v in zip(classes, visible):
        ys, xs = np.nonzero(v)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        objects.append({"class": cls, "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], "area": int(v.sum())})
    return np.asarray(img), objects


def make_shapes_dataset(root: str | Path, num_classes: int = 10, splits: Mapping[str, int] = DEFAULT_SPLITS,
                        image_size: int = 64, seed: int = 0) -> Path:
    """Write the synthetic shapes classification set as ``root/<split>/<shape>/<index>.png``
    (ImageFolder layout) unless it is there. ``splits`` maps split name to images per class."""
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in [2, {len(SHAPES)}], got {num_classes}")
    params = {"kind": "shapes", "version": GENERATOR_VERSION, "num_classes": num_classes, "splits": dict(splits),
              "image_size": image_size, "seed": seed}

    def write(tmp: Path) -> int:
        jobs = [(split, c, i) for split, n in splits.items() for c in range(num_classes) for i in range(n)]
        for split, c, i in tqdm(jobs, desc=f"generating {Path(root).name}", unit="img", leave=False):
            rng = np.random.default_rng([seed, list(splits).index(split), c, i])
            out = tmp / split / SHAPES[c] / f"{i:05d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(draw_shape_image(SHAPES[c], rng, image_size)).save(out)
        return len(jobs)

    return generate_once(root, params, write)


def make_shapes_detection_dataset(root: str | Path, num_classes: int = 10,
                                  splits: Mapping[str, int] = DEFAULT_DETECTION_SPLITS, image_size: int = 160,
                                  max_objects: int = 5, seed: int = 0) -> Path:
    """Write a synthetic detection set in the COCO layout unless it is there:
    ``root/annotations/instances_<split>.json`` and ``root/<split>/<image id>.png``.

    ``splits`` maps split name (``train2017``, ``val2017`` as COCO names them) to image count.
    Each image holds 0..``max_objects`` shapes (see :func:`draw_detection_image`); category ids
    are 1..``num_classes`` named after the shapes; annotation ids start at 1 (pycocotools needs it).
    """
    if not 1 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in [1, {len(SHAPES)}], got {num_classes}")
    params = {"kind": "shapes_detection", "version": GENERATOR_VERSION, "num_classes": num_classes,
              "splits": dict(splits), "image_size": image_size, "max_objects": max_objects, "seed": seed}
    categories = [{"id": i + 1, "name": SHAPES[i], "supercategory": "shape"} for i in range(num_classes)]

    def write(tmp: Path) -> int:
        (tmp / "annotations").mkdir(parents=True)
        total = 0
        for split_index, (split, count) in enumerate(splits.items()):
            (tmp / split).mkdir()
            images, annotations = [], []
            for i in tqdm(range(count), desc=f"generating {split}", unit="img", leave=False):
                image_id = i + 1
                image, objects = draw_detection_image(np.random.default_rng([seed, 1000 + split_index, i]),
                                                      image_size, num_classes, max_objects)
                name = f"{image_id:06d}.png"
                Image.fromarray(image).save(tmp / split / name)
                images.append({"id": image_id, "file_name": name, "width": image_size, "height": image_size})
                for obj in objects:
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                        "category_id": obj["class"] + 1, "bbox": obj["bbox"],
                                        "area": obj["area"], "iscrowd": 0})
            coco = {"info": {"description": "mnet_vision synthetic shapes", "version": str(GENERATOR_VERSION)},
                    "licenses": [], "images": images, "annotations": annotations, "categories": categories}
            (tmp / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
            total += count
        return total

    return generate_once(root, params, write)
