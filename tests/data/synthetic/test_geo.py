"""The synthetic geotagged set: population-weighted locations, scenes smooth in location, city
landmarks, a deterministic layout the real reader takes, and the default config's cell counts."""
import numpy as np
import pytest
from PIL import Image

from mnet_vision.config import compose
from mnet_vision.data.geotagged import read_geotagged_csv
from mnet_vision.data.synthetic.geo import (SceneFields, make_geo_dataset, render, sample_locations,
                                            split_locations)
from mnet_vision.geo.cities import world_cities
from mnet_vision.geo.cells import build_partitions
from mnet_vision.geo.distances import great_circle_km

SPLITS = {"train": 12, "val": 4, "test": 4}


def test_layout_read_by_the_geotagged_reader_and_deterministic(tmp_path):
    a = make_geo_dataset(tmp_path / "a", SPLITS, image_size=24, seed=3)
    b = make_geo_dataset(tmp_path / "b", SPLITS, image_size=24, seed=3)
    c = make_geo_dataset(tmp_path / "c", SPLITS, image_size=24, seed=4)
    for split, n in SPLITS.items():
        photos = read_geotagged_csv(a / f"{split}.csv")
        assert len(photos.paths) == n and photos.paths[0] == f"{split}/000000.png"
        with Image.open(a / photos.paths[0]) as image:
            assert image.size == (24, 24) and image.mode == "RGB"
        assert (a / f"{split}.csv").read_text() == (b / f"{split}.csv").read_text()
        assert (a / photos.paths[-1]).read_bytes() == (b / photos.paths[-1]).read_bytes()
    assert (a / "train.csv").read_text() != (c / "train.csv").read_text()
    with pytest.raises(ValueError, match="holds a synthetic set made with"):
        make_geo_dataset(tmp_path / "a", SPLITS, image_size=32, seed=3)


def test_locations_follow_population():
    places = sample_locations(5000, np.random.default_rng(0))
    cities = world_cities()
    assert np.isfinite(places["lat"]).all() and (np.abs(places["lat"]) <= 90).all()
    assert (np.abs(places["lon"]) <= 180).all()
    # the 1 % most populous cities hold about a third of the population: far above 1 % of the photos
    top = set(np.argsort(-cities["population"])[: len(cities["population"]) // 100].tolist())
    share = np.isin(places["city"], list(top)).mean()
    assert 0.2 < share < 0.5
    # photos sit near their city, the rural 5 % further out
    km = great_circle_km(places["lat"], places["lon"], cities["lat"][places["city"]], cities["lon"][places["city"]])
    assert np.median(km[~places["rural"]]) < 25 and np.median(km[places["rural"]]) > 100
    assert 0.03 < places["rural"].mean() < 0.07


def test_scenes_change_smoothly_with_location():
    fields = SceneFields(0)

    def difference(lat1, lon1, lat2, lon2):
        a, b = (render(fields.values([lat], [lon])[0], 48) for lat, lon in ((lat1, lon1), (lat2, lon2)))
        return np.abs(a.astype(float) - b).mean()

    near = np.mean([difference(10 + 5 * k, 7 * k, 10 + 5 * k + 0.009, 7 * k) for k in range(8)])  # 1 km
    far = np.mean([difference(10 + 5 * k, 7 * k, -17 + 5 * k, 7 * k + 4) for k in range(8)])  # ~3000 km
    assert near < 2.0 and far > 10 * near
    # the nuisance changes a photo but less than moving across a continent does
    rng = np.random.default_rng(1)
    values = fields.values([40.0], [-3.7])[0]
    noisy = [render(values, 48, rng).astype(float) for _ in range(2)]
    assert 0 < np.abs(noisy[0] - noisy[1]).mean() < far


def test_landmarks_are_the_citys_own():
    values = SceneFields(0).values([48.86], [2.35])[0]
    ids = world_cities()["geonameid"]
    plain = render(values, 48).astype(float)
    paris, other = (render(values, 48, landmark=int(i)).astype(float) for i in ids[:2])
    assert np.abs(paris - plain).mean() > 1.0 and np.abs(paris - other).mean() > 0.5
    assert (render(values, 48, landmark=int(ids[0])) == paris).all()  # the same landmark every time


def test_default_config_cell_counts_match_its_partitions():
    """data=synthetic_geo pins num_cells (the model is built before the data exists): they must be
    the counts its cells give, computed here from the training locations alone."""
    data = compose(["task=planet"]).data
    places = split_locations("train", data.images_per_split.train, data.generator_seed)
    built = build_partitions(places["lat"], places["lon"], list(data.cells.t_max), data.cells.t_min,
                             data.cells.min_level, data.cells.max_level, progress=False)
    assert [len(p) for p, _ in built] == list(data.num_cells)
