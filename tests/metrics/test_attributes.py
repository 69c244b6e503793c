"""Attribute metrics on cases whose answers are known by construction."""
import math

import numpy as np
import pytest
import torch

from mnet_vision.metrics.attributes import AttributeScores, attribute_report


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
