"""Distances on city pairs whose distances are published and on constructed cases; unit-sphere means."""
import math

import numpy as np
import pytest

from mnet_vision.geo.distances import (
    EARTH_RADIUS_KM,
    check_coordinates,
    great_circle_km,
    great_circle_km_torch,
    to_degrees,
    to_unit_vectors,
)

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
    # across the antimeridian
    assert float(great_circle_km(0, 179.5, 0, -179.5)) == pytest.approx(quarter / 90, rel=1e-9)
    assert float(great_circle_km(89.9, 0, 89.9, 180)) == pytest.approx(0.2 * quarter / 90, rel=1e-9)  # over the pole
    # 1 metre apart: no digits lost at short range
    assert (float(great_circle_km(10, 20, 10 + math.degrees(0.001 / EARTH_RADIUS_KM), 20))
            == pytest.approx(0.001, rel=1e-6))


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


def test_unit_vectors_round_trip_and_average_across_the_antimeridian():
    lat, lon = np.array([-17.0, -18.0, -17.5, 45.0, 90.0]), np.array([179.0, -179.5, 179.9, -120.0, 0.0])
    vectors = to_unit_vectors(lat, lon)
    assert np.linalg.norm(vectors, axis=-1) == pytest.approx(np.ones(5))
    back_lat, back_lon = to_degrees(vectors)
    assert back_lat == pytest.approx(lat) and back_lon[:4] == pytest.approx(lon[:4])
    # Fiji-like points on both sides of +-180: the mean is near 180, not near 0 as averaged degrees give
    mean_lat, mean_lon = to_degrees(vectors[:3].mean(axis=0))
    assert mean_lat == pytest.approx(-17.5, abs=0.01) and abs(abs(float(mean_lon)) - 179.8) < 0.1


def test_torch_distances_match_numpy():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    lat1, lat2 = rng.uniform(-90, 90, (2, 500))
    lon1, lon2 = rng.uniform(-180, 180, (2, 500))
    expected = great_circle_km(lat1, lon1, lat2, lon2)
    got = great_circle_km_torch(*(torch.from_numpy(a) for a in (lat1, lon1, lat2, lon2)))
    assert got.dtype == torch.float64 and np.allclose(got.numpy(), expected, rtol=1e-12, atol=1e-9)
    # broadcasting (N, 1) photos against (1, C) cells, as soft targets use it
    grid = great_circle_km_torch(torch.tensor([[0.0], [10.0]]), torch.tensor([[0.0], [0.0]]),
                                 torch.tensor([[0.0, 10.0]]), torch.tensor([[0.0, 0.0]]))
    assert grid.shape == (2, 2) and float(grid[0, 0]) == 0.0 and float(grid[0, 1]) == pytest.approx(float(grid[1, 0]))
