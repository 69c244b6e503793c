"""Attribute metrics on cases whose answers are known by construction."""
import math

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
