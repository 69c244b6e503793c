"""Maps and the distance curve: PNGs are written at the expected size, and cells across the
antimeridian or around a pole are drawn as polygons that do not smear across the map."""
import numpy as np
import pytest
from matplotlib.image import imread
from PIL import Image

from mnet_vision.geo.cells import build_partition
from mnet_vision.geo.s2 import cell_vertices, leaf_cell_ids, parent_ids, tokens_to_ids
from mnet_vision.viz.geo import (
    _zoom_extent,
    cell_polygons,
    city_points,
    save_distance_curve,
    save_geolocation_map,
    save_partition_map,
)


def cell_of(lat: float, lon: float, level: int) -> np.ndarray:
    return parent_ids(leaf_cell_ids(lat, lon), level)


@pytest.fixture(scope="module")
def partition():
    rng = np.random.default_rng(0)
    hubs = np.array([(48.86, 2.35), (35.68, 139.65), (-17.7, 178.4), (-17.7, -179.6), (64.8, -147.7)])
    which = rng.integers(0, len(hubs), 3000)
    lat = hubs[which, 0] + rng.normal(0, 0.5, 3000)
    lon = (hubs[which, 1] + rng.normal(0, 0.5, 3000) + 180) % 360 - 180
    return build_partition(lat, lon, t_max=200, t_min=5, progress=False)[0]


def png_shape(path) -> tuple[int, int]:
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4) and image.std() > 0.01  # not blank
    return image.shape[:2]


def test_city_backdrop():
    lat, lon = city_points()
    assert len(lat) > 20_000 and (np.abs(lat) <= 90).all() and (np.abs(lon) <= 180).all()
    assert city_points() is city_points()  # read once


def test_antimeridian_cells_are_drawn_on_both_sides():
    # level 0 face 3 spans lon 135..225 across the antimeridian; cells of level >= 1 touch 180 from one side
    # (their corner there may come back as -180 or +180: either way no polygon may span the map)
    ids = np.concatenate([tokens_to_ids(["7"]), cell_of(-17.7, 179.99, 6), cell_of(-17.7, -179.99, 6),
                          cell_of(10.0, 179.5, 3), cell_of(-60.0, -179.0, 4)])
    polygons = cell_polygons(cell_vertices(ids))
    for k, ring in polygons:
        assert np.ptp(ring[:, 0]) < 180, (k, ring[:, 0].min(), ring[:, 0].max())
        assert -180 - 180 < ring[:, 0].min() and ring[:, 0].max() < 180 + 180
    face = [ring for k, ring in polygons if k == 0]
    assert len(face) == 2  # a copy for each side of the map
    visible = sorted((max(r[:, 0].min(), -180), min(r[:, 0].max(), 180)) for r in face)
    assert visible[0][0] == -180 and visible[1][1] == 180
    assert visible[0][1] == pytest.approx(-135, abs=0.5) and visible[1][0] == pytest.approx(135, abs=0.5)
    for k in (1, 2):  # the level-6 cells beside the antimeridian stay small
        rings = [ring for j, ring in polygons if j == k]
        assert all(np.ptp(ring[:, 0]) < 2 for ring in rings)


def test_polar_cells():
    north = tokens_to_ids(["5"])  # face 2 holds the north pole inside it
    rings = [ring for _, ring in cell_polygons(cell_vertices(north))]
    for ring in rings:  # closed along the pole, all the way round (twice: the map shows a 360 degree window of each)
        assert ring[:, 1].max() == 90 and np.ptp(ring[:, 0]) == pytest.approx(360)
    assert min(r[:, 0].min() for r in rings) <= -180 and max(r[:, 0].max() for r in rings) >= 180
    corner = cell_of(89.0, 10.0, 3)  # a cell with the pole as a corner spans 90 degrees of longitude
    rings = [ring for _, ring in cell_polygons(cell_vertices(corner))]
    assert all(np.ptp(ring[:, 0]) <= 90 + 1e-9 for ring in rings)
    assert max(ring[:, 1].max() for ring in rings) == pytest.approx(90)


def test_edges_follow_great_circles():
    vertices = cell_vertices(tokens_to_ids(["47"]))  # level 2: long edges
    [(_, ring)] = cell_polygons(vertices, points_per_edge=16)
    assert len(ring) == 64
    [(_, corners)] = cell_polygons(vertices, points_per_edge=1)
    assert len(corners) == 4


def test_zoom_extent():
    assert _zoom_extent(np.array([-10.0, 50.0]), np.array([0.0, 80.0])) is None  # too spread: world map
    lon0, lon1, lat0, lat1 = _zoom_extent(np.array([0.0, 10.0]), np.array([40.0, 50.0]))
    assert lon0 < 0 and lon1 > 10 and lat0 < 40 and lat1 > 50
    lon0, lon1, _, _ = _zoom_extent(np.array([178.0, -178.0]), np.array([-18.0, -17.0]))
    assert lon0 < -180 < lon1 or lon0 < 180 < lon1  # across the antimeridian, not around the world
    assert 4 < lon1 - lon0 < 40


def test_partition_map_png(tmp_path, partition):
    path = save_partition_map(partition, tmp_path / "maps" / "cells.png", title="five hubs")
    height, width = png_shape(path)
    assert 1100 <= width <= 1500 and 500 <= height <= 800 and width > height


@pytest.mark.parametrize("truth, zoom", [((48.5, 2.8), True), ((-17.5, 179.9), True), (None, False)])
def test_geolocation_map_png(tmp_path, partition, truth, zoom):
    probabilities = np.full(len(partition), 1e-4)
    best = partition.assign([truth[0] if truth else 48.86], [truth[1] if truth else 2.35])[0]
    probabilities[best] = 0.6
    probabilities /= probabilities.sum()
    path = save_geolocation_map(partition, probabilities, tmp_path / "answer.png",
                                predicted=(partition.lat_mean[best], partition.lon_mean[best]), truth=truth,
                                top_k=5, title="photo.jpg", zoom=zoom)
    height, width = png_shape(path)
    assert 900 <= width <= 1500 and 500 <= height <= 800


def test_geolocation_map_checks(tmp_path, partition):
    with pytest.raises(ValueError, match="expected .* probabilities"):
        save_geolocation_map(partition, np.ones(3), tmp_path / "x.png", predicted=(0, 0))
    with pytest.raises(ValueError, match="finite and non-negative"):
        save_geolocation_map(partition, -np.ones(len(partition)), tmp_path / "x.png", predicted=(0, 0))
    with pytest.raises(ValueError, match="truth"):
        save_geolocation_map(partition, np.ones(len(partition)), tmp_path / "x.png", predicted=(0, 0), truth=(95, 0))


def test_distance_curve_png(tmp_path):
    path = save_distance_curve({"model": np.array([0.5, 30.0, 400.0]), "baseline": np.array([3000.0] * 3)},
                               tmp_path / "curve.png", "3 photos")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
