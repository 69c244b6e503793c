"""The synthetic geotagged set: the layout the real reader takes, determinism, population-weighted
locations, scenes smooth in location, city landmarks, the marker, and the default config's cell counts."""
import numpy as np
import pytest
from PIL import Image

from mnet_vision.config import compose
from mnet_vision.data.geotagged import read_geotagged_csv
from mnet_vision.data.synthetic import MARKER
from mnet_vision.data.synthetic_geo import (NUM_LANDMARKS, RURAL_SHARE, SceneFields, landmark_glyph,
                                            make_synthetic_geotagged, offset_km, render_location, sample_locations,
                                            split_locations, world_cities)
from mnet_vision.geo.cells import build_partitions
from mnet_vision.geo.distances import EARTH_RADIUS_KM, great_circle_km, to_unit_vectors

SPLITS = {"train": 40, "val": 10, "test": 10}
SIZE = 32


def _make(root, **kw):
    return make_synthetic_geotagged(root, **{"splits": SPLITS, "image_size": SIZE, "seed": 3, **kw})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return _make(tmp_path_factory.mktemp("geo") / "set")


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), np.float64)


def _mad(a, b):
    return np.abs(a.astype(np.float64) - b).mean()


def test_layout_is_read_by_the_geotagged_reader(root):
    assert sorted(p.name for p in root.iterdir()) == sorted([MARKER, *SPLITS, *(f"{s}.csv" for s in SPLITS)])
    for split, n in SPLITS.items():
        assert (root / f"{split}.csv").read_text().startswith("path,lat,lon\n")
        photos = read_geotagged_csv(root / f"{split}.csv")
        assert photos.paths == [f"{split}/{i:06d}.png" for i in range(n)]
        assert len(list((root / split).iterdir())) == n
        for path in photos.paths:
            with Image.open(root / path) as image:
                assert image.mode == "RGB" and image.size == (SIZE, SIZE)
    row = (root / "train.csv").read_text().splitlines()[1].split(",")
    assert all(len(value.split(".")[1]) == 6 for value in row[1:])  # 6 decimals


def test_same_arguments_same_bytes_other_seed_differs(root, tmp_path):
    again = _make(tmp_path / "again")
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((root / f).read_bytes() == (again / f).read_bytes() for f in files)
    other = _make(tmp_path / "other", seed=4)
    assert (other / "train.csv").read_text() != (root / "train.csv").read_text()
    assert (other / "train/000000.png").read_bytes() != (root / "train/000000.png").read_bytes()
    assert (root / "val.csv").read_text() != (root / "test.csv").read_text()  # splits draw their own streams


def test_photo_depends_on_its_split_and_index_only(root, tmp_path):
    """A smaller set, its splits in another order, holds the same first photos."""
    small = _make(tmp_path / "small", splits={"test": 3, "train": 5})
    for split, n in (("train", 5), ("test", 3)):
        lines = (root / f"{split}.csv").read_text().splitlines()[: n + 1]
        assert (small / f"{split}.csv").read_text().splitlines() == lines
        assert all((small / f"{split}/{i:06d}.png").read_bytes() == (root / f"{split}/{i:06d}.png").read_bytes()
                   for i in range(n))


def test_other_parameters_into_the_same_root_are_an_error(root):
    assert _make(root) == root  # the finished set is found and left alone
    with pytest.raises(ValueError, match="holds a synthetic set made with"):
        _make(root, landmark_rate=0.5)
    with pytest.raises(ValueError, match="landmark_rate"):
        _make(root.parent / "bad", landmark_rate=1.5)


def test_offsets_are_great_circle_distances():
    lat = np.array([0.0, 48.86, -33.9, 64.1, 78.2, 10.0])
    lon = np.array([0.0, 2.35, 151.2, -21.9, 15.6, 179.99])
    north, east = np.array([1.0, -25.0, 300.0, 0.0, 150.0, 0.0]), np.array([0.0, 10.0, -200.0, 120.0, 150.0, 5.0])
    to_lat, to_lon = offset_km(lat, lon, north, east)
    np.testing.assert_allclose(great_circle_km(lat, lon, to_lat, to_lon), np.hypot(north, east), rtol=1e-6)
    assert to_lat[0] > 0 and to_lon[3] > lon[3] and to_lon[5] < -179  # north, east, across the antimeridian
    np.testing.assert_allclose(offset_km(lat, lon, 0.0, 0.0), (lat, lon), atol=1e-9)


def test_locations_follow_population():
    world = world_cities()
    places = sample_locations(5000, np.random.default_rng(0))
    assert (np.abs(places.lat) <= 90).all() and (places.lon >= -180).all() and (places.lon < 180).all()
    assert (np.round(places.lat, 6) == places.lat).all() and (np.round(places.lon, 6) == places.lon).all()
    rural = places.city < 0
    assert abs(rural.mean() - RURAL_SHARE) < 0.015
    # the 100 most populous cities are 0.3 % of the list; around a fifth of the photos lie within 30 km of one
    top = world.landmarks[:100]
    near_top = great_circle_km(places.lat[:, None], places.lon[:, None], world.lat[top], world.lon[top]).min(1) <= 30
    assert near_top.mean() > 30 * len(top) / len(world)
    # nearly every photo lies within 50 km of some city; rural ones mostly far from their anchor town
    points, cities = to_unit_vectors(places.lat, places.lon), to_unit_vectors(world.lat, world.lon)
    nearest = np.concatenate([(points[i:i + 1000] @ cities.T).max(1) for i in range(0, len(points), 1000)])
    assert (np.arccos(np.clip(nearest, -1, 1)) * EARTH_RADIUS_KM <= 50).mean() > 0.95
    km = great_circle_km(places.lat[~rural], places.lon[~rural], world.lat[places.city[~rural]],
                         world.lon[places.city[~rural]])
    assert np.median(km) < 10 and np.quantile(km, 0.99) < 80  # within each city's jitter (<= 25 km a side)


def test_first_locations_do_not_depend_on_how_many():
    many, few = (sample_locations(n, np.random.default_rng(5)) for n in (300, 7))
    assert all((a[:7] == b).all() for a, b in zip(many, few))


def test_scenes_change_smoothly_with_location():
    fields, places = SceneFields(0), sample_locations(12, np.random.default_rng(1))

    def moved(north_km, east_km):
        ends = zip(places.lat, places.lon, *offset_km(places.lat, places.lon, north_km, east_km))
        return np.mean([_mad(render_location(a, b, fields, SIZE), render_location(c, d, fields, SIZE))
                        for a, b, c, d in ends])

    street, continent = moved(1.0, 0.0), moved(0.0, 3000.0)
    assert street < 1.5 and continent > 15 * street
    assert street < moved(25.0, 0.0) < moved(300.0, 0.0) < continent  # the further, the more it changes
    # the nuisance changes a photo, the same photo every time with the same rng
    lat, lon = float(places.lat[0]), float(places.lon[0])
    first, second = (render_location(lat, lon, fields, SIZE, rng=np.random.default_rng(k)) for k in (1, 2))
    assert _mad(first, second) > 2
    assert (render_location(lat, lon, fields, SIZE, rng=np.random.default_rng(1)) == first).all()
    assert not (SceneFields(1)(lat, lon) == fields(lat, lon)).all()


def test_landmarks_belong_to_their_city():
    world, fields = world_cities(), SceneFields(0)
    big = world.landmarks[:8]
    plain = [render_location(world.lat[c], world.lon[c], fields, SIZE) for c in big]
    shown = [render_location(world.lat[c], world.lon[c], fields, SIZE, landmark_glyph(int(world.geonameid[c])))
             for c in big]
    changed = [_mad(a, b) for a, b in zip(plain, shown)]
    assert min(changed) > 0.5 and np.mean(changed) > 3
    glyphs = [landmark_glyph(int(world.geonameid[c])) for c in big]
    assert all(g.shape == (64, 64, 4) and g[..., 3].max() == 1 for g in glyphs)
    assert min(np.abs(glyphs[i] - glyphs[j]).mean() for i in range(8) for j in range(i)) > 5  # distinct
    assert (landmark_glyph(int(world.geonameid[big[0]])) == glyphs[0]).all()
    assert not np.array_equal(landmark_glyph(int(world.geonameid[big[0]]), seed=1), glyphs[0])


def test_landmark_share_is_the_rate_in_landmark_cities():
    world = world_cities()
    places = sample_locations(20000, np.random.default_rng(2), landmark_rate=0.25)
    in_landmark_city = (places.city >= 0) & (world.landmark_of[np.maximum(places.city, 0)] >= 0)
    assert abs(places.landmark[in_landmark_city].mean() - 0.25) < 0.02  # ~6,900 photos: 4 standard deviations
    assert not places.landmark[~in_landmark_city].any()
    assert (world.landmark_of >= 0).sum() == NUM_LANDMARKS
    assert not sample_locations(2000, np.random.default_rng(2), landmark_rate=0.0).landmark.any()


def test_default_config_cell_counts_match_its_partitions():
    """data=synthetic_geo pins num_cells (the model is built before the data exists): they must be
    the counts its cells give, computed here from the training locations alone."""
    data = compose(["task=planet"]).data
    places = split_locations("train", data.images_per_split.train, data.generator_seed, data.landmark_rate)
    built = build_partitions(places.lat, places.lon, list(data.cells.t_max), data.cells.t_min,
                             data.cells.min_level, data.cells.max_level, progress=False)
    counts = [len(p) for p, _ in built]
    assert counts == list(data.num_cells), f"conf/data/synthetic_geo.yaml: set num_cells: {counts}"
