"""Deterministic synthetic datasets, written to disk in the same layouts real data uses, so the
real readers are what every default run exercises.

``make_shapes_dataset`` draws an ImageFolder classification set: one class per shape, each image
a shape in a random colour, size, position and rotation over a noisy gradient background with
distractor strokes. Every image is a pure function of (seed, split, class, index).
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

log = logging.getLogger(__name__)

SHAPES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ring", "diamond", "crescent")
DEFAULT_SPLITS = {"train": 300, "val": 50, "test": 50}
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


def draw_shape_image(shape: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 image of ``shape`` with random appearance drawn from ``rng``."""
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
    mean_bg = background.mean(axis=(0, 1))
    fill = rng.integers(0, 256, 3)
    while np.abs(fill - mean_bg).sum() < 150:  # keep the shape visible against the background
        fill = rng.integers(0, 256, 3)
    r = rng.uniform(0.25, 0.45) * size
    cx, cy = rng.uniform(r, size - r, 2)
    mask = Image.new("L", img.size, 0)
    _draw_shape(ImageDraw.Draw(mask), shape, cx, cy, r, rng.uniform(0, 2 * math.pi))
    img.paste(tuple(int(v) for v in fill), mask=mask)
    return np.asarray(img)


def make_shapes_dataset(root: str | Path, num_classes: int = 10, splits: Mapping[str, int] = DEFAULT_SPLITS,
                        image_size: int = 64, seed: int = 0) -> Path:
    """Write the synthetic shapes set as ``root/<split>/<shape>/<index>.png`` unless it is there.

    ``splits`` maps split name to images per class. The finished set carries a ``synthetic.json``
    marker with its parameters; a folder with other parameters is an error (it is never silently
    overwritten). Generation goes to a temporary folder renamed into place, so an interrupted
    run leaves no half-written set.
    """
    if not 2 <= num_classes <= len(SHAPES):
        raise ValueError(f"num_classes must be in [2, {len(SHAPES)}], got {num_classes}")
    root = Path(root)
    params = {"kind": "shapes", "version": GENERATOR_VERSION, "num_classes": num_classes, "splits": dict(splits),
              "image_size": image_size, "seed": seed}
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
        jobs = [(split, c, i) for split, n in splits.items() for c in range(num_classes) for i in range(n)]
        for split, c, i in tqdm(jobs, desc=f"generating {root.name}", unit="img", leave=False):
            rng = np.random.default_rng([seed, list(splits).index(split), c, i])
            out = tmp / split / SHAPES[c] / f"{i:05d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(draw_shape_image(SHAPES[c], rng, image_size)).save(out)
        (tmp / MARKER).write_text(json.dumps(params, indent=1))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote synthetic shapes set to %s (%d images)", root, len(jobs))
    return root
