"""Verification metrics on score sets whose answers are known by construction."""
import numpy as np
import pytest
from PIL import Image

from mnet_vision.metrics.verification import (all_pairs, best_threshold, kfold_accuracy, roc_points,
                                              tar_at_far)
from mnet_vision.reporting import save_roc_curve


def test_best_threshold_cuts_between_classes():
    assert best_threshold([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(0.5)
    # splitting the two 0.5s would classify all four right, but equal scores get one decision; of the
    # two cuts left (0.35 and 0.7, 3 right each) the lower wins
    assert best_threshold([0.2, 0.5, 0.5, 0.9], [0, 0, 1, 1]) == pytest.approx(0.35)
    assert best_threshold([0.3, 0.4], [1, 1]) < 0.3  # accept all
    assert best_threshold([0.3, 0.4], [0, 0]) == pytest.approx(0.4)  # accept none (score > 0.4)


def test_kfold_accuracy_known_by_construction():
    """10 folds of 60 pairs (30 genuine at 0.9, 30 impostors at 0.1); fold k has k genuine pairs
    scored 0.0 instead. Every threshold chosen on 9 folds lies in (0.1, 0.9), so fold k scores
    exactly (60 - k) / 60."""
    scores, labels = [], []
    for k in range(10):
        genuine = [0.0] * k + [0.9] * (30 - k)
        scores += genuine + [0.1] * 30
        labels += [1] * 30 + [0] * 30
    result = kfold_accuracy(scores, labels)
    expected = [(60 - k) / 60 for k in range(10)]
    assert result.fold_accuracies == pytest.approx(expected)
    assert result.mean == pytest.approx(np.mean(expected)) and result.std == pytest.approx(np.std(expected))
    assert all(0.1 < t < 0.9 for t in result.thresholds)


def test_folds_are_consecutive_blocks_in_file_order():
    # fold 0 (first 10 pairs) is inverted: a threshold learnt on the others gets all of it wrong
    scores = np.r_[[0.1] * 5, [0.9] * 5, np.tile([0.9] * 5 + [0.1] * 5, 9)]
    labels = np.r_[[1] * 5, [0] * 5, np.tile([1] * 5 + [0] * 5, 9)]
    result = kfold_accuracy(scores, labels)
    assert result.fold_accuracies[0] == 0.0 and result.fold_accuracies[1:] == (1.0,) * 9


def test_tar_at_far_without_interpolation():
    impostors = np.arange(1000) / 1000  # 0.000 .. 0.999
    genuine = np.array([0.995, 0.98, 0.999, 0.5])
    result = tar_at_far(np.r_[impostors, genuine], np.r_[np.zeros(1000), np.ones(4)], far=0.01)
    assert result.threshold == pytest.approx(0.989)  # the 10th highest impostor (0-based): 10 above it
    assert result.far == pytest.approx(0.01) and result.tar == pytest.approx(0.5)
    assert (result.genuine, result.impostor) == (4, 1000)


def test_ties_at_the_threshold_are_rejected():
    result = tar_at_far([0.5] * 1000 + [0.5, 0.6], [0] * 1000 + [1, 1], far=0.01)
    assert result.far == 0.0 and result.tar == 0.5  # never above the target FAR


def test_tar_at_far_refuses_too_few_impostors():
    with pytest.raises(ValueError, match=r"needs at least 10000 impostor pairs.*got 3000"):
        tar_at_far(np.zeros(3300), np.r_[np.zeros(3000), np.ones(300)], far=1e-3)
    with pytest.raises(ValueError, match="genuine"):
        tar_at_far(np.zeros(100), np.zeros(100), far=0.1)


def test_bad_scores_are_named():
    with pytest.raises(ValueError, match="NaN or infinite"):
        kfold_accuracy([0.1, np.nan, 0.3, 0.4], [0, 1, 0, 1], folds=2)
    with pytest.raises(ValueError, match="differ in length"):
        tar_at_far([0.1, 0.2], [1], far=0.5)


def test_all_pairs_of_an_identity_set():
    embeddings = np.array([[1, 0], [2, 0], [0, 1], [0, 3]], dtype=np.float32)  # normalised inside
    scores, same = all_pairs(embeddings, ["a", "a", "b", "b"])
    assert len(scores) == 6 and same.tolist() == [True, False, False, False, False, True]
    assert scores.tolist() == pytest.approx([1, 0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="all zero"):
        all_pairs(np.zeros((2, 2)), [0, 1])


def test_roc_curve_points_and_picture(tmp_path):
    fpr, tpr = roc_points([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
    assert (0.5, 1.0) in set(zip(fpr.tolist(), tpr.tolist()))  # threshold 0.35: one of two impostors in
    path = save_roc_curve({"teacher": (fpr, tpr), "student": (fpr, tpr * 0.9)}, tmp_path / "roc.png")
    with Image.open(path) as picture:
        assert picture.format == "PNG" and picture.width > 300


def test_verification_report_on_separable_and_listed_pairs(tmp_path):
    """Identities on orthogonal axes: every genuine pair scores 1, every impostor 0, so TAR is 1 at
    any FAR, the AUC is 1 and LFW-style accuracy is 1; the listed pairs keep file order and a pair
    whose image was not embedded is counted."""
    from mnet_vision.data.lfw import LfwPairs
    from mnet_vision.metrics.verification import verification_report

    n_ids, per_id = 50, 5  # 250 images: 30 625 pairs, 30 000 impostors (>= 10 / 1e-3)
    x = np.repeat(np.eye(64)[:n_ids], per_id, axis=0) * 3.0
    ids = np.repeat(np.arange(n_ids), per_id)
    paths = [f"img{i}.png" for i in range(len(x))]
    first = [paths[0], paths[0], paths[10], "gone.png"] * 5
    second = [paths[1], paths[5], paths[11], paths[1]] * 5
    pairs = LfwPairs([tmp_path / p for p in first], [tmp_path / p for p in second],
                     [True, False, True, True] * 5, sets=5, pairs_per_set=2)
    report = verification_report(x, ids, (1e-3, 1e-4), pairs, [str(tmp_path / p) for p in paths])
    assert report["tar@far0.001"] == 1.0 and report["far@far0.001"] == 0.0
    assert "tar@far0.0001" not in report  # 30 000 impostors < 10 / 1e-4: not measurable
    assert report["auc"] == 1.0
    assert report["genuine_pairs"] == n_ids * per_id * (per_id - 1) / 2
    assert report["pairs"] == 15 and report["pairs_missing"] == 5
    assert report["accuracy"] == 1.0 and report["accuracy_std"] == 0.0
