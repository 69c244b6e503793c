"""tools/geolocate.py and tools/eval.py on a PlaNet checkpoint, as a user runs them."""
import json
from pathlib import Path

import numpy as np
import pytest

from mnet_vision.inference.geolocate import geolocate_files
from tests.helpers.cli import run_tool


def test_geolocate_a_csv_scores_it_and_draws_maps(geo_run, tmp_path):
    data = Path(geo_run["run_dir"]).parent / "data"
    out = run_tool("geolocate.py", f"ckpt={geo_run['best_checkpoint']}", f"input={data / 'test.csv'}",
                   f"out={tmp_path}", "top_k=3")
    assert "40 photos located" in out.stdout and "| continent 2500 km |" in out.stdout
    entries = json.loads((tmp_path / "geolocation.json").read_text())
    assert len(entries) == 40
    for entry in entries:
        assert len(entry["cells"]) == 3
        probabilities = [c["probability"] for c in entry["cells"]]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
        assert (entry["lat"], entry["lon"]) == (entry["cells"][0]["lat"], entry["cells"][0]["lon"])
        assert entry["error_km"] >= 0 and {"true_lat", "true_lon"} <= set(entry)
    # the test split's accuracy is the same whether the tool or the trainer scored it
    median = sorted(e["error_km"] for e in entries)
    assert (median[19] + median[20]) / 2 == pytest.approx(geo_run["test/median_km"], rel=1e-6)


def test_geolocate_one_image_with_a_map(geo_run, tmp_path):
    image = Path(geo_run["run_dir"]).parent / "data" / "test" / "000000.png"
    summary = geolocate_files(geo_run["best_checkpoint"], image, tmp_path, top_k=2, draw=True)
    assert summary["photos"] == 1 and "accuracy" not in summary
    assert (tmp_path / "000000.png.png").stat().st_size > 10_000


def test_geolocate_refuses_to_draw_among_the_photos(geo_run, tmp_path):
    image = Path(geo_run["run_dir"]).parent / "data" / "test" / "000000.png"
    before = image.read_bytes()
    with pytest.raises(ValueError, match="could overwrite them"):
        geolocate_files(geo_run["best_checkpoint"], image, image.parent, draw=True)
    assert image.read_bytes() == before


def test_geolocate_checks_cell_files_against_the_checkpoint(geo_run, tmp_path):
    data = Path(geo_run["run_dir"]).parent / "data"
    image = data / "test" / "000000.png"
    coarse = str(data / "cells" / "cells_3_80.csv")
    with pytest.raises(ValueError, match=rf"{coarse} has \d+ cells but the model's classifier 1 has"):
        geolocate_files(geo_run["best_checkpoint"], image, tmp_path, partitions=[coarse, coarse])


def test_five_crops_score_the_same_in_the_trainer_and_the_tool(geo_run, tmp_path):
    """TIB's test protocol (each cell's best probability over FiveCrop's crops) through
    tools/eval.py's path and through the geolocate tool: the same photos, the same km."""
    from mnet_vision.training import evaluate

    data = Path(geo_run["run_dir"]).parent / "data"
    metrics = evaluate(geo_run["best_checkpoint"], overrides={"data": {"test_crops": 5}}, out_dir=tmp_path / "eval")
    summary = geolocate_files(geo_run["best_checkpoint"], data / "test.csv", tmp_path / "located", crops=5)
    assert metrics["test/count"] == summary["photos"] == 40
    assert summary["accuracy"]["median_km"] == pytest.approx(metrics["test/median_km"], rel=1e-6)
    assert summary["accuracy"]["acc@750km"] == pytest.approx(metrics["test/acc@750km"])


def test_eval_prints_table_11(geo_run):
    out = run_tool("eval.py", f"ckpt={geo_run['best_checkpoint']}")
    assert "geolocation_test.md:" in out.stdout
    assert "| scale | most populous cell | cells_3_80 alone | cells_3_25 alone | hierarchy |" in out.stdout


def test_planet_under_two_process_ddp_scores_every_test_photo_once(tmp_path):
    """41 test photos over two processes: the padded sampler hands one photo to both, and the km
    errors count it once. The baseline guesses one point for every photo, so its accuracy is known
    from the test CSV and the coarsest partition alone."""
    from mnet_vision.data.geotagged import read_geotagged_csv
    from mnet_vision.geo.cells import GeoCellPartition
    from mnet_vision.metrics.geo import geolocation_accuracy
    from tests.helpers.configs import tiny_geo_cell_counts, tiny_geo_overrides

    odd = "data.images_per_split.test=41"
    data, run_dir = tmp_path / "data", tmp_path / "ddp"
    counts = tiny_geo_cell_counts(data, odd)
    run_tool("train.py", *tiny_geo_overrides(data, counts, odd, "trainer=ddp", "trainer.accelerator=cpu",
                                             "trainer.devices=2", "trainer.sync_batchnorm=false"),
             f"hydra.run.dir={run_dir}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/count"] == 41 and metrics["test/baseline/count"] == 41
    for p in (0, 1):  # top-1 hits over 41 photos, not 42
        assert metrics[f"test/top1/{p}"] * 41 == pytest.approx(round(metrics[f"test/top1/{p}"] * 41), abs=1e-4)
    photos = read_geotagged_csv(data / "test.csv")
    coarsest = GeoCellPartition.read_csv(data / "cells" / "cells_3_80.csv")
    fullest = int(np.argmax(coarsest.counts))
    expected = geolocation_accuracy(np.full(41, coarsest.lat_mean[fullest]), np.full(41, coarsest.lon_mean[fullest]),
                                    photos.lat, photos.lon)
    for name in ("median_km", "mean_km", "acc@2500km", "acc@750km", "acc@200km"):
        assert metrics[f"test/baseline/{name}"] == pytest.approx(expected[name], rel=1e-5), name
    assert (run_dir / "geolocation_test.md").is_file()
