"""The shared benchmark timing: interleaved rounds, medians, the optional timm peer, table numbers."""
import math

import pytest

from mnet_vision.benchmarks.timing import median_seconds, median_seconds_of, number_or_dash, rotating_rounds, timm_model


def test_rotating_rounds_call_everyone_once_per_round_in_turn():
    calls = list(rotating_rounds(["a", "b", "c"], warmup=1, repeats=2))
    assert [n for n, _ in calls] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [m for _, m in calls] == [False] * 3 + [True] * 6


def test_median_seconds_times_every_call_after_the_warm_up():
    seen = []
    medians = median_seconds({"a": (seen.append, 1), "b": (seen.append, 2)}, warmup=1, repeats=3)
    assert seen == [1, 2, 2, 1, 1, 2, 2, 1] and set(medians) == {"a", "b"}
    assert all(t >= 0 for t in medians.values())


def test_median_seconds_of_returns_the_last_result():
    results = iter(range(3))
    seconds, last = median_seconds_of(lambda: next(results), repeats=3)
    assert last == 2 and seconds >= 0


def test_number_or_dash():
    assert number_or_dash(math.nan) == "–" and number_or_dash(3.14159) == "3.1"
    assert number_or_dash(2.0, "{:.2f}x") == "2.00x"


def test_timm_model_in_eval_mode():
    pytest.importorskip("timm")
    model = timm_model("resnet18", num_classes=3)
    assert not model.training and model.get_classifier().out_features == 3
