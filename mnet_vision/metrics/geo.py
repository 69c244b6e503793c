"""Geolocation metrics: great-circle distance and the share of photos located within 1 / 25 /
200 / 750 / 2500 km of the truth (the MobileNets paper's Table 11, PlaNet's Im2GPS protocol).

Distances are :func:`mnet_vision.geo.distances.great_circle_km` (haversine, R = 6371.0088 km,
degrees in ``(lat, lon)`` order); thresholds are inclusive (``distance <= threshold``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from mnet_vision.geo.distances import great_circle_km, great_circle_km_torch
from mnet_vision.markdown import markdown_table
from mnet_vision.metrics.photo_ids import PhotoValues

#: Table 11's scales, finest first: threshold in km -> name
SCALES = {1: "street", 25: "city", 200: "region", 750: "country", 2500: "continent"}
THRESHOLDS_KM = tuple(SCALES)


def geolocation_accuracy(pred_lat, pred_lon, true_lat, true_lon,
                         thresholds_km: Sequence[float] = THRESHOLDS_KM) -> dict[str, float]:
    """``acc@<t>km``: the share of predictions within ``t`` km of the truth (inclusive), for each
    threshold; ``median_km`` and ``mean_km`` of the errors; ``count``. Needs at least one photo."""
    return distance_accuracy(great_circle_km(pred_lat, pred_lon, true_lat, true_lon), thresholds_km)


def distance_accuracy(distances_km, thresholds_km: Sequence[float] = THRESHOLDS_KM) -> dict[str, float]:
    """:func:`geolocation_accuracy` of errors already measured in km."""
    distances = np.asarray(distances_km, np.float64).ravel()
    if distances.size == 0:
        raise ValueError("geolocation accuracy needs at least one prediction")
    result = {f"acc@{t:g}km": float(np.mean(distances <= t)) for t in thresholds_km}
    result.update(median_km=float(np.median(distances)), mean_km=float(np.mean(distances)), count=float(distances.size))
    return result


class GeolocationErrors(PhotoValues):
    """Great-circle errors (km) of one or more predictors, gathered over batches (and processes):
    ``update(name, pred_lat, pred_lon, true_lat, true_lon, photo_ids)``; ``compute() -> {name: (N,)
    km}`` for the predictors updated, in photo id order, each photo once (see
    :mod:`~mnet_vision.metrics.photo_ids`); :func:`distance_accuracy` summarises one."""

    def update(self, name: str, pred_lat: torch.Tensor, pred_lon: torch.Tensor, true_lat: torch.Tensor,
               true_lon: torch.Tensor, photo_ids: torch.Tensor) -> None:
        km = great_circle_km_torch(pred_lat.double(), pred_lon.double(), true_lat.double(), true_lon.double())
        super().update(name, km, photo_ids)


def accuracy_table(columns: Mapping[str, Mapping[str, float]], thresholds_km: Sequence[float] = THRESHOLDS_KM) -> str:
    """A Markdown table in Table 11's layout, coarsest scale first: one row per threshold, one
    column per model (``columns``: name -> :func:`geolocation_accuracy` result), values in %."""
    names = list(columns)
    rows = [(f"{SCALES[t]} {t:g} km" if t in SCALES else f"{t:g} km",
             *(f"{100 * columns[n][f'acc@{t:g}km']:.1f} %" for n in names))
            for t in sorted(thresholds_km, reverse=True)]
    rows.append(("median error", *(_km(columns[n]["median_km"]) for n in names)))
    return markdown_table(rows, ["scale", *names])


def _km(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f} km"
