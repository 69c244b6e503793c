"""The face search benchmark: face-like vectors, the rows and table, recall against exact search."""
import numpy as np
import pytest

from mnet_vision.benchmarks.index import (
    EXACT,
    Candidate,
    compare_indexes,
    default_candidates,
    face_like_vectors,
    index_table,
    ivf_lists,
    recall_at,
    sweep,
)
from mnet_vision.index import FaceIndex


def test_face_like_vectors_are_clustered_unit_rows_with_new_query_images():
    database, queries = face_like_vectors(2000, dim=64, per_identity=5, queries=100, intra_cosine=0.6, seed=3)
    assert database.shape == (2000, 64) and queries.shape == (100, 64)
    assert database.dtype == queries.dtype == np.float32
    assert np.allclose(np.linalg.norm(database, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(queries, axis=1), 1, atol=1e-5)
    same = np.einsum("ij,ij->i", database[0::5], database[1::5])  # two images of each identity
    assert 0.55 < same.mean() < 0.65
    cross = database[0::5] @ database[1::5].T
    other = cross[~np.eye(len(cross), dtype=bool)]  # images of different identities
    assert abs(other.mean()) < 0.05 and same.mean() - 4 * other.std() > 0
    best = (queries @ database.T).max(axis=1)
    assert best.max() < 0.95  # new images, not copies of gallery rows
    assert np.array_equal(face_like_vectors(2000, dim=64, per_identity=5, queries=100, seed=3)[0], database)


def test_recall_at_counts_the_exact_neighbours_found():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at(truth, truth, 3) == 1.0
    found = np.array([[1, 3, 9], [5, 4, -1]])
    assert recall_at(found, truth, 1) == 0.5
    assert recall_at(found, truth, 3) == pytest.approx(4 / 6)


def test_default_candidates_follow_the_faiss_guideline_and_build():
    assert [ivf_lists(n) for n in (1000, 10_000, 100_000, 1_000_000)] == [16, 256, 1024, 4096]
    for cand in default_candidates(10_000):
        index = FaceIndex.create(8 * 16, cand.factory)
        for setting in cand.settings:
            index.set_search_params(**setting)  # every swept name exists on its index


def test_tiny_table_has_the_columns_and_exact_search_is_its_own_truth():
    candidates = [sweep("IDMap2,HNSW32,Flat", "efSearch", (16, 64)), sweep("IVF16,Flat", "nprobe", (1, 16))]
    rows = compare_indexes((1500,), candidates, queries=40, k=5, threads=1, single=3, repeats=1, warmup=0,
                           progress=False)
    assert [(r["index"], r["param"]) for r in rows] == [
        (EXACT, "–"), ("IDMap2,HNSW32,Flat", "efSearch 16"), ("IDMap2,HNSW32,Flat", "efSearch 64"),
        ("IVF16,Flat", "nprobe 1"), ("IVF16,Flat", "nprobe 16")]
    exact = rows[0]
    assert exact["recall1"] == exact["recall10"] == exact["speedup"] == exact["speedup_single"] == 1.0
    assert exact["train_s"] == 0 and 512 <= exact["bytes_per_vector"] < 600  # 128 float32 + id
    assert rows[4]["recall1"] == rows[4]["recall10"] == 1.0  # every list probed: exact
    assert rows[3]["train_s"] > 0 and rows[3]["build_s"] >= rows[3]["train_s"]
    for r in rows:
        assert r["n"] == 1500 and r["qps"] > 0 and r["single_ms"] > 0 and 0 <= r["recall1"] <= 1
    table = index_table(rows).splitlines()
    assert len(table) == 2 + len(rows)
    for column in ("build s", "train s", "queries/s", "ms/query", "recall@1", "recall@10", "speed vs Flat",
                   "bytes/vector"):
        assert column in table[0]
    assert Candidate(EXACT).settings == ({},)

