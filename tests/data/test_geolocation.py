"""Geolocation data: photos labelled with their cell in every partition; training leaves out the
photos of dropped cells, counted; the partitions are checked against the configured cell counts."""
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mnet_vision.config import compose
from mnet_vision.data.geolocation import GeotaggedDataModule
from mnet_vision.data.geotagged import read_geotagged_csv
from mnet_vision.geo.cells import GeoCellPartition
from tests.helpers.configs import TINY_GEO_IMAGES, tiny_geo_overrides


@pytest.fixture(scope="module")
def geo_data(geo_run):
    root = Path(geo_run["run_dir"]).parent / "data"
    counts = [len(GeoCellPartition.read_csv(p)) for p in sorted((root / "cells").glob("*.csv"), reverse=True)]
    data = instantiate(compose(tiny_geo_overrides(root, counts)).data)
    data.setup("fit")
    return data


def test_labels_are_each_photos_cells(geo_data):
    photos = read_geotagged_csv(geo_data.root / "test.csv")
    assert len(geo_data.test_set) == TINY_GEO_IMAGES["test"] == len(photos.paths)  # evaluation keeps every photo
    for p, partition in enumerate(geo_data.partitions):
        assert (geo_data.test_set.cells[:, p] == partition.assign(photos.lat, photos.lon)).all()
    sample = geo_data.test_set[0]
    assert sample["image"].shape == (3, 32, 32) and sample["cells"].shape == (2,)
    assert (sample["lat"], sample["lon"]) == (photos.lat[0], photos.lon[0])


def test_training_leaves_out_photos_of_dropped_cells(geo_data):
    photos = read_geotagged_csv(geo_data.root / "train.csv")
    outside = np.zeros(len(photos.paths), bool)
    for partition in geo_data.partitions:
        outside |= partition.assign(photos.lat, photos.lon) < 0
    assert geo_data.excluded_train_photos == int(outside.sum()) > 0  # t_min 3 drops some sparse cells
    assert len(geo_data.train_set) == len(photos.paths) - int(outside.sum())
    assert (geo_data.train_set.cells >= 0).all()
    # the finer partition's kept photos are the coarse one's minus those of its own dropped cells
    coarse, fine = geo_data.partitions
    assert coarse.counts.sum() >= fine.counts.sum()


def test_cell_counts_other_than_the_files_are_errors(geo_data):
    root, counts = geo_data.root, [len(p) for p in geo_data.partitions]
    data = instantiate(compose(tiny_geo_overrides(root, [counts[0], counts[1] + 1])).data)
    with pytest.raises(ValueError, match=rf"cells_3_25.csv has {counts[1]} cells but data.num_cells gives {counts[1] + 1}"):
        data.setup("fit")
    data = instantiate(compose(tiny_geo_overrides(root, counts[:1])).data)
    with pytest.raises(ValueError, match=r"lists 2 file\(s\) but data.num_cells 1 count"):
        data.setup("fit")


def test_missing_partition_files_say_how_to_build_them(tmp_path, geo_data):
    data = instantiate(compose(["task=planet", "data=geotagged", f"data.root={geo_data.root}",
                                f"data.partitions=[{tmp_path}/cells.csv]", "data.num_cells=[5]"]).data)
    with pytest.raises(FileNotFoundError, match=rf"partition file {tmp_path}/cells.csv does not exist; build it with "
                                                r"tools/make_cells.py"):
        data.setup("fit")


def test_five_test_crops_for_test_photos_only(geo_data):
    root = geo_data.root
    data = instantiate(compose(tiny_geo_overrides(root, geo_data.num_cells, "data.test_crops=5")).data)
    data.setup("test")
    assert data.test_set[0]["image"].shape == (5, 3, 32, 32)
    assert data.val_set[0]["image"].shape == (3, 32, 32)  # validation picks checkpoints on the central crop, as TIB
    assert torch.equal(data.test_set[0]["image"][4], geo_data.test_set[0]["image"])  # the fifth is the central crop
    with pytest.raises(ValueError, match="data.test_crops must be 1 .* or 5 .*, got 3"):
        GeotaggedDataModule(str(root), None, geo_data.num_cells, test_crops=3)
