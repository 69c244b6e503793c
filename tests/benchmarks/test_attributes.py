"""The attribute benchmark's table: Table 12's students (and the teacher-class peer), trained and run."""
import math

import pytest

from mnet_vision.benchmarks.attributes import attribute_table, compare_attribute_models
from mnet_vision.benchmarks.classification import mobilenet_v1_classifier
from mnet_vision.complexity import count_complexity

PHASES = ("train", "infer", "folded")


def test_tiny_attribute_table_without_peer():
    rows = compare_attribute_models(batch=2, settings=((0.25, 32), (0.25, 64)), num_attributes=5, repeats=1,
                                    warmup=0, peer=None)
    assert [(r["model"], r["input"]) for r in rows] == [("0.25 MobileNet-32", 32), ("0.25 MobileNet-64", 64)]
    for r in rows:
        expected = count_complexity(mobilenet_v1_classifier(0.25, 5), r["input"])
        assert (r["mult_adds"], r["params"]) == (expected.mult_adds, expected.params)
        assert all(r[f"{phase}_images_per_s"] > 0 for phase in PHASES)
        assert all(math.isnan(r[f"{phase}_vs_peer"]) for phase in PHASES)
    table = attribute_table(rows, 2)
    assert table.startswith("| model | input | Mult-Adds M |") and table.count("\n") == 3
    assert all(r["model"] in table for r in rows) and "| – / – / – |" in table


def test_tiny_attribute_table_with_peer_and_no_training():
    pytest.importorskip("timm")
    rows = compare_attribute_models(batch=2, settings=((0.25, 32),), num_attributes=40, repeats=1, warmup=0,
                                    train=False, peer="resnet18", peer_size=32)
    assert [r["model"] for r in rows] == ["0.25 MobileNet-32", "timm resnet18-32 (teacher class)"]
    student, peer = rows
    assert student["mult_adds"] == count_complexity(mobilenet_v1_classifier(0.25, 40), 32).mult_adds
    assert peer["mult_adds"] > student["mult_adds"] and peer["params"] > student["params"]
    assert math.isnan(student["train_images_per_s"]) and math.isnan(student["train_vs_peer"])
    assert student["infer_vs_peer"] > 0 and student["folded_vs_peer"] > 0
    assert peer["infer_vs_peer"] == peer["folded_vs_peer"] == 1.0
    table = attribute_table(rows, 2)
    assert table.count("\n") == 3 and "| – | " in table
