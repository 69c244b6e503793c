"""GeolocationTask: summed per-partition cross-entropy, distance-smoothed targets, km metrics."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mnet_vision.checkpoints import CheckpointMismatchError
from mnet_vision.config import compose
from mnet_vision.geo.cells import GeoCellPartition
from mnet_vision.geo.distances import EARTH_RADIUS_KM
from mnet_vision.tasks.geolocation import soft_cell_targets
from mnet_vision.training import build_task, evaluate, task_from_checkpoint
from tests.helpers.configs import tiny_geo_overrides


def _north_km(km: float) -> float:
    return math.degrees(km / EARTH_RADIUS_KM)


def test_soft_targets_decay_with_distance():
    # cells due north of the photo at 0, 50 and 200 km; tau 50 km
    points = torch.tensor([[0.0, 10.0], [_north_km(50), 10.0], [_north_km(200), 10.0]], dtype=torch.float64)
    targets = soft_cell_targets(points, torch.tensor([0.0]), torch.tensor([10.0]), tau_km=50.0)
    expected = np.exp(-np.array([0.0, 50.0, 200.0]) / 50.0)
    np.testing.assert_allclose(targets[0].numpy(), expected / expected.sum(), rtol=1e-5)
    # a photo between cells: the nearer one weighs more, both well above the far one
    between = soft_cell_targets(points, torch.tensor([_north_km(30)]), torch.tensor([10.0]), tau_km=50.0)[0]
    assert between[1] > between[0] > between[2] and float(between.sum()) == pytest.approx(1.0)
    # a tiny tau is one-hot on the nearest cell
    sharp = soft_cell_targets(points, torch.tensor([_north_km(180)]), torch.tensor([10.0]), tau_km=0.01)[0]
    assert sharp.tolist() == [0.0, 0.0, 1.0]


def test_tiny_run_reports_table_11(geo_run):
    run = Path(geo_run["run_dir"])
    for t in (1, 25, 200, 750, 2500):
        assert 0 <= geo_run[f"test/acc@{t}km"] <= 1 and 0 <= geo_run[f"test/baseline/acc@{t}km"] <= 1
    assert geo_run["test/acc@1km"] <= geo_run["test/acc@2500km"]
    assert geo_run["test/median_km"] > 0 and {"test/top1/0", "test/top1/1"} <= set(geo_run)
    table = (run / "geolocation_test.md").read_text().splitlines()
    assert table[0] == "| scale | most populous cell | cells_3_80 alone | cells_3_25 alone | hierarchy |"
    assert table[2].startswith("| continent 2500 km |") and table[-1].startswith("| median error |")
    assert f"{100 * geo_run['test/acc@2500km']:.1f} % |" in table[2]
    assert (run / "geolocation_test.png").stat().st_size > 10_000
    print(f"tiny run: test median {geo_run['test/median_km']:.0f} km, "
          f"baseline {geo_run['test/baseline/median_km']:.0f} km")


def test_checkpoint_holds_its_cells_and_checks_the_files(geo_run, tmp_path):
    data = Path(geo_run["run_dir"]).parent / "data"
    _, task, _ = task_from_checkpoint(geo_run["best_checkpoint"])
    partitions = [GeoCellPartition.read_csv(p) for p in sorted((data / "cells").glob("*.csv"), reverse=True)]
    head = task.model.head
    assert head.has_partitions and [len(p) for p in partitions] == head.num_cells
    assert (head.cell_ids(-1) == partitions[-1].cell_ids).all()
    # evaluating with other partitions than the checkpoint's is an error naming the files
    counts = [len(p) for p in partitions]
    coarse, fine = (str(data / "cells" / name) for name in ("cells_3_80.csv", "cells_3_25.csv"))
    with pytest.raises(CheckpointMismatchError,
                       match=rf"best-epoch\d+.ckpt was trained on partitions of "
                             rf"\[{counts[0]}, {counts[1]}\] cells, but this model is built for "
                             rf"data.num_cells=\[{counts[0]}, {counts[0]}\]"):
        evaluate(geo_run["best_checkpoint"], "test", {"data": {"partitions": [coarse, coarse],
                                                               "num_cells": [counts[0]] * 2}})
    with pytest.raises(ValueError, match=rf"{coarse} has {counts[0]} cells but data.num_cells gives {counts[1]}"):
        evaluate(geo_run["best_checkpoint"], "test", {"data": {"partitions": [coarse, coarse]}})


@pytest.mark.parametrize("tau", [None, 75.0])
def test_loss_sums_the_partitions_terms(geo_run, tau):
    """One-hot: cross-entropy per partition with -1 ignored; soft: against the distance targets."""
    data = Path(geo_run["run_dir"]).parent / "data"
    counts = [len(GeoCellPartition.read_csv(p)) for p in sorted((data / "cells").glob("*.csv"), reverse=True)]
    extra = [] if tau is None else [f"task.module.label_smoothing_km={tau}"]
    task = build_task(compose(tiny_geo_overrides(data, counts, *extra)))
    task.head.set_partitions([GeoCellPartition.read_csv(data / "cells" / f"cells_3_{t}.csv") for t in (80, 25)])
    logits = [torch.randn(3, n) for n in counts]
    batch = {"cells": torch.tensor([[0, 1], [1, -1], [2, 0]]),
             "lat": torch.tensor([48.8, 35.7, -33.9], dtype=torch.float64),
             "lon": torch.tensor([2.3, 139.7, 151.2], dtype=torch.float64)}
    task.log = lambda *args, **kwargs: None  # no trainer to log to
    loss = task.loss({"logits": logits}, batch, "train")
    if tau is None:
        expected = (torch.nn.functional.cross_entropy(logits[0], batch["cells"][:, 0])
                    + torch.nn.functional.cross_entropy(logits[1][[0, 2]], batch["cells"][[0, 2], 1]))
    else:
        expected = sum(-(soft_cell_targets(task.head.cell_points(p), batch["lat"], batch["lon"], tau)
                         * part.log_softmax(-1)).sum(-1).mean() for p, part in enumerate(logits))
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
