"""Points on the Earth: coordinate checks, great-circle distance and means on the unit sphere.

Conventions (implementations disagree on each; these are the project's, see docs/design.md): degrees in
``(lat, lon)`` order, a spherical Earth of mean radius R = 6371.0088 km (IUGG), haversine distance.
"""
from __future__ import annotations

import numpy as np
import torch

EARTH_RADIUS_KM = 6371.0088


def invalid_coordinates(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the latitudes outside [-90, 90] and the longitudes outside [-180, 180] (NaN and
    infinities included)."""
    return ~(np.abs(lat) <= 90), ~(np.abs(lon) <= 180)  # NaN fails the comparison too


def check_coordinates(lat, lon, what: str = "coordinates") -> tuple[np.ndarray, np.ndarray]:
    """``lat``/``lon`` as float64 arrays of one shape, or ``ValueError`` naming ``what`` and the
    first offending index: NaN or infinite values, latitudes outside [-90, 90], longitudes outside
    [-180, 180]."""
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    if lat.shape != lon.shape:
        raise ValueError(f"{what}: {lat.shape[0] if lat.ndim else 1} latitudes but {lon.shape[0] if lon.ndim else 1} "
                         f"longitudes")
    for name, values, bound, mask in zip(("latitude", "longitude"), (lat, lon), (90.0, 180.0),
                                         invalid_coordinates(lat, lon)):
        bad = np.flatnonzero(mask)
        if len(bad):
            raise ValueError(f"{what}: {len(bad)} {name}(s) not a number in [-{bound:g}, {bound:g}], first at index "
                             f"{bad[0]}: {values.flat[bad[0]]}")
    return lat, lon


def _haversine_km(xp, lat1, lon1, lat2, lon2):
    """The haversine formula with the array namespace ``xp`` (numpy or torch): one formula for both."""
    p1, p2 = xp.deg2rad(lat1), xp.deg2rad(lat2)
    h = xp.sin((p2 - p1) / 2) ** 2 + xp.cos(p1) * xp.cos(p2) * xp.sin(xp.deg2rad(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * xp.arcsin(xp.sqrt(xp.clip(h, 0.0, 1.0)))


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points in degrees (broadcasting), by the haversine
    formula on a sphere of radius :data:`EARTH_RADIUS_KM` (accurate at short range, where the
    spherical law of cosines loses digits, and across the antimeridian). Inputs are checked."""
    lat1, lon1 = check_coordinates(lat1, lon1, "first points")
    lat2, lon2 = check_coordinates(lat2, lon2, "second points")
    return _haversine_km(np, lat1, lon1, lat2, lon2)


def great_circle_km_torch(lat1: torch.Tensor, lon1: torch.Tensor, lat2: torch.Tensor, lon2: torch.Tensor
                          ) -> torch.Tensor:
    """:func:`great_circle_km` on tensors (any device, broadcasting), unchecked: for losses and
    metrics inside a training step, where the coordinates were checked when the data was read."""
    return _haversine_km(torch, lat1, lon1, lat2, lon2)


def to_unit_vectors(lat, lon) -> np.ndarray:
    """``(..., 3)`` unit vectors on the sphere of points in degrees."""
    phi, lam = np.radians(np.asarray(lat, np.float64)), np.radians(np.asarray(lon, np.float64))
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def to_degrees(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` in degrees of ``(..., 3)`` vectors (any non-zero length)."""
    x, y, z = np.moveaxis(np.asarray(vectors, np.float64), -1, 0)
    return np.degrees(np.arctan2(z, np.hypot(x, y))), np.degrees(np.arctan2(y, x))
