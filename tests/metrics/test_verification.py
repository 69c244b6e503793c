"""Verification metrics on score sets whose answers are known by construction."""
import numpy as np
import pytest
from PIL import Image

from mnet_vision.metrics.verification import all_pairs, best_threshold, kfold_accuracy, roc_points, tar_at_far
from mnet_vision.viz.verification import save_roc_curve


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


# Issue 13: torchmetrics' binary ROC/AUROC read scores outside [0, 1] as logits and apply a float32
# sigmoid, which is exactly 1.0 above ~17 (and merges distinct scores well before): any real-valued
# similarity (minus a distance, an unnormalised dot product) then got a different curve and AUC.
# The reference is scikit-learn's roc_curve(drop_intermediate=False) / roc_auc_score on raw scores.

def test_roc_and_auc_on_scores_a_sigmoid_would_merge():
    # ranked 42 impostor, 41 genuine, 40 genuine: a sigmoid makes all three one threshold (one
    # diagonal step, AUC 1/2); as raw scores the curve goes up only after the impostor: AUC 0
    scores, same = [40.0, 41.0, 42.0], [1, 1, 0]
    fpr, tpr = roc_points(scores, same)
    assert fpr.tolist() == [0, 1, 1, 1] and tpr.tolist() == [0, 0, 0.5, 1]
    from mnet_vision.metrics.verification import roc_auc

    assert roc_auc(scores, same) == 0.0
    # far from 0 on both sides too
    assert roc_auc([-1e6, -1e6 + 1, 1e12, 1e12 + 1e-3 * 2 ** 40], [0, 1, 0, 1]) == 0.75


def _random_score_sets(seed):
    """Seeded score sets of every kind the metric must rank as they are: negative, huge, tied
    (rounded onto a coarse grid), and float32 as well as float64."""
    rng = np.random.default_rng(seed)
    for n in (2, 7, 50, 400):
        same = rng.random(n) < 0.4
        same[0], same[1] = True, False  # both classes present
        base = rng.normal(size=n) + same
        for scores in (base, base * 1e3 - 5e2, base * 50 + 30, np.round(base * 2) / 2,
                       np.round(base * 3) * 1e7, (base * 40).astype(np.float32), np.float32(base) + 35):
            yield scores, same


def test_roc_points_and_auc_equal_scikit_learn_on_random_scores():
    from sklearn import metrics as sklearn_metrics  # a dev dependency: the reference, never skipped

    for seed in range(5):
        for scores, same in _random_score_sets(seed):
            fpr, tpr = roc_points(scores, same)
            ref_fpr, ref_tpr, _ = sklearn_metrics.roc_curve(same, scores, drop_intermediate=False)
            np.testing.assert_array_equal(fpr, ref_fpr)
            np.testing.assert_array_equal(tpr, ref_tpr)
    from mnet_vision.metrics.verification import roc_auc

    for seed in range(5):
        for scores, same in _random_score_sets(seed):
            assert roc_auc(scores, same) == pytest.approx(sklearn_metrics.roc_auc_score(same, scores), abs=1e-12)


def test_verification_report_auc_on_large_scores_equals_scikit_learn():
    from sklearn import metrics as sklearn_metrics  # a dev dependency: the reference, never skipped

    from mnet_vision.metrics.verification import verification_report

    rng = np.random.default_rng(0)
    same = rng.random(500) < 0.3
    scores = (rng.normal(size=500) + same) * 20 + 40  # mostly above 17: a sigmoid ties most of them
    report = verification_report(None, None, fars=(), all_pair_scores=(scores, same))
    assert report["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(same, scores), abs=1e-12)


def test_thresholds_hold_at_any_score_scale():
    # accept-all below 1e20: `s - 1` rounds back to s there, and `score > s` rejected the lowest
    t = best_threshold([1e20, 1.5e20], [1, 1])
    assert t < 1e20
    # adjacent floats: their midpoint rounds (half to even) onto one of them, here the upper one;
    # the cut must still separate them
    a = np.nextafter(1.0, 2.0)
    b = np.nextafter(a, 2.0)
    t = best_threshold([a, b], [0, 1])
    assert a <= t < b
    # near the float64 limit (a + b overflows to inf)
    t = best_threshold([1e308, 1.5e308], [0, 1])
    assert 1e308 <= t < 1.5e308
    # LFW folds at any scale: shifting and scaling the scores changes nothing
    rng = np.random.default_rng(1)
    same = rng.random(600) < 0.5
    scores = rng.normal(size=600) + 2 * same
    for scale, shift in ((1.0, 0.0), (1e6, 1e12), (1e-6, -3.0)):
        folds = kfold_accuracy(scores * scale + shift, same, folds=10)
        assert folds.fold_accuracies == kfold_accuracy(scores, same, folds=10).fold_accuracies
    assert tar_at_far(scores * 1e6 + 1e12, same, 0.05).tar == tar_at_far(scores, same, 0.05).tar
