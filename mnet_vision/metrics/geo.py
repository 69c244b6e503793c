"""Geolocation metrics: great-circle distance and the share of photos located within 1 / 25 /
200 / 750 / 2500 km of the truth (the MobileNets paper's Table 11, PlaNet's Im2GPS protocol).

Conventions (implementations disagree on each; these are the project's, see DESIGN.md): degrees in
``(lat, lon)`` order, a spherical Earth of mean radius R = 6371.0088 km (IUGG), haversine distance,
thresholds inclusive (``distance <= threshold``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

EARTH_RADIUS_KM = 6371.0088
#: Table 11's scales, finest first: threshold in km -> name
SCALES = {1: "street", 25: "city", 200: "region", 750: "country", 2500: "continent"}
THRESHOLDS_KM = tuple(SCALES)


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


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km between points in degrees (broadcasting), by the haversine
    formula on a sphere of radius :data:`EARTH_RADIUS_KM` (accurate at short range, where the
    spherical law of cosines loses digits, and across the antimeridian)."""
    lat1, lon1 = check_coordinates(lat1, lon1, "first points")
    lat2, lon2 = check_coordinates(lat2, lon2, "second points")
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def geolocation_accuracy(pred_lat, pred_lon, true_lat, true_lon,
                         thresholds_km: Sequence[float] = THRESHOLDS_KM) -> dict[str, float]:
    """``acc@<t>km``: the share of predictions within ``t`` km of the truth (inclusive), for each
    threshold; ``median_km`` and ``mean_km`` of the errors; ``count``. Needs at least one photo."""
    distances = great_circle_km(pred_lat, pred_lon, true_lat, true_lon).ravel()
    if distances.size == 0:
        raise ValueError("geolocation_accuracy needs at least one prediction")
    result = {f"acc@{t:g}km": float(np.mean(distances <= t)) for t in thresholds_km}
    result.update(median_km=float(np.median(distances)), mean_km=float(np.mean(distances)), count=float(distances.size))
    return result


def accuracy_table(columns: Mapping[str, Mapping[str, float]], thresholds_km: Sequence[float] = THRESHOLDS_KM) -> str:
    """A Markdown table in Table 11's layout, coarsest scale first: one row per threshold, one
    column per model (``columns``: name -> :func:`geolocation_accuracy` result), values in %."""
    names = list(columns)
    rows = ["| scale | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for t in sorted(thresholds_km, reverse=True):
        label = f"{SCALES[t]} {t:g} km" if t in SCALES else f"{t:g} km"
        rows.append(f"| {label} | " + " | ".join(f"{100 * columns[n][f'acc@{t:g}km']:.1f} %" for n in names) + " |")
    rows.append("| median error | " + " | ".join(_km(columns[n]["median_km"]) for n in names) + " |")
    return "\n".join(rows)


def _km(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f} km"
