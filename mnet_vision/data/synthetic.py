"""Deterministic synthetic datasets, written to disk in the same layouts real data uses, so the
real readers are what every default run exercises.

``make_shapes_dataset`` draws an ImageFolder classification set: one class per shape, each image
a shape in a random colour, size, position and rotation over a noisy gradient background with
distractor strokes. ``make_shapes_detection_dataset`` draws a COCO-format detection set: 0..N
shapes per image over a range of scales, partly occluding each other. Every image is a pure
function of the seed, its split and its index.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

log = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ring", "diamond", "crescent")
DEFAULT_SPLITS = {"train": 300, "val": 50, "test": 50}
DEFAULT_DETECTION_SPLITS = {"train2017": 1200, "val2017": 100, "test2017": 200}
MARKER = "synthetic.json"
# Bump when drawing changes, so a set made by an older generator is reported, never silently mixed.
GENERATOR_VERSION = 1


def _polygon(cx: float, cy: float, r: float, n: int, rot: float, inner: float | None = None) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or a star when ``inner`` radius is given)."""
    points = []
    steps = 2 * n if inner else n
    for k in range(steps):
        radius = (inner if (inner and k % 2) else 1.0) * r
        a = rot + 2 * math.pi * k / steps
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def _draw_shape(mask: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rot: float) -> None:
    """Draw ``shape`` into an ``L`` mask: 255 where the shape is, 0 cut back out (ring hole,
    crescent bite) so the background shows through there."""
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape in ("circle", "ring", "crescent"):
        mask.ellipse(box, fill=255)
        if shape == "ring":
            mask.ellipse((cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55), fill=0)
        elif shape == "crescent":
            dx, dy = r * 0.5 * math.cos(rot), r * 0.5 * math.sin(rot)
            mask.ellipse((cx - r + dx, cy - r + dy, cx + r + dx, cy + r + dy), fill=0)
    elif shape in ("square", "triangle", "pentagon", "hexagon"):
        sides = {"square": 4, "triangle": 3, "pentagon": 5, "hexagon": 6}[shape]
        mask.polygon(_polygon(cx, cy, r, sides, rot), fill=255)
    elif shape == "star":
        mask.polygon(_polygon(cx, cy, r, 5, rot, inner=0.45), fill=255)
    elif shape == "diamond":
        pts = _polygon(cx, cy, r, 4, rot)
        mask.polygon([(cx + (x - cx) * (0.5 if i % 2 else 1.0), cy + (y - cy) * (0.5 if i % 2 else 1.0))
                      for i, (x, y) in enumerate(pts)], fill=255)
    elif shape == "cross":
        w = r * 0.35
        for a in (rot, rot + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy * w, dx * w
            mask.polygon([(cx - dx * r + px, cy - dy * r + py), (cx + dx * r + px, cy + dy * r + py),
                          (cx + dx * r - px, cy + dy * r - py), (cx - dx * r - px, cy - dy * r - py)], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def _background(rng: np.random.Generator, size: int) -> tuple[Image.Image, np.ndarray]:
    """A noisy two-colour gradient with 0-2 distractor strokes, and its mean colour."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * t + np.sin(angle) * t.transpose(1, 0, 2)) / 1.5 + 0.5
    background = (c0 * (1 - ramp) + c1 * ramp)
    background += rng.normal(0, 8, (size, size, 3))
    img = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(0, 3)):  # distractor strokes
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 3)))
    return img, background.mean(axis=(0, 1))


def _fill_colour(rng: np.random.Generator, mean_bg: np.ndarray) -> tuple[int, int, int]:
    fill = rng.integers(0, 256, 3)
    while np.abs(fill - mean_bg).sum() < 150:  # keep the shape visible against the background
        fill = rng.integers(0, 256, 3)
    return tuple(int(v) for v in fill)


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float, rot: float) -> Image.Image:
    mask = Image.new("L", (size, size), 0)
    _draw_shape(ImageDraw.Draw(mask), shape, cx, cy, r, rot)
    return mask


def draw_shape_image(shape: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of ``shape`` with random appearance drawn from ``rng``."""
    img, mean_bg = _background(rng, size)
    fill = _fill_colour(rng, mean_bg)
    r = rng.uniform(0.25, 0.45) * size
    cx, cy = rng.uniform(r, size - r, 2)
    img.paste(fill, mask=_shape_mask(shape, size, cx, cy, r, rng.uniform(0, 2 * math.pi)))
    return np.asarray(img)


def draw_detection_image(rng: np.random.Generator, size: int, num_classes: int, max_objects: int,
                         scale: tuple[float, float] = (0.06, 0.3)) -> tuple[np.ndarray, list[dict]]:
    """An image with 0..``max_objects`` shapes of random class, colour, radius (``scale`` times the
    image side), position and rotation; later shapes may partly cover earlier ones.

    Returns the ``(size, size, 3)`` uint8 image and one ``{"class": i, "bbox": [x, y, w, h],
    "area": pixels}`` per shape: the box and area of its *visible* pixels, as COCO annotates. A
    placement that would leave an earlier shape less than 75 % visible is drawn again elsewhere.
    """
    img, mean_bg = _background(rng, size)
    visible: list[np.ndarray] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(0, max_objects + 1))):
        for _attempt in range(20):
            cls = int(rng.integers(0, num_classes))
            r = rng.uniform(*scale) * size
            cx, cy = rng.uniform(r, size - r, 2)
            mask = np.asarray(_shape_mask(SHAPES[cls], size, cx, cy, r, rng.uniform(0, 2 * math.pi))) > 0
            # keep every earlier shape at least 75 % visible, so occlusion stays partial
            if all((v & ~mask).sum() >= 0.75 * v.sum() for v in visible) and mask.any():
                break
        else:
            continue
        img.paste(_fill_colour(rng, mean_bg), mask=Image.fromarray(mask.astype(np.uint8) * 255))
        visible = [v & ~mask for v in visible] + [mask]
        classes.append(cls)
    objects = []
    for cls, v in zip(classes, visible):
        ys, xs = np.nonzero(v)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        objects.append({"class": cls, "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], "area": int(v.sum())})
    return np.asarray(img), objects


def _generate_once(root: str | Path, params: dict, write: Callable[[Path], int]) -> Path:
    """Run ``write(folder)`` into a temporary folder renamed to ``root``, unless ``root`` already
    holds a set made with ``params``.

    The finished set carries a ``synthetic.json`` marker with its parameters; a folder with other
    parameters is an error (it is never silently overwritten), and an interrupted run leaves no
    half-written set.
    """
    root = Path(root)
    marker = root / MARKER
    if marker.exists():
        found = json.loads(marker.read_text())
        if found != params:
            raise ValueError(f"{root} holds a synthetic set made with {found}, not {params}; "
                             f"delete it or point data.root elsewhere")
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists, is not empty and has no {MARKER}; refusing to write a synthetic set there")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        count = write(tmp)
        (tmp / MARKER).write_text(json.dumps(params, indent=1))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote synthetic %s set to %s (%d images)", params["kind"], root, count)
    return root


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

    return _generate_once(root, params, write)


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

    return _generate_once(root, params, write)
