"""A deterministic synthetic multi-attribute set, written in the CelebA layout, so the
multi-attribute classifier (the MobileNets paper's face-attribute task, Table 12) runs with no
downloads.

Each image is a background and 1-3 shapes. Its binary attributes (:data:`ATTRIBUTE_NAMES`) say
which shapes there are, how many, whether one is large, the colours and fill of the objects, where
the largest one is, what the background is like, and what happened to the whole picture (a frame,
blur, fading, a warm colour cast). The attributes are decided first and the image is drawn to
match, so every label is true by construction; none changes under a horizontal flip. Some are
independent, some correlated (a large object mostly comes alone, blurry images are mostly faded),
some rare (stars, blur). Like face attributes ("young", "big nose"), most are graded: a continuous
quantity (size, height, brightness, blur, contrast, tint, hue) held to a threshold, drawn across it,
so images near the threshold are hard to call and a larger or sharper-eyed model ranks them better;
that is what separates the widths and resolutions of Table 12. Image ``i`` of split number ``s``
comes from ``rng([seed, s, i])``; every pixel is a pure function of it.
"""
from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from mnet_vision.data.synthetic.drawing import shape_mask
from mnet_vision.data.synthetic.generate import generate_once

# The thresholds (see _plan; sizes are fractions of the side, blur in px at 64 px):
# large_object: the largest object's circumradius >= 0.25 (drawn from 0.15-0.33); red/blue_object: an
# object's fill hue within 10-12 degrees of red/blue (other fills come as close as 10-18 degrees);
# striped_object: an object filled with two-colour stripes; outlined: every object has a contour 1/32
# of the side wide; object_in_top_half: the largest object's centre above half the height;
# dark_background: HSV value < 0.4 (drawn from 0.04-0.95); textured_background: a checkerboard or
# blocky noise (else a smooth gradient); framed: a frame 0.05-0.065 of the side wide; blurry: a
# Gaussian blur of sigma >= 0.8 px (blurs of 0.3-0.8 px are not called blurry); low_contrast: luminance
# contrast scaled below 0.6 (scales of 0.6-0.9 are not); warm_tint: a colour cast of strength >= 0.5.
ATTRIBUTE_NAMES = ("has_circle", "has_square", "has_triangle", "has_star", "multiple_objects", "large_object",
                   "red_object", "blue_object", "striped_object", "outlined", "object_in_top_half",
                   "dark_background", "textured_background", "framed", "blurry", "low_contrast", "warm_tint")
DEFAULT_ATTRIBUTE_SPLITS = {"train": 6000, "val": 1000, "test": 1000}
SPLITS = ("train", "val", "test")  # CelebA's partitions 0, 1, 2, its images numbered in this order
# Bump when drawing changes, so a set made by an older generator is reported, never silently mixed.
GENERATOR_VERSION = 2
MIN_SIZE = 32  # px; the smallest objects (circumradius 0.08 of the side) are 2.5 px there
UNKNOWN_STREAM = 99  # rng([seed, 99, i]) draws the unknown labels: a stream apart from every image's

OBJECT_SHAPES = ("circle", "square", "triangle", "star")
SHAPE_P = (0.32, 0.33, 0.305, 0.045)  # per object; about 7 % of the images hold a star
COUNT_P = (0.55, 0.3, 0.15)  # of 1, 2, 3 objects
# Area of each shape of circumradius 1 (the star is drawing.py's, inner radius 0.45), to compare the
# sizes of different shapes: the object called the largest is the largest to the eye.
SHAPE_AREA = {"circle": math.pi, "square": 2.0, "triangle": 3 * math.sqrt(3) / 4,
              "star": 5 * 0.45 * math.sin(math.pi / 5)}
# Hue ranges (degrees) of object fills: red and blue, and near misses of each (orange and magenta
# beside red, cyan and violet beside blue) that are neither, then the rest.
HUES = {"red": ((-10.0, 10.0),), "blue": ((218.0, 242.0),), "near": ((20.0, 35.0), (325.0, 342.0), (195.0, 208.0),
                                                                   (254.0, 270.0)), "other": ((50.0, 170.0),)}
HUE_P = (0.2, 0.2, 0.2, 0.4)
MARGIN = 0.07  # fraction of the side between an object and the image edge: at least the widest frame


@dataclass(frozen=True)
class _Plan:
    """The discrete content of one image, decided before any drawing; its attributes follow from it."""

    shapes: tuple[str, ...]  # one per object, the first the largest
    hues: tuple[str, ...]  # a key of HUES per object
    striped: tuple[bool, ...]
    flags: dict[str, bool]  # the attributes of the whole image, by name
    graded: dict[str, float]  # the quantities the graded flags threshold: radius, height, value, blur, contrast, warmth

    def labels(self) -> np.ndarray:
        found = {**{f"has_{s}": s in self.shapes for s in OBJECT_SHAPES}, "multiple_objects": len(self.shapes) > 1,
                 "red_object": "red" in self.hues, "blue_object": "blue" in self.hues,
                 "striped_object": any(self.striped), **self.flags}
        return np.array([found[name] for name in ATTRIBUTE_NAMES], np.int8)


def _choose(rng: np.random.Generator, p: tuple[float, ...], n: int) -> np.ndarray:
    """``n`` indices drawn with probabilities ``p`` (what ``rng.choice`` does, without its slow checks)."""
    return np.minimum(np.searchsorted(np.cumsum(p), rng.uniform(size=n), side="right"), len(p) - 1)


def _plan(rng: np.random.Generator) -> _Plan:
    n = int(_choose(rng, COUNT_P, 1)[0]) + 1
    u = rng.uniform(size=9)
    radius = rng.uniform(0.15, 0.33 if n == 1 else 0.27)  # a large object leaves little room for others
    low = max(radius + MARGIN, 0.16)
    blur = rng.uniform(0.3, 1.5) if u[6] < 0.15 else 0.0
    graded = {"radius": radius, "height": rng.uniform(low, 1 - low), "value": rng.uniform(0.04, 0.95), "blur": blur,
              # a bad camera blurs and fades together
              "contrast": rng.uniform(0.35, 0.9) if u[7] < (0.7 if blur >= 0.8 else 0.25) else 1.0,
              "warmth": rng.uniform(0, 1) if u[8] < 0.45 else 0.0}
    flags = {"large_object": radius >= 0.25, "outlined": u[1] < 0.35, "object_in_top_half": graded["height"] < 0.5,
             "dark_background": graded["value"] < 0.4, "textured_background": u[4] < 0.4, "framed": u[5] < 0.2,
             "blurry": blur >= 0.8, "low_contrast": graded["contrast"] < 0.6, "warm_tint": graded["warmth"] >= 0.5}
    return _Plan(shapes=tuple(OBJECT_SHAPES[k] for k in _choose(rng, SHAPE_P, n)),
                 hues=tuple(list(HUES)[k] for k in _choose(rng, HUE_P, n)),
                 striped=tuple(bool(s) for s in rng.uniform(size=n) < 0.1),
                 flags={k: bool(v) for k, v in flags.items()}, graded=graded)


def draw_attribute_labels(rng: np.random.Generator) -> np.ndarray:
    """The ``(K,)`` int8 0/1 attribute vector (in :data:`ATTRIBUTE_NAMES` order) of the image that
    :func:`draw_attribute_image` draws from an rng in the same state, without drawing it."""
    return _plan(rng).labels()


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    """RGB (0-255 floats) of ``hue`` in degrees, saturation and value in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(hue / 360 % 1, saturation, value)) * 255


def _background(plan: _Plan, rng: np.random.Generator, size: int) -> np.ndarray:
    """A ``(size, size, 3)`` float image: a gradient between two greyish colours (saturation <= 0.25, so
    no background passes for a red or blue object) of HSV values within 0.04 of the plan's, smooth or
    with a texture of luminance (a checkerboard or blocky noise)."""
    flags, value = plan.flags, plan.graded["value"]
    c0, c1 = (_hsv(rng.uniform(0, 360), rng.uniform(0, 0.25), np.clip(value + rng.uniform(-0.04, 0.04), 0, 1))
              for _ in range(2))
    t = np.linspace(-0.5, 0.5, size)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = ((math.cos(angle) * t[None, :] + math.sin(angle) * t[:, None]) / math.sqrt(2) + 0.5)[..., None]
    image = (c0 + (c1 - c0) * ramp).astype(np.float32)
    if not flags["textured_background"]:
        return image + 2 * rng.standard_normal((size, size, 1), np.float32)
    if rng.uniform() < 0.5:
        cell = rng.uniform(0.08, 0.15) * size
        y, x = (np.arange(size) + rng.uniform(0, cell, (2, 1))) // cell  # cell numbers, at a random phase
        sign = ((y[:, None] + x[None, :]) % 2 * 2 - 1).astype(np.float32)[..., None]
        return image + sign * rng.uniform(15, 25)
    block = max(1, size // 32)  # noise in blocks of a fixed share of the side, so blur does not wipe it out
    # clipped at 2 sigma: darker noise on a light tinted background would otherwise look saturated
    noise = rng.uniform(14, 22) * np.clip(rng.standard_normal((-(-size // block),) * 2 + (1,), np.float32), -2, 2)
    return image + noise.repeat(block, 0).repeat(block, 1)[:size, :size]


def _place(plan: _Plan, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """Centre x, y and circumradius of each object, in fractions of the side: inside the MARGIN, apart
    from each other, the first one at the plan's radius and height."""
    large, r0 = plan.flags["large_object"], plan.graded["radius"]
    lo = max(r0 + MARGIN, 0.16)
    placed = [(rng.uniform(lo, 1 - lo), plan.graded["height"], r0)]
    for shape in plan.shapes[1:]:
        # at most 60 % of the first object's area, so that one is the largest; next to a large one, the
        # corners are all the room there is
        r = min(rng.uniform(0.08, 0.11 if large else 0.14),
                r0 * math.sqrt(0.6 * SHAPE_AREA[plan.shapes[0]] / SHAPE_AREA[shape]))
        for attempt in range(1, 101):
            lo = max(r + MARGIN, 0.16)
            x, y = rng.uniform(lo, 1 - lo, 2)
            if all(math.hypot(x - px, y - py) >= r + pr + 0.02 for px, py, pr in placed):
                break
            if attempt % 25 == 0:  # crowded: try a smaller one
                r *= 0.85
        placed.append((x, y, r))
    return placed


def _dilate(mask: np.ndarray, width: int) -> np.ndarray:
    """A square ``mask`` grown by ``width`` pixels in every direction (max over the shifts within a
    disc, so a circle's contour stays round)."""
    n, padded = len(mask), np.pad(mask, width)
    return np.max([padded[width + dy:width + dy + n, width + dx:width + dx + n]
                   for dy in range(-width, width + 1) for dx in range(-width, width + 1)
                   if dy * dy + dx * dx <= width * width + 1], axis=0)


def _render(plan: _Plan, rng: np.random.Generator, size: int) -> np.ndarray:
    flags = plan.flags
    dark = flags["dark_background"]
    graded = plan.graded
    image = Image.fromarray(np.clip(_background(plan, rng, size), 0, 255).astype(np.uint8))
    # the contour contrasts with the background: dark on a light one, light on a dark one
    outline = (int(rng.integers(215, 245) if dark else rng.integers(10, 40)),) * 3
    contour = max(1, round(size / 32))  # px: 2 at 64 px
    ys, xs = np.indices((size, size))
    for shape, hue, striped, (cx, cy, r) in zip(plan.shapes, plan.hues, plan.striped, _place(plan, rng)):
        # drawn at twice the size and averaged down: smooth edges, so a 5 px circle still looks round
        big = 2 * size
        mask = shape_mask(shape, big, cx * big, cy * big, r * big, rng.uniform(0, 2 * math.pi))
        mask = mask.resize((size, size), Image.BOX)
        if flags["outlined"]:
            image.paste(outline, mask=Image.fromarray(_dilate(np.asarray(mask), contour)))
        ranges = HUES[hue]
        fill = _hsv(rng.uniform(*ranges[int(rng.integers(len(ranges)))]), rng.uniform(0.7, 1), rng.uniform(0.6, 1))
        if striped:
            # the second stripe colour contrasts with the background too, so the silhouette stays whole
            other = fill * 0.35 + 255 * 0.65 if dark else fill * 0.3
            angle, period = rng.uniform(0, math.pi), rng.uniform(0.08, 0.12) * size
            on = ((xs * math.cos(angle) + ys * math.sin(angle)) / period % 1 < 0.5)[..., None]
            image.paste(Image.fromarray(np.where(on, fill, other).astype(np.uint8)), mask=mask)
        else:
            image.paste(tuple(int(v) for v in fill), mask=mask)
    if flags["framed"]:  # greyish, light on a dark background and dark on a light one
        colour = _hsv(rng.uniform(0, 360), rng.uniform(0, 0.25), rng.uniform(*((0.75, 0.95) if dark else (0.05, 0.25))))
        width = max(2, round(rng.uniform(0.05, 0.065) * size))  # 3-4 px at 64 px
        ImageDraw.Draw(image).rectangle((0, 0, size - 1, size - 1), outline=tuple(int(v) for v in colour), width=width)
    if graded["blur"]:
        image = image.filter(ImageFilter.GaussianBlur(graded["blur"] * size / 64))
    x = np.asarray(image, np.float32)
    if graded["contrast"] < 1:
        # luminance contrast scaled, colour differences kept: a faded image whose blue objects stay
        # blue under a warm cast too
        luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x += ((luma.mean() - luma) * (1 - graded["contrast"]))[..., None]
    if graded["warmth"]:  # at the threshold 0.5: red x1.08, blue x0.89
        w = graded["warmth"]
        x = x * np.array([1 + 0.16 * w, 1 + 0.04 * w, 1 - 0.22 * w], np.float32) + np.array([12 * w, 4 * w, 0], np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def draw_attribute_image(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One ``(size, size, 3)`` uint8 image and its ``(K,)`` int8 attribute vector of 0/1 (in
    :data:`ATTRIBUTE_NAMES` order), both drawn from ``rng``: first the attributes, then an image that has them.

    The first (largest) object has a circumradius of 0.15-0.33 of the side (large from 0.25) and
    decides ``object_in_top_half``; the others 0.08-0.14 (down to 0.06 in 0.1 % of crowded cases), at
    most 60 % of its area; they do not touch.
    """
    plan = _plan(rng)
    return _render(plan, rng, size), plan.labels()


def make_attributes_dataset(root: str | Path, splits: Mapping[str, int] = DEFAULT_ATTRIBUTE_SPLITS,
                            image_size: int = 64, unknown_rate: float = 0.05, seed: int = 0) -> Path:
    """Write the synthetic attribute set in CelebA's layout unless it is there, and return ``root``.

    ``splits`` maps ``train``, ``val`` and ``test`` (in this order) to image counts. Layout:
    ``root/img_align_celeba/000001.png ...`` numbered across the splits in that order;
    ``root/list_attr_celeba.txt``: the image count, the attribute names (space-separated, with
    CelebA's trailing space), then per image its file name and one ``f"{v:2d}"`` value per
    attribute: 1 present, -1 absent, 0 unknown; ``root/list_eval_partition.txt``: ``<file> <0|1|2>``
    for train/val/test. Unknown labels (our extension of CelebA: not every label of web data is
    known) occur only in train, each label independently with probability ``unknown_rate``, drawn
    from their own rng so the images are the same whatever ``unknown_rate`` is.
    """
    if tuple(splits) != SPLITS:
        raise ValueError(f"splits must name {SPLITS} in this order, got {tuple(splits)}")
    if any(n < 0 for n in splits.values()):
        raise ValueError(f"split sizes must be >= 0, got {dict(splits)}")
    if not 0 <= unknown_rate < 1:
        raise ValueError(f"unknown_rate must be in [0, 1), got {unknown_rate}")
    if image_size < MIN_SIZE:
        raise ValueError(f"image_size must be >= {MIN_SIZE}, got {image_size}")
    params = {"kind": "attributes", "version": GENERATOR_VERSION, "splits": dict(splits), "image_size": image_size,
              "unknown_rate": unknown_rate, "seed": seed}

    def write(tmp: Path) -> int:
        (tmp / "img_align_celeba").mkdir()
        jobs = [(s, i) for s, split in enumerate(SPLITS) for i in range(splits[split])]
        rows, partition = [], []
        for number, (s, i) in enumerate(tqdm(jobs, desc=f"generating {Path(root).name}", unit="img", leave=False), 1):
            image, labels = draw_attribute_image(np.random.default_rng([seed, s, i]), image_size)
            name = f"{number:06d}.png"
            # zlib level 3: twice as fast as the default 6, files 6 % larger
            Image.fromarray(image).save(tmp / "img_align_celeba" / name, compress_level=3)
            values = labels.astype(int) * 2 - 1
            if s == 0:
                values[np.random.default_rng([seed, UNKNOWN_STREAM, i]).uniform(size=len(values)) < unknown_rate] = 0
            rows.append(" ".join([name, *(f"{v:2d}" for v in values)]))
            partition.append(f"{name} {s}")
        lines = [str(len(jobs)), " ".join(ATTRIBUTE_NAMES) + " ", *rows]
        (tmp / "list_attr_celeba.txt").write_text("".join(f"{line}\n" for line in lines))
        (tmp / "list_eval_partition.txt").write_text("".join(f"{line}\n" for line in partition))
        return len(jobs)

    return generate_once(root, params, write)
