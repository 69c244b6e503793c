"""Geolocation accuracy at Table 11's thresholds on constructed cases, and its table."""
import numpy as np
import pytest
import torch

from mnet_vision.geo.distances import EARTH_RADIUS_KM, great_circle_km
from mnet_vision.metrics.geo import GeolocationErrors, accuracy_table, distance_accuracy, geolocation_accuracy


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


def test_errors_gathered_over_batches_per_predictor():
    metric = GeolocationErrors(["model", "baseline", "unused"])
    truth = torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])
    # 1 km and 100 km due north, then 10 km: accuracies known by construction
    north = [torch.tensor([np.degrees(km / EARTH_RADIUS_KM) for km in kms]) for kms in ((1.0, 100.0), (10.0, 10.0))]
    metric.update("model", north[0], torch.zeros(2), *truth, torch.tensor([0, 1]))
    metric.update("model", north[1], torch.zeros(2), *truth, torch.tensor([2, 3]))
    metric.update("baseline", torch.full((2,), 45.0), torch.zeros(2), *truth, torch.tensor([0, 1]))
    errors = metric.compute()
    assert set(errors) == {"model", "baseline"}  # a predictor never updated has no errors, not zeros
    assert errors["model"] == pytest.approx([1.0, 100.0, 10.0, 10.0], rel=1e-9)
    summary = distance_accuracy(errors["model"])
    assert summary["acc@1km"] == 0.25 and summary["acc@25km"] == 0.75 and summary["acc@200km"] == 1.0
    assert summary["median_km"] == pytest.approx(10.0) and summary["count"] == 4
    assert distance_accuracy(errors["baseline"])["acc@2500km"] == 0.0


def test_errors_count_a_photo_scored_twice_once():
    """A padded DistributedSampler gives the last photos to two processes: each counts once, and
    the errors come back in photo order whatever order the batches came in."""
    metric = GeolocationErrors(["model"])
    km = torch.tensor([np.degrees(k / EARTH_RADIUS_KM) for k in (30.0, 10.0, 20.0, 10.0)])
    metric.update("model", km[:2], torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor([2, 0]))
    metric.update("model", km[2:], torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor([1, 0]))
    assert metric.compute()["model"] == pytest.approx([10.0, 20.0, 30.0], rel=1e-9)
    with pytest.raises(ValueError, match="one id per photo"):
        metric.update("model", km[:2], torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.tensor([0]))
