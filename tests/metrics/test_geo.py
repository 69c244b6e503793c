"""Geolocation metrics on city pairs whose distances are published and on constructed cases."""
import math

import numpy as np
import pytest

from mnet_vision.metrics.geo import (EARTH_RADIUS_KM, accuracy_table, check_coordinates, geolocation_accuracy,
                                     great_circle_km)

CITIES = {"london": (51.5074, -0.1278), "paris": (48.8566, 2.3522), "new_york": (40.7128, -74.0060),
          "los_angeles": (34.0522, -118.2437), "sydney": (-33.8688, 151.2093), "auckland": (-36.8485, 174.7633)}


def _between(a: str, b: str) -> float:
    return float(great_circle_km(*CITIES[a], *CITIES[b]))


def test_city_pairs():
    # haversine on the mean-radius sphere; the WGS-84 geodesic differs by < 0.5 %
    assert _between("london", "paris") == pytest.approx(343.6, abs=0.5)
    assert _between("new_york", "los_angeles") == pytest.approx(3936, abs=2)
    assert _between("sydney", "auckland") == pytest.approx(2156, abs=3)
    assert _between("paris", "london") == _between("london", "paris")
    assert _between("paris", "paris") == 0.0


def test_constructed_distances():
    quarter = math.pi * EARTH_RADIUS_KM / 2
    assert float(great_circle_km(0, 0, 90, 0)) == pytest.approx(quarter, rel=1e-12)
    assert float(great_circle_km(0, 0, 0, 180)) == pytest.approx(2 * quarter, rel=1e-12)  # antipodes
    assert float(great_circle_km(0, 179.5, 0, -179.5)) == pytest.approx(quarter / 90, rel=1e-9)  # across the antimeridian
    assert float(great_circle_km(89.9, 0, 89.9, 180)) == pytest.approx(0.2 * quarter / 90, rel=1e-9)  # over the pole
    # 1 metre apart: no digits lost at short range
    assert float(great_circle_km(10, 20, 10 + math.degrees(0.001 / EARTH_RADIUS_KM), 20)) == pytest.approx(0.001, rel=1e-6)


def test_accuracy_at_thresholds_inclusive():
    # predictions due north of the truth at chosen distances (km), 1 m inside or outside each threshold
    km = np.array([0.0, 0.999, 1.001, 24.999, 25.001, 199.999, 749.999, 750.001, 2499.999, 5000.0])
    true_lat, true_lon = np.full(10, -10.0), np.full(10, 30.0)
    pred_lat = true_lat + np.degrees(km / EARTH_RADIUS_KM)
    result = geolocation_accuracy(pred_lat, true_lon, true_lat, true_lon)
    assert result == pytest.approx({"acc@1km": 0.2, "acc@25km": 0.4, "acc@200km": 0.6, "acc@750km": 0.7,
                                    "acc@2500km": 0.9, "median_km": (25.001 + 199.999) / 2,
                                    "mean_km": km.mean(), "count": 10.0}, rel=1e-6)
    # a distance equal to the threshold counts as within
    d = float(great_circle_km(0, 0, 0.2, 0.1))
    assert geolocation_accuracy([0.2], [0.1], [0], [0], thresholds_km=(d,))[f"acc@{d:g}km"] == 1.0


@pytest.mark.parametrize("lat, lon, message", [
    ([91.0], [0.0], r"latitude\(s\) not a number in \[-90, 90\], first at index 0: 91"),
    ([0.0, 10.0], [0.0, -180.5], r"longitude\(s\) not a number in \[-180, 180\], first at index 1: -180.5"),
    ([0.0, float("nan")], [0.0, 0.0], r"first at index 1: nan"),
    ([0.0, 1.0], [0.0], r"2 latitudes but 1 longitudes"),
])
def test_bad_coordinates_name_the_index(lat, lon, message):
    with pytest.raises(ValueError, match="predictions: .*" + message):
        check_coordinates(lat, lon, "predictions")


def test_distances_check_their_inputs():
    with pytest.raises(ValueError, match=r"second points: 1 latitude\(s\) not a number"):
        great_circle_km(0.0, 0.0, [10.0, -95.0], [0.0, 0.0])


def test_empty_input_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        geolocation_accuracy([], [], [], [])


def test_table_in_table_11_layout():
    model = {"acc@1km": 0.114, "acc@25km": 0.317, "acc@200km": 0.452, "acc@750km": 0.603, "acc@2500km": 0.793,
             "median_km": 612.4}
    table = accuracy_table({"MobileNet": model, "most populous cell": {**model, "median_km": float("nan")}})
    lines = table.splitlines()
    assert lines[2] == "| continent 2500 km | 79.3 % | 79.3 % |" and lines[6] == "| street 1 km | 11.4 % | 11.4 % |"
    assert lines[-1] == "| median error | 612 km | – |"
