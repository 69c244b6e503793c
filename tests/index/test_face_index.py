"""FaceIndex: cosine search with ids and metadata, persistence, and bad input."""
import faiss
import numpy as np
import pytest

from mnet_vision.benchmarks.index import face_like_vectors
from mnet_vision.index import FaceIndex
from mnet_vision.index import face_index as fi


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
    # any scale, float64
    ids = index.add(x.astype(np.float64) * 7.0, identities, [f"img{i}.png" for i in range(len(x))])
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
    with pytest.raises(ValueError, match="training 'IVF64,Flat' on 10 vectors failed.*give it at least 64 vectors"):
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
    (tmp_path / "no_trailer.faiss").write_bytes(data[:-10])  # the faiss part whole, the metadata cut
    with pytest.raises(ValueError, match="no_trailer.faiss holds a faiss index but no metadata"):
        FaceIndex.load(tmp_path / "no_trailer.faiss")
    faiss.write_index(index.index, str(tmp_path / "other.faiss"))  # the two-file format, mismatched
    (tmp_path / "other.faiss.meta.json").write_text('{"factory": "IDMap2,Flat", "dim": 16, "next_id": 1, '
                                                     '"entries": {"0": {"identity": "a", "source": ""}}}')
    with pytest.raises(ValueError, match="describes 1 vectors .* holds 60"):
        FaceIndex.load(tmp_path / "other.faiss")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FaceIndex.load(tmp_path / "missing.faiss")


@pytest.mark.parametrize("size, exact", [(0, True), (10_000, True), (fi.EXACT_UP_TO, True),
                                         (fi.EXACT_UP_TO + 1, False), (1_000_000, False), (10**8, False)])
def test_auto_rule_picks_exact_search_then_the_measured_ann_index(size, exact):
    factory, params = fi.auto_index(size)
    assert (factory, params) == (("IDMap2,Flat", {}) if exact else (fi.AUTO_ANN, fi.AUTO_SEARCH_PARAMS))
    index = FaceIndex.create(16, "auto", expected_size=size)
    assert index.factory == factory == fi.auto_factory(size)
    assert index.search_params() == params  # applied by create
    assert index.index.metric_type == faiss.METRIC_INNER_PRODUCT


@pytest.mark.parametrize("factory, params", [("IDMap2,HNSW32,Flat", {"efSearch": 77}), ("IVF8,Flat", {"nprobe": 5}),
                                             ("IDMap2,IVF8,PQ4x4fs,RFlat", {"nprobe": 3, "k_factor_rf": 6})])
def test_search_params_are_applied_and_survive_save_and_load(tmp_path, factory, params):
    x, identities, centres = _gallery(n_ids=100, per_id=4)
    index = FaceIndex.create(16, factory, search_params=params)
    assert index.search_params() == params
    index.add(x, identities)
    loaded = FaceIndex.load(index.save(tmp_path / "faces.faiss"))
    assert loaded.search_params() == params  # faiss stores efSearch / nprobe / k_factor in the file
    name = next(iter(params))
    loaded.set_search_params(**{name: 2})
    assert loaded.search_params()[name] == 2
    assert loaded.search(centres[7], k=1)[0][0].identity == "person07"
    with pytest.raises(ValueError, match=f"{factory!r} has no search parameter 'efConstruction_typo'"):
        loaded.set_search_params(efConstruction_typo=1)


def test_auto_params_survive_save_and_load_and_user_params_override_them(tmp_path):
    x, identities, _ = _gallery()
    index = FaceIndex.create(16, "auto", expected_size=10**6)
    index.add(x, identities)
    assert FaceIndex.load(index.save(tmp_path / "auto.faiss")).search_params() == fi.AUTO_SEARCH_PARAMS
    name = next(iter(fi.AUTO_SEARCH_PARAMS))
    custom = FaceIndex.create(16, "auto", expected_size=10**6, search_params={name: 3})
    assert custom.search_params() == {name: 3}
    with pytest.raises(ValueError, match="has no search parameter 'nprobe'"):
        FaceIndex.create(16, "auto", expected_size=10, search_params={"nprobe": 3})  # exact search has none


def test_auto_ann_index_keeps_recall_at_1_against_exact_search():
    database, queries = face_like_vectors(20_000, queries=300, seed=1)  # clustered like face embeddings
    found = {}
    for size in (10, 10**6):  # exact search, then the auto ANN index with its search parameters
        index = FaceIndex.create(128, "auto", expected_size=size)
        index.add(database, ["x"] * len(database))
        found[size] = [row[0].id for row in index.search(queries, k=1)]
    assert np.mean(np.equal(found[10], found[10**6])) >= 0.98


def test_a_failed_save_writes_nothing_and_keeps_the_previous_files(tmp_path, monkeypatch):
    x, identities, _ = _gallery()
    index = FaceIndex.create(16)
    index.add(x[:30], identities[:30])

    def disk_full(*args):
        raise RuntimeError("No space left on device")

    with monkeypatch.context() as m:
        m.setattr(faiss, "write_index", disk_full)
        with pytest.raises(RuntimeError, match="No space"):
            index.save(tmp_path / "faces.faiss")
    assert [p.name for p in tmp_path.iterdir()] == ["faces.faiss.lock"]  # the writer lock only
    path = index.save(tmp_path / "faces.faiss")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    index.add(x[30:], identities[30:])
    with monkeypatch.context() as m:
        m.setattr(fi, "_metadata_trailer", disk_full)  # the metadata fails after the index was written
        with pytest.raises(RuntimeError, match="No space"):
            index.save(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # the old index, no temporary files
    assert len(FaceIndex.load(path)) == 30


DESCRIPTOR = {"name": "faceapi_descriptor", "sha256": "ab" * 32, "dim": 16, "align": "faceapi", "metric": "euclidean"}


def test_euclidean_index_reports_exact_distances_on_the_raw_vectors():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(3)
    gallery = rng.normal(scale=0.4, size=(50, 16))  # arbitrary norms: nothing may normalise them
    queries = rng.normal(scale=0.4, size=(7, 16))
    index = FaceIndex.create(16, metric="euclidean")
    index.add(gallery, [f"p{i}" for i in range(50)])
    hits = index.search(queries, k=5)
    reference = NearestNeighbors(n_neighbors=5).fit(gallery.astype(np.float32))
    distances, ids = reference.kneighbors(queries.astype(np.float32))
    for row, d, i in zip(hits, distances, ids):
        assert [m.id for m in row] == i.tolist()
        np.testing.assert_allclose([m.score for m in row], d, atol=1e-5)
        assert all(m.metric == "euclidean" for m in row)
    # known by construction: a 3-4-5 triangle
    known = FaceIndex.create(2, metric="euclidean")
    known.add([[0.0, 0.0], [3.0, 4.0]], ["origin", "far"])
    (row,) = known.search([[0.0, 0.0]], k=2, threshold=5.0)
    assert [(m.identity, m.score, m.unknown) for m in row] == [("origin", 0.0, False), ("far", 5.0, False)]
    (row,) = known.search([[0.0, 0.0]], k=2, threshold=4.999)  # beyond the threshold: unknown
    assert [m.unknown for m in row] == [False, True]
    with pytest.raises(ValueError, match="metric must be one of"):
        FaceIndex.create(16, metric="manhattan")


def test_entries_keep_their_metadata_and_the_index_its_model_and_metric(tmp_path):
    index = FaceIndex.create(16, metric="euclidean", embedding_model=DESCRIPTOR)
    x = np.random.default_rng(0).normal(size=(2, 16))
    meta = [{"photo": "a.jpg", "box": [1.0, 2.0, 30.0, 40.0], "landmarks": [[1.5, 2.5]] * 68, "face": 0},
            {"photo": "b.jpg", "box": [5.0, 6.0, 7.0, 8.0], "landmarks": [[0.0, 0.0]] * 68, "face": 3}]
    index.add(x, ["", "bob"], ["a.jpg", "b.jpg"], meta, DESCRIPTOR)
    loaded = FaceIndex.load(index.save(tmp_path / "faces.faiss"))
    assert loaded.metric == "euclidean" and loaded.embedding_model == DESCRIPTOR
    assert loaded.entries[1] == {"identity": "bob", "source": "b.jpg", **meta[1]}
    (row,) = loaded.search(x[1], k=1, embedding_model=DESCRIPTOR)
    assert row[0].entry["photo"] == "b.jpg" and row[0].score == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match=r"metadata of embedding 0 is not JSON-able"):
        loaded.add(x[:1], ["c"], metadata=[{"box": np.zeros(4)}], embedding_model=DESCRIPTOR)
    with pytest.raises(ValueError, match=r"metadata of embedding 0: the keys \['identity'\] are the entry's own"):
        loaded.add(x[:1], ["c"], metadata=[{"identity": "c"}], embedding_model=DESCRIPTOR)
    assert len(loaded) == 2


def test_vectors_of_another_embedding_model_are_refused_naming_both(tmp_path):
    index = FaceIndex.create(16, metric="euclidean", embedding_model=DESCRIPTOR)
    x = np.random.default_rng(0).normal(size=(3, 16))
    index.add(x, ["a", "b", "c"], embedding_model=DESCRIPTOR)
    other = DESCRIPTOR | {"name": "mobilenet_student", "sha256": "cd" * 32, "align": "similarity"}
    both = r"mobilenet_student \(sha256 cdcdcdcdcdcd\.\.\., 16-D, align similarity.*faceapi_descriptor \(sha256 abab"
    with pytest.raises(ValueError, match="the queries come from " + both):
        index.search(x[0], embedding_model=other)
    with pytest.raises(ValueError, match="the embeddings to add come from " + both):
        index.add(x, ["a", "b", "c"], embedding_model=other)
    path = index.save(tmp_path / "faces.faiss")
    with pytest.raises(ValueError, match="faces.faiss: the embeddings to add come from " + both):
        FaceIndex.append_to(path, x, ["a", "b", "c"], metric="euclidean", embedding_model=other)
    with pytest.raises(ValueError, match="compares vectors by euclidean distance, not cosine"):
        FaceIndex.append_to(path, x, ["a", "b", "c"], embedding_model=DESCRIPTOR)
    assert len(FaceIndex.load(path)) == 3  # nothing appended
    # an index of unknown provenance (built by build_index, no record) takes no recorded model's vectors
    plain = FaceIndex.create(16)
    plain.add(x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="records no embedding model"):
        plain.search(x[0], embedding_model=DESCRIPTOR)
    assert plain.search(x[0])[0][0].identity == "a"  # and queries that name no model are its old use
    # ... while vectors that name no model (tools/search.py's, build_index.py's) stay out of one that records one
    with pytest.raises(ValueError, match="the queries name no embedding model, but this index was built with "
                                         r"faceapi_descriptor \(sha256 abababababab\.\.\., 16-D, align faceapi, metric "
                                         r"euclidean\) and compares by euclidean distance"):
        index.search(x[0])
    with pytest.raises(ValueError, match="the embeddings to add name no embedding model"):
        index.add(x, ["a", "b", "c"])
    with pytest.raises(ValueError, match="makes 16-D vectors, not 8-D"):
        FaceIndex.create(8, embedding_model=DESCRIPTOR)
