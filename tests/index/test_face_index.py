"""FaceIndex: cosine search with ids and metadata, persistence, and bad input."""
import faiss
import numpy as np
import pytest

from mnet_vision.index import FaceIndex


def _gallery(n_ids=20, per_id=3, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim))
    x = np.repeat(centres, per_id, axis=0) + 0.05 * rng.normal(size=(n_ids * per_id, dim))
    identities = [f"person{i:02d}" for i in range(n_ids) for _ in range(per_id)]
    return x, identities, centres


@pytest.mark.parametrize("factory", ["auto", "IDMap2,HNSW32,Flat", "IVF4,Flat"])
def test_search_finds_the_identity_with_cosine_scores(factory):
    x, identities, centres = _gallery()
    index = FaceIndex.create(16, factory)
    ids = index.add(x.astype(np.float64) * 7.0, identities, [f"img{i}.png" for i in range(len(x))])  # any scale, float64
    assert ids == list(range(60)) and len(index) == 60
    if factory.startswith("IVF"):
        index.index.nprobe = 4  # all lists: exact here
    hits = index.search(centres[:5], k=3)
    for person, row in enumerate(hits):
        assert [m.identity for m in row] == [f"person{person:02d}"] * 3
        assert 0.99 < row[0].score <= 1.0 + 1e-5  # cosine of normalised vectors
        assert row[0].score >= row[1].score >= row[2].score


def test_threshold_flags_unknown_faces_and_k_is_capped():
    x, identities, _ = _gallery(n_ids=2, per_id=2)
    index = FaceIndex.create(16)
    index.add(x, identities)
    stranger = np.random.default_rng(9).normal(size=16)
    (row,) = index.search(stranger, k=10, threshold=0.9)
    assert len(row) == 4 and all(m.unknown for m in row)
    (row,) = index.search(x[0], k=1, threshold=0.9)
    assert not row[0].unknown and row[0].id == 0


def test_save_load_round_trip_and_add_more(tmp_path):
    x, identities, centres = _gallery()
    index = FaceIndex.create(16)
    index.add(x[:30], identities[:30])
    path = index.save(tmp_path / "faces.faiss")
    assert faiss.read_index(str(path)).ntotal == 30  # a plain faiss index
    loaded = FaceIndex.load(path)
    assert loaded.add(x[30:], identities[30:])[0] == 30  # ids continue
    assert loaded.search(centres[19], k=1)[0][0].identity == "person19"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # no temporary files left


def test_bad_input_is_named(tmp_path):
    index = FaceIndex.create(16)
    with pytest.raises(ValueError, match="index is empty"):
        index.search(np.ones(16))
    with pytest.raises(ValueError, match="dimension 8 does not match the index's 16"):
        index.add(np.ones((2, 8)), ["a", "b"])
    bad = np.ones((3, 16))
    bad[1, 4] = np.nan
    with pytest.raises(ValueError, match=r"1 vector\(s\) hold NaN or infinite values \(rows \[1\]\)"):
        index.add(bad, ["a", "b", "c"])
    with pytest.raises(ValueError, match="all zero"):
        index.add(np.zeros((1, 16)), ["a"])
    with pytest.raises(ValueError, match="non-empty"):
        index.add(np.zeros((0, 16)), [])
    assert len(index) == 0  # nothing half-added
    with pytest.raises(ValueError, match="training 'IVF64,Flat' on 10 vectors failed"):
        FaceIndex.create(16, "IVF64,Flat").add(np.random.default_rng(0).normal(size=(10, 16)), ["a"] * 10)
    with pytest.raises(ValueError, match="faiss cannot build index"):
        FaceIndex.create(16, "NoSuchIndex")


def test_corrupt_or_mismatched_files_are_named(tmp_path):
    x, identities, _ = _gallery()
    index = FaceIndex.create(16)
    index.add(x, identities)
    path = index.save(tmp_path / "faces.faiss")
    data = path.read_bytes()
    (tmp_path / "cut.faiss").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.faiss is not a readable faiss index"):
        FaceIndex.load(tmp_path / "cut.faiss")
    (tmp_path / "other.faiss").write_bytes(data)
    (tmp_path / "other.faiss.meta.json").write_text('{"factory": "IDMap2,Flat", "dim": 16, "next_id": 1, '
                                                     '"entries": {"0": {"identity": "a", "source": ""}}}')
    with pytest.raises(ValueError, match="describes 1 vectors .* holds 60"):
        FaceIndex.load(tmp_path / "other.faiss")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FaceIndex.load(tmp_path / "missing.faiss")
