"""Attribute metrics on cases whose answers are known by construction."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mnet_vision.metrics.attributes import (
    AttributeScores,
    CategoricalScores,
    RegressionErrors,
    attribute_report,
    categorical_report,
    mean_absolute_error,
    outputs_table,
    regression_report,
)


def test_ap_by_hand_and_unknown_labels_left_out():
    scores = torch.tensor([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7], [0.6, 0.6], [0.5, 0.95]])
    # attribute 0: ranking 1,0,1,0 -> AP = (1/1 + 2/3) / 2; its last sample is unknown
    # attribute 1: the top-scored sample is unknown; the rest rank 1,0,0,1 -> AP = (1 + 2/4) / 2
    labels = torch.tensor([[1, 1], [0, 0], [1, 0], [0, 1], [-1, -1]])
    report = attribute_report(scores, labels)
    assert report.ap[0] == pytest.approx((1 + 2 / 3) / 2)
    assert report.ap[1] == pytest.approx((1 + 2 / 4) / 2)
    assert report.mean_ap == pytest.approx(((1 + 2 / 3) / 2 + 0.75) / 2)
    assert report.unknown.tolist() == [1, 1]
    assert report.positives.tolist() == [2, 2] and report.negatives.tolist() == [2, 2]
    # every known score is >= 0.5: all predicted present, so accuracy = positive share, balanced = 0.5
    assert report.accuracy.tolist() == pytest.approx([0.5, 0.5])
    assert report.balanced_accuracy.tolist() == pytest.approx([0.5, 0.5])


def test_ap_ties_count_as_one_threshold_as_scikit_learn():
    # tied scores 0.5 (one positive, one negative), then 0.2 (positive): thresholds 0.5 -> P 1/2,
    # R 1/2; 0.2 -> P 2/3, R 1. AP = 0.5 * 1/2 + 0.5 * 2/3 (sklearn's average_precision_score)
    report = attribute_report(torch.tensor([[0.5], [0.5], [0.2]]), torch.tensor([[1], [0], [1]]))
    assert float(report.ap[0]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_perfect_and_reversed_rankings():
    labels = torch.tensor([[1, 1], [1, 1], [0, 0], [0, 0]])
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]])
    report = attribute_report(scores, labels)
    assert report.ap[0] == pytest.approx(1.0)
    assert report.ap[1] == pytest.approx((1 / 3 + 2 / 4) / 2)  # positives ranked 3rd and 4th
    assert report.accuracy.tolist() == pytest.approx([1.0, 0.0])
    assert report.balanced_accuracy.tolist() == pytest.approx([1.0, 0.0])


def test_attribute_without_positives_has_no_ap_and_is_left_out_of_the_mean():
    labels = torch.tensor([[1, 0, -1], [0, 0, -1]])
    report = attribute_report(torch.tensor([[0.9, 0.3, 0.5], [0.1, 0.6, 0.5]]), labels)
    assert report.ap[0] == pytest.approx(1.0)
    assert math.isnan(report.ap[1]) and math.isnan(report.ap[2])
    assert report.undefined_ap == 2 and report.mean_ap == pytest.approx(1.0)
    assert report.accuracy[1] == pytest.approx(0.5) and math.isnan(report.accuracy[2])
    assert math.isnan(report.balanced_accuracy[1])  # one class only
    assert report.means()["attributes_without_ap"] == 2


def test_bad_labels_and_shapes_are_errors():
    with pytest.raises(ValueError, match=r"found \[2\]"):
        attribute_report(torch.zeros(2, 1), torch.tensor([[1], [2]]))
    with pytest.raises(ValueError, match="must both be"):
        attribute_report(torch.zeros(2, 2), torch.zeros(2, 3))


def test_random_scores_give_the_positive_rate_on_average():
    gen = torch.Generator().manual_seed(0)
    labels = (torch.rand(4000, 3, generator=gen) < torch.tensor([0.5, 0.2, 0.05])).long()
    report = attribute_report(torch.rand(4000, 3, generator=gen), labels)
    assert report.ap.tolist() == pytest.approx([0.5, 0.2, 0.05], abs=0.03)


def test_attribute_scores_metric_accumulates_batches():
    metric = AttributeScores()
    logits = torch.tensor([[3.0, -3.0], [-3.0, 3.0], [2.0, 2.0], [-2.0, -2.0]])
    labels = torch.tensor([[1, 0], [0, 1], [1, -1], [0, 0]])
    metric.update(logits[:2], labels[:2], torch.tensor([0, 1]))
    metric.update(logits[2:], labels[2:], torch.tensor([2, 3]))
    report = metric.compute()
    assert report.ap.tolist() == pytest.approx([1.0, 1.0])
    assert report.accuracy.tolist() == pytest.approx([1.0, 1.0])
    table = report.table(["smiling", "hat"])
    assert "| smiling | 2 | 2 | 0 | 1.0000 |" in table and "| hat | 1 | 2 | 1 |" in table and "**mean**" in table


def test_attribute_scores_count_a_photo_scored_twice_once():
    """A padded DistributedSampler hands photo 0 to a second process. Ranked negative, positive,
    positive, the AP is (1/2 + 2/3)/2; photo 0's positive counted twice would make it
    1/3 * 1/2 + 2/3 * 3/4 = 2/3."""
    metric = AttributeScores()
    logits, labels = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[1], [1], [0]])
    metric.update(logits, labels, torch.tensor([0, 1, 2]))
    metric.update(logits[:1], labels[:1], torch.tensor([0]))
    report = metric.compute()
    assert report.ap.tolist() == pytest.approx([(1 / 2 + 2 / 3) / 2]) and report.positives.tolist() == [2]
    assert "| smiling | 2 | 1 | 0 | 0.5833 |" in report.table(["smiling"])  # one attribute: still a (1,) report


# Issue 13: the epoch metric stored float32 sigmoids (exactly 1.0 above a logit of ~17) and the
# report used torchmetrics' binary_average_precision (which applies a sigmoid by itself to scores
# outside [0, 1]), so confident logits tied and the AP changed. AP must be scikit-learn's
# average_precision_score on the raw scores, at any scale, on every path.

def test_ap_of_logits_a_sigmoid_would_merge():
    # ranked 42 negative, 41 positive, 40 positive: thresholds 42 (P 0, R 0), 41 (P 1/2, R 1/2),
    # 40 (P 2/3, R 1), so AP = 1/2 * 1/2 + 1/2 * 2/3.
    # A float32 sigmoid makes all three 1.0: one threshold, P 2/3 at R 1, AP 2/3.
    logits, labels = torch.tensor([[40.0], [41.0], [42.0]]), torch.tensor([[1], [1], [0]])
    expected = 0.5 * 0.5 + 0.5 * 2 / 3
    assert float(attribute_report(logits, labels).ap[0]) == pytest.approx(expected, abs=1e-12)
    metric = AttributeScores()
    metric.update(logits, labels, torch.tensor([0, 1, 2]))
    assert float(metric.compute().ap[0]) == pytest.approx(expected, abs=1e-12)


def _random_attribute_sets(seed):
    """Seeded (scores, labels) of every kind AP must rank as they are: negative and huge logits,
    ties (a coarse grid), float64 scores that float32 would merge, float32 and float16 inputs."""
    gen = torch.Generator().manual_seed(seed)
    for n in (3, 20, 300):
        labels = (torch.rand(n, 4, generator=gen) < torch.tensor([0.5, 0.2, 0.05, 0.9])).long()
        labels[torch.rand(n, 4, generator=gen) < 0.1] = -1
        labels[0] = 1  # every attribute has a known positive
        base = torch.randn(n, 4, generator=gen, dtype=torch.float64) + labels.clamp(min=0)
        for scores in (base * 30, base * 1e4 - 20, (base * 2).round() * 20, 1e8 + base * 1e-3,
                       (base * 25 + 30).float(), torch.sigmoid(base).float(), (base * 3).half()):
            yield scores, labels


def _sklearn_ap(scores, labels):
    from sklearn.metrics import average_precision_score  # a dev dependency: the reference, never skipped

    values = scores.double().numpy()
    out = []
    for j in range(labels.shape[1]):
        keep = labels[:, j] != -1
        out.append(average_precision_score(labels[keep, j].numpy(), values[keep.numpy(), j]))
    return out


def test_ap_equals_scikit_learn_on_random_scores_in_the_report_and_the_epoch_metric():
    for seed in range(3):
        for scores, labels in _random_attribute_sets(seed):
            expected = _sklearn_ap(scores, labels)
            assert attribute_report(scores, labels).ap.tolist() == pytest.approx(expected, abs=1e-12)
            if scores.dtype == torch.float32 and scores.min() < 0:  # logits: the epoch metric's input
                metric = AttributeScores()
                half = len(scores) // 2
                metric.update(scores[:half], labels[:half], torch.arange(half))
                metric.update(scores[half:], labels[half:], torch.arange(half, len(scores)))
                assert metric.compute().ap.tolist() == pytest.approx(expected, abs=1e-12)


def test_epoch_accuracy_thresholds_the_probability_of_the_raw_logits():
    # threshold 0.9 is logit log(9) = 2.1972...: the float32 logits on either side of it fall on
    # the right sides (a float32 sigmoid rounds 2.19722 and 2.19723 to the same 0.9)
    t = math.log(9)
    below, above = float(np.nextafter(np.float32(t), np.float32(0))), float(np.nextafter(np.float32(t), np.float32(9)))
    logits = torch.tensor([[below], [above], [30.0], [-30.0]])
    labels = torch.tensor([[0], [1], [1], [0]])
    metric = AttributeScores(threshold=0.9)
    metric.update(logits, labels, torch.arange(4))
    assert metric.compute().accuracy.tolist() == [1.0]
    # the same semantics as before on ordinary logits, and on probabilities in the report
    gen = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(500, 3, generator=gen) * 3, (torch.rand(500, 3, generator=gen) < 0.4).long()
    for threshold in (0.5, 0.3, 0.8):
        metric = AttributeScores(threshold)
        metric.update(logits, labels, torch.arange(500))
        old = attribute_report(torch.sigmoid(logits), labels, threshold)
        new = metric.compute()
        assert new.accuracy.tolist() == old.accuracy.tolist()
        assert new.balanced_accuracy.tolist() == old.balanced_accuracy.tolist()


def test_ap_of_infinite_and_nan_scores():
    from mnet_vision.metrics.attributes import average_precision

    # float16 logits overflow to inf: two infs are one tie (1 positive, 1 negative), then a positive
    assert average_precision([math.inf, math.inf, 1.0], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert math.isnan(average_precision([math.nan, 1.0], [1, 0]))  # a diverged model has no AP


# The non-binary outputs: age (regression, NaN unknown), gender/expression (multi-class, -1 unknown).

def test_regression_error_by_hand_with_unknown_targets():
    predicted = torch.tensor([30.0, 20.0, 51.5, 8.0])
    target = torch.tensor([32.0, math.nan, 50.0, 10.0])  # |errors| 2, -, 1.5, 2 over the 3 known
    report = regression_report(predicted, target)
    assert report.mae == pytest.approx((2 + 1.5 + 2) / 3) and (report.known, report.unknown) == (3, 1)
    assert math.isnan(regression_report(predicted, torch.full((4,), math.nan)).mae)
    with pytest.raises(ValueError, match="infinite"):
        regression_report(predicted, torch.tensor([1.0, math.inf, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"must both be \(N,\)"):
        regression_report(predicted, target[:3])


def test_categorical_accuracy_by_hand_with_unknown_labels_and_an_unseen_class():
    # predicted classes 0, 1, 1, 2, 0 (the first of the tied maxima in the last row)
    scores = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.4, 0.4, 0.2],
                           [0.3, 0.3, 0.4]])
    labels = torch.tensor([0, 1, 0, -1, 0, -1])
    report = categorical_report(scores, labels)
    assert report.accuracy == pytest.approx(1.0)
    scores[2] = torch.tensor([0.1, 0.8, 0.1])  # now one class-0 sample is called class 1
    report = categorical_report(scores, labels)
    assert report.accuracy == pytest.approx(3 / 4) and report.unknown == 2
    assert report.counts.tolist() == [3, 1, 0]
    assert report.per_class[:2].tolist() == pytest.approx([2 / 3, 1.0]) and math.isnan(report.per_class[2])
    assert math.isnan(categorical_report(scores, torch.full((6,), -1)).accuracy)
    with pytest.raises(ValueError, match=r"found \[3\]"):
        categorical_report(scores, torch.tensor([0, 1, 3, -1, 0, 0]))
    with pytest.raises(ValueError, match=r"must be \(N, C\)"):
        categorical_report(scores, labels[:2])


def _random_outputs(seed, n):
    """Seeded predictions with unknown targets/labels: ages, 2- and 7-way scores."""
    gen = torch.Generator().manual_seed(seed)
    age = torch.rand(n, generator=gen, dtype=torch.float64) * 80
    predicted_age = age + torch.randn(n, generator=gen, dtype=torch.float64) * 7
    age[torch.rand(n, generator=gen) < 0.2] = math.nan
    out = [(predicted_age, age)]
    for classes in (2, 7):
        labels = torch.randint(0, classes, (n,), generator=gen)
        scores = torch.randn(n, classes, generator=gen) + 1.5 * F.one_hot(labels, classes)
        labels[torch.rand(n, generator=gen) < 0.2] = -1
        out.append((scores, labels))
    return out


def test_output_metrics_equal_scikit_learn_on_random_inputs_in_the_report_and_the_epoch_metric():
    from sklearn.metrics import accuracy_score, recall_score  # the reference
    from sklearn.metrics import mean_absolute_error as sk_mae

    for seed, n in ((0, 5), (1, 60), (2, 500)):
        (predicted, age), *categorical = _random_outputs(seed, n)
        known = ~age.isnan()
        expected = sk_mae(age[known].numpy(), predicted[known].numpy())
        assert mean_absolute_error(predicted.numpy(), age.numpy()) == pytest.approx(expected, abs=1e-12)
        errors = RegressionErrors()
        errors.update(predicted[n // 2:].float(), age[n // 2:], torch.arange(n // 2, n))
        errors.update(predicted[:n // 2].float(), age[:n // 2], torch.arange(n // 2))
        assert errors.compute().mae == pytest.approx(sk_mae(age[known].numpy(), predicted[known].float().numpy()),
                                                     abs=1e-9)
        for scores, labels in categorical:
            keep = labels != -1
            truth, guess = labels[keep].numpy(), scores.argmax(1)[keep].numpy()
            report = categorical_report(scores, labels)
            assert report.accuracy == pytest.approx(accuracy_score(truth, guess), abs=1e-12)
            present = np.unique(truth)
            per_class = recall_score(truth, guess, labels=present, average=None, zero_division=0)
            assert report.per_class[present].tolist() == pytest.approx(per_class.tolist(), abs=1e-12)
            metric = CategoricalScores()
            metric.update(scores[:n // 3], labels[:n // 3], torch.arange(n // 3))
            metric.update(scores[n // 3:], labels[n // 3:], torch.arange(n // 3, n))
            metric.update(scores[:1], labels[:1], torch.tensor([0]))  # a padded sampler's repeat: counted once
            assert metric.compute().accuracy == pytest.approx(accuracy_score(truth, guess), abs=1e-12)


def test_outputs_table_lists_each_output_and_class():
    table = outputs_table({"age": regression_report(torch.tensor([1.0, 2.0]), torch.tensor([2.0, math.nan]))},
                          {"gender": categorical_report(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([0, 0]))},
                          {"gender": ["male", "female"]})
    assert "| age | MAE | 1 | 1 | 1.000 |" in table
    assert "| gender | accuracy | 2 | 0 | 0.5000 |" in table and "| gender: male | accuracy | 2 |" in table
    assert "| gender: female | accuracy | 0 | | – |" in table
