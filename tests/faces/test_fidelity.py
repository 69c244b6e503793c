"""Student-vs-teacher fidelity: cases known by construction (a copy, a rotation, a scaling, a shuffle),
scikit-learn as the reference on arbitrary embeddings, the calibrated threshold, and bad input."""
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances as sk_distances
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import NearestNeighbors

from mnet_vision.faces.fidelity import (
    FaceCrops,
    calibrated_threshold,
    checkpoint_fidelity,
    constant_cosine,
    embedding_fidelity,
    pair_distances,
    pairwise_distances,
    student_embeddings,
)
from mnet_vision.images import read_rgb
from mnet_vision.inference.load import load_model


@pytest.fixture
def teacher() -> np.ndarray:
    """40 faces, 128-D, norms ~1.45 as face-api's descriptors: 10 people x 4 views (views close)."""
    rng = np.random.default_rng(0)
    people = rng.normal(size=(10, 128))
    views = np.repeat(people, 4, axis=0) + 0.35 * rng.normal(size=(40, 128))
    return 1.45 * views / np.linalg.norm(views, axis=1, keepdims=True)


def test_the_teacher_itself_agrees_everywhere(teacher):
    f = embedding_fidelity(teacher, teacher, student_threshold=0.6)
    assert (f.faces, f.pairs) == (40, 780)
    assert f.cosine_mean == pytest.approx(1.0) and f.cosine_min == pytest.approx(1.0)
    assert f.verification == 1.0 and f.nn == {1: 1.0, 5: 1.0}
    assert 0 < f.teacher_same == f.student_same < f.pairs  # the construction has both kinds of pair


def test_a_rotation_keeps_every_decision_and_neighbour_but_not_the_cosine(teacher):
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(128, 128)))
    f = embedding_fidelity(teacher @ q, teacher, student_threshold=0.6)  # distances preserved exactly
    assert f.verification == 1.0 and f.nn[1] == 1.0
    assert f.cosine_mean < 0.3  # another space: the direct comparison says so


def test_a_scaled_student_agrees_through_its_calibrated_threshold(teacher):
    student = teacher / 1.45  # unit vectors, as our heads give
    threshold = calibrated_threshold(student, teacher, 0.6)
    t_pairs = sk_distances(teacher)[np.triu_indices(40, 1)]
    s_pairs = sk_distances(student)[np.triu_indices(40, 1)]
    assert (s_pairs <= threshold).sum() == (t_pairs <= 0.6).sum()
    # at the teacher's own threshold a unit-vector student would call far more pairs the same
    assert embedding_fidelity(student, teacher, student_threshold=threshold).verification == 1.0
    assert embedding_fidelity(student, teacher, student_threshold=0.6).verification < 1.0


def test_shuffled_faces_lose_the_neighbours():
    rng = np.random.default_rng(2)
    teacher = rng.normal(size=(50, 16))
    f = embedding_fidelity(teacher[rng.permutation(50)], teacher, student_threshold=4.0)
    assert f.nn[1] < 0.2  # chance is 1/49


def test_against_scikit_learn_on_arbitrary_embeddings():
    rng = np.random.default_rng(3)
    teacher, student = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    student[:10] = teacher[:10] + 0.1 * rng.normal(size=(10, 8))
    np.testing.assert_allclose(pairwise_distances(student), sk_distances(student), atol=1e-6)  # sqrt of ~1e-15 at 0
    np.testing.assert_allclose(pair_distances(student), sk_distances(student)[np.triu_indices(30, 1)], atol=1e-9)
    f = embedding_fidelity(student, teacher, student_threshold=3.5, teacher_threshold=3.0, ks=(1, 3, 100))
    cosine = np.diag(cosine_similarity(student, teacher))
    assert f.cosine_mean == pytest.approx(cosine.mean()) and f.cosine_min == pytest.approx(cosine.min())
    # the neighbours each side ranks, excluding the face itself
    teacher_nn = NearestNeighbors(n_neighbors=2).fit(teacher).kneighbors(teacher)[1][:, 1]
    student_top = NearestNeighbors(n_neighbors=4).fit(student).kneighbors(student)[1][:, 1:]
    assert f.nn[1] == pytest.approx(np.mean(student_top[:, 0] == teacher_nn))
    assert f.nn[3] == pytest.approx(np.mean([t in row for t, row in zip(teacher_nn, student_top, strict=True)]))
    assert f.nn[100] == 1.0  # capped at every other face
    rows, cols = np.triu_indices(30, 1)
    same_s, same_t = sk_distances(student)[rows, cols] <= 3.5, sk_distances(teacher)[rows, cols] <= 3.0
    assert f.verification == pytest.approx(np.mean(same_s == same_t))
    assert (f.student_same, f.teacher_same) == (same_s.sum(), same_t.sum())


def test_a_constant_student_scores_the_shared_direction(teacher):
    repeated = np.repeat(teacher.mean(0, keepdims=True), 40, 0)  # a student answering the mean for every face
    cosine = np.diag(cosine_similarity(teacher, repeated))
    assert constant_cosine(teacher, teacher) == pytest.approx((cosine.mean(), cosine.min()))
    offset = teacher + 3.0  # a large shared component: every face near the mean's direction
    assert constant_cosine(offset, offset)[1] > 0.9


def test_bad_input_is_refused_with_the_shapes():
    with pytest.raises(ValueError, match=r"student embeddings \(4, 16\) and teacher embeddings \(4, 128\)"):
        embedding_fidelity(np.zeros((4, 16)), np.zeros((4, 128)), student_threshold=0.5)
    with pytest.raises(ValueError, match="student: expected finite.*NaN"):
        embedding_fidelity(np.full((3, 4), np.nan), np.zeros((3, 4)), student_threshold=0.5)
    with pytest.raises(ValueError, match=r"teacher: expected finite \(N, D\) embeddings of N >= 2"):
        calibrated_threshold(np.zeros((3, 4)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match="same faces must be embedded by both"):
        calibrated_threshold(np.zeros((3, 4)), np.zeros((5, 4)))


def test_a_checkpoint_measured_against_its_own_embeddings_is_faithful(embedding_run):
    """The wiring: crops through the checkpoint's evaluation transform, its threshold calibrated on other
    crops; with the checkpoint as its own teacher every figure is perfect."""
    loaded = load_model(embedding_run["best_checkpoint"], fast=False)
    files = sorted((Path(embedding_run["run_dir"]).parent / "data").rglob("*.png"))
    crops = [read_rgb(f) for f in files[:24]]
    measured, calibration = crops[:12], crops[12:]
    own = [FaceCrops([str(i) for i in range(12)], c, student_embeddings(loaded, c)) for c in (measured, calibration)]
    f = checkpoint_fidelity(loaded, own[0], own[1], teacher_threshold=0.8)
    assert f.faces == 12 and f.cosine_min == pytest.approx(1.0, abs=1e-5)
    assert f.verification == 1.0 and f.nn == {1: 1.0, 5: 1.0}
    assert student_embeddings(loaded, measured).shape == (12, 16)
