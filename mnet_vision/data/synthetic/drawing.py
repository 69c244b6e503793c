"""Drawing primitives the synthetic generators share: regular polygons and stars, the ten shape
masks of the shapes sets, and the noisy gradient background with distractor strokes.

Every function draws its randomness from the ``rng`` it is given, in a fixed order: a generator
that calls them in the same order gets the same pixels (the sets on disk depend on it).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ring", "diamond", "crescent")


def polygon(cx: float, cy: float, r: float, n: int, rot: float, inner: float | None = None) -> list[tuple[float, float]]:
    """Vertices of a regular polygon (or a star when ``inner`` radius is given)."""
    points = []
    steps = 2 * n if inner else n
    for k in range(steps):
        radius = (inner if (inner and k % 2) else 1.0) * r
        a = rot + 2 * math.pi * k / steps
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def draw_shape(mask: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rot: float) -> None:
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
        mask.polygon(polygon(cx, cy, r, sides, rot), fill=255)
    elif shape == "star":
        mask.polygon(polygon(cx, cy, r, 5, rot, inner=0.45), fill=255)
    elif shape == "diamond":
        pts = polygon(cx, cy, r, 4, rot)
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


def background(rng: np.random.Generator, size: int) -> tuple[Image.Image, np.ndarray]:
    """A ``size`` x ``size`` RGB noisy two-colour gradient with 0-2 distractor strokes, and the
    mean colour of the noisy gradient (``(3,)`` float, before clipping and strokes)."""
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, size)[None, :, None]
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * t + np.sin(angle) * t.transpose(1, 0, 2)) / 1.5 + 0.5
    pixels = (c0 * (1 - ramp) + c1 * ramp)
    pixels += rng.normal(0, 8, (size, size, 3))
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(0, 3)):  # distractor strokes
        x0, y0, x1, y1 = rng.uniform(0, size, 4)
        draw.line((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=int(rng.integers(1, 3)))
    return img, pixels.mean(axis=(0, 1))


def fill_colour(rng: np.random.Generator, mean_bg: np.ndarray) -> tuple[int, int, int]:
    """A random RGB colour far enough (L1 distance >= 150) from ``mean_bg`` to stand out on it."""
    fill = rng.integers(0, 256, 3)
    while np.abs(fill - mean_bg).sum() < 150:  # keep the shape visible against the background
        fill = rng.integers(0, 256, 3)
    return tuple(int(v) for v in fill)


def shape_mask(shape: str, size: int, cx: float, cy: float, r: float, rot: float) -> Image.Image:
    """A ``size`` x ``size`` ``L`` mask of ``shape`` (255 inside) centred at ``(cx, cy)`` pixels,
    circumradius ``r`` pixels, rotated by ``rot`` radians."""
    mask = Image.new("L", (size, size), 0)
    draw_shape(ImageDraw.Draw(mask), shape, cx, cy, r, rot)
    return mask
