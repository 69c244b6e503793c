"""The faiss index built from predict's embedding shards: ids back to paths, recall against exact
search, shard-by-shard memory, the on-disk build, bad shards, rebuilds and the tool."""
import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mnet_vision.index import shards as sh
from mnet_vision.index.shards import ShardIndex, auto_factory, build_from_shards, exact_search, list_shards
from mnet_vision.locks import exclusive_flock
from tests.helpers.cli import run_tool

DIM = 32
MODEL = {"source": "tiny.ckpt", "task": "embedding", "sha256": "ab" * 32, "settings": {"fast": True}}  # predict's
# 4-bit PQ: 16 centroids a sub-quantizer train on a few thousand vectors (8-bit PQ's 256 would want 9,984)
PQ = "IVF16,PQ8x4np"


def write_shard(folder: Path, stem: str, vectors: np.ndarray, paths: list[str] | None = None, **fields) -> Path:
    """One shard of predict's format (the .npy first, the JSON last, as predict writes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [f"photos/{stem}/{i}.jpg" for i in range(len(vectors))] if paths is None else paths
    np.save(folder / f"{stem}.npy", np.asarray(vectors, dtype=np.float32))
    record = {"format": "mnet_vision.predict/1", "kind": "embeddings", "chunk": int(stem[-6:]), "rank": int(stem[1:4]),
              "paths": paths, "unreadable": [], "rows": len(vectors), "dim": DIM, "model": MODEL} | fields
    (folder / f"{stem}.json").write_text(json.dumps(record))
    return folder / f"{stem}.json"


def clustered(identities: int, per_identity: int = 10, spread: float = 0.25, seed: int = 0) -> tuple[
        np.ndarray, np.ndarray]:
    """``identities * per_identity`` face-like rows (row i of identity i // per_identity) and one new
    photo of each identity as queries: unit centres plus isotropic noise of relative norm ``spread``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((identities, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = spread / np.sqrt(DIM)
    photos = centres.repeat(per_identity, axis=0) + noise * rng.standard_normal((identities * per_identity, DIM))
    queries = centres + noise * rng.standard_normal((identities, DIM))
    return photos.astype(np.float32), queries.astype(np.float32)


STEMS = ("r001-c000000", "r000-c000001", "r001-c000002")  # two processes: ids follow the chunks (the input)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """3,000 clustered vectors in three shards (one of another rank), their paths, new-photo queries."""
    folder = tmp_path_factory.mktemp("shards")
    photos, queries = clustered(300)
    parts = np.split(photos, [1200, 2000])
    paths = []
    for stem, part in zip(STEMS, parts):
        paths += [f"photos/{stem}/é {i}.jpg" for i in range(len(part))]  # not ASCII: the table is UTF-8
        write_shard(folder, stem, part, paths[-len(part):], unreadable=["broken.jpg"] if stem == STEMS[1] else [])
    return {"dir": folder, "photos": photos, "queries": queries, "paths": paths}


@pytest.fixture(scope="module")
def pq_index(gallery, tmp_path_factory):
    out = tmp_path_factory.mktemp("pq") / "index"
    manifest = build_from_shards(gallery["dir"], out, factory=PQ, nprobe=4)
    return out, manifest


def test_ids_map_back_to_the_paths_in_chunk_order(gallery, tmp_path):
    manifest = build_from_shards(gallery["dir"], tmp_path / "flat", factory="IVF16,Flat")
    assert [(s["stem"], s["first_id"], s["rows"]) for s in manifest["shards"]] == [
        (STEMS[0], 0, 1200), (STEMS[1], 1200, 800), (STEMS[2], 2000, 1000)]
    assert manifest["ntotal"] == 3000 and manifest["unreadable"] == 1 and manifest["skipped"] == []
    index = ShardIndex.load(tmp_path / "flat")
    assert index.paths_of(np.arange(3000)) == gallery["paths"]
    assert index.paths_of([-1, 2999]) == [None, gallery["paths"][2999]]
    # every stored photo, searched exactly (all lists, flat codes), finds itself first
    sample = np.arange(0, 3000, 37)
    hits = index.search(gallery["photos"][sample], k=3, nprobe=16)
    assert hits.ids[:, 0].tolist() == sample.tolist()
    assert [p[0] for p in hits.paths] == [gallery["paths"][i] for i in sample]
    np.testing.assert_allclose(hits.scores[:, 0], 1.0, atol=1e-5)  # cosine of a vector with itself
    with pytest.raises(IndexError, match="id 3000 is not in the index"):
        index.paths_of([3000])


def test_exact_search_over_the_shards_is_brute_force(gallery):
    queries = gallery["queries"][:20]
    x = gallery["photos"] / np.linalg.norm(gallery["photos"], axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores, ids = exact_search(gallery["dir"], queries, k=5)
    assert ids.tolist() == np.argsort(-(q @ x.T), axis=1)[:, :5].tolist()
    distances = np.linalg.norm(queries[:, None] - gallery["photos"][None], axis=2)
    scores, ids = exact_search(gallery["dir"], queries, k=5, metric="euclidean")
    assert ids.tolist() == np.argsort(distances, axis=1)[:, :5].tolist()
    np.testing.assert_allclose(scores, np.sort(distances, axis=1)[:, :5], rtol=1e-4)


def test_ivf_pq_recall_at_10_against_exact_search(gallery, pq_index):
    # Each query's 10 exact neighbours are the 10 photos of its identity (cosine ~0.94 to its centre,
    # ~0 to other identities'), a gap far wider than 4-bit PQ's error, so PQ keeps them and only
    # their order (recall@1) suffers; 4 of 16 lists hold a cluster's photos but at its lists'
    # borders. Measured 0.997 here; 0.9 leaves room for other BLAS/faiss builds, while an id offset
    # off by one shard, or a metric mix-up (raw inner products on unnormalised rows), drops it below 0.5.
    out, manifest = pq_index
    assert manifest["factory"] == PQ and manifest["nprobe"] == 4
    index = ShardIndex.load(out)
    hits = index.search(gallery["queries"], k=10)
    _, truth = exact_search(gallery["dir"], gallery["queries"], k=10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(hits.ids.tolist(), truth.tolist())])
    assert recall >= 0.9
    assert index.search(gallery["queries"][:5], k=10, nprobe=16).ids.shape == (5, 10)
    with pytest.raises(ValueError, match="nprobe must lie in 1..16"):
        index.search(gallery["queries"][:1], nprobe=17)
    with pytest.raises(ValueError, match="queries: dimension 8 does not match the index's 32"):
        index.search(np.ones((1, 8)))


def test_the_vectors_are_read_shard_by_shard(tmp_path, monkeypatch):
    # 16 shards of 1,000 x 128 float32 (512 KiB each, 8 MiB in all), added 250 rows at a time: numpy's
    # allocations during the build (tracemalloc traces them; memory maps are not allocations) are a
    # block's copies, the training sample (640 vectors, 320 KiB) and the paths' offsets (8 bytes a
    # vector), about 1 MiB; reading the shards whole, or all at once, would take 8 MiB more.
    monkeypatch.setattr(sh, "ADD_BLOCK", 250)
    rng = np.random.default_rng(1)
    for chunk in range(16):
        write_shard(tmp_path / "shards", f"r000-c{chunk:06d}", rng.standard_normal((1000, 128)), dim=128)
    tracemalloc.start()
    try:
        build_from_shards(tmp_path / "shards", tmp_path / "index", factory=PQ)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    total = 16 * 1000 * 128 * 4
    assert peak < total / 4, f"peak {peak} bytes of numpy allocations for {total} bytes of shards"
    assert ShardIndex.load(tmp_path / "index").ntotal == 16_000


def test_an_on_disk_build_searches_as_the_in_memory_one(gallery, pq_index, tmp_path):
    out = tmp_path / "ondisk"
    # blocks of 700 vectors: boundaries inside shards, five block indexes merged
    manifest = build_from_shards(gallery["dir"], out, factory=PQ, nprobe=4, on_disk=True, block_rows=700)
    assert manifest["files"]["ivfdata"] and (out / manifest["files"]["ivfdata"]).stat().st_size > 0
    assert not any(p.name.startswith("blocks-") for p in out.iterdir())  # the block indexes are gone
    moved = tmp_path / "moved"
    shutil.move(out, moved)  # the .ivfdata is found beside the index file, not where it was built
    on_disk, in_memory = ShardIndex.load(moved), ShardIndex.load(pq_index[0])
    for nprobe in (1, 4, 16):
        a, b = on_disk.search(gallery["queries"], 10, nprobe), in_memory.search(gallery["queries"], 10, nprobe)
        assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores) and a.paths == b.paths


def test_euclidean_scores_are_distances(gallery, tmp_path):
    build_from_shards(gallery["dir"], tmp_path / "l2", factory="IVF16,Flat", metric="euclidean", nprobe=16)
    index = ShardIndex.load(tmp_path / "l2")
    hits = index.search(gallery["queries"][:10], k=5)
    scores, ids = exact_search(gallery["dir"], gallery["queries"][:10], k=5, metric="euclidean")
    assert np.array_equal(hits.ids, ids)
    np.testing.assert_allclose(hits.scores, scores, rtol=1e-4)


def good_shards(folder: Path) -> Path:
    photos, _ = clustered(40, seed=2)
    write_shard(folder, "r000-c000000", photos[:200])
    write_shard(folder, "r000-c000001", photos[200:])
    return folder


def corrupt_npy(folder: Path) -> None:
    (folder / "r000-c000001.npy").write_bytes(b"\x93NUMPY not really")


def other_dim(folder: Path) -> None:
    write_shard(folder, "r000-c000001", np.ones((3, 8)), dim=8)


def other_model(folder: Path) -> None:
    write_shard(folder, "r000-c000001", np.ones((3, DIM)), model=MODEL | {"sha256": "cd" * 32})


def same_chunk(folder: Path) -> None:
    write_shard(folder, "r001-c000001", np.ones((3, DIM)))


def detections(folder: Path) -> None:
    write_shard(folder, "r000-c000001", np.ones((3, DIM)), kind="detections")


def rows_short(folder: Path) -> None:
    write_shard(folder, "r000-c000001", np.ones((3, DIM)), rows=4)


def npy_short(folder: Path) -> None:
    np.save(folder / "r000-c000001.npy", np.ones((150, DIM), np.float32))  # the JSON still says 200


def npy_gone(folder: Path) -> None:
    (folder / "r000-c000001.npy").unlink()


def nan_row(folder: Path) -> None:
    vectors = np.load(folder / "r000-c000001.npy")
    vectors[7, 3] = np.nan
    np.save(folder / "r000-c000001.npy", vectors)


@pytest.mark.parametrize(("damage", "message"), [
    (corrupt_npy, r"r000-c000001.npy: not a readable .npy file"),
    (other_dim, r"r000-c000001.json: 8-D vectors, but the shards before hold 32-D ones"),
    (other_model, r"r000-c000001.json: made by tiny.ckpt \(embedding, sha256 cdcdcdcdcdcd\), but the shards "
                  r"before by tiny.ckpt \(embedding, sha256 abababababab\)"),
    (same_chunk, r"r001-c000001.json and .*r000-c000001.json both hold chunk 1"),
    (detections, r"r000-c000001.json: a shard of 'detections', not of 'embeddings'"),
    (rows_short, r"r000-c000001.json: 'rows' is 4 but 'paths' lists 3 photos"),
    (npy_short, r"r000-c000001.npy: holds float32 \(150, 32\), but its JSON says float32 \(200, 32\)"),
    (npy_gone, r"r000-c000001.npy: missing, but its shard's JSON exists"),
    (nan_row, r"r000-c000001.npy: 1 vector\(s\) hold NaN or infinite values \(rows \[7\]\)"),
])
def test_a_bad_shard_stops_the_build_naming_it_and_leaves_nothing(tmp_path, damage, message):
    damage(good_shards(tmp_path / "shards"))
    with pytest.raises(ValueError, match=message):
        build_from_shards(tmp_path / "shards", tmp_path / "index", factory="IVF4,Flat")
    assert [p.name for p in (tmp_path / "index").iterdir()] == [".lock"]


def test_an_unfinished_shard_is_skipped_and_counted(tmp_path):
    folder = good_shards(tmp_path / "run" / "shards")
    np.save(folder / "r001-c000000.npy", np.ones((5, DIM), np.float32))  # predict has not written its JSON yet
    # predict's out folder given: its shards/ is read
    manifest = build_from_shards(tmp_path / "run", tmp_path / "index", factory="IVF4,Flat")
    assert manifest["ntotal"] == 400
    assert manifest["skipped"] == [{"file": str(folder / "r001-c000000.npy"),
                                    "reason": "no JSON: not finished by predict"}]
    assert list_shards(folder)[1] == manifest["skipped"]


def test_refusals_before_any_work(tmp_path, monkeypatch):
    folder = good_shards(tmp_path / "shards")
    with pytest.raises(ValueError, match="'IDMap2,Flat' is not an IVF index"):
        build_from_shards(folder, tmp_path / "index", factory="IDMap2,Flat")
    with pytest.raises(ValueError, match="out .* is the shard folder"):
        build_from_shards(folder, folder)
    with pytest.raises(FileNotFoundError, match="shard folder .*nowhere does not exist"):
        build_from_shards(tmp_path / "nowhere", tmp_path / "index")
    empty = tmp_path / "empty"
    write_shard(empty, "r000-c000000", np.zeros((0, DIM)))
    with pytest.raises(ValueError, match="no vectors in 1 complete embedding shard"):
        build_from_shards(empty, tmp_path / "index")
    monkeypatch.setattr(sh, "LOCK_TIMEOUT_S", 0.05)
    with exclusive_flock(tmp_path / "index" / ".lock", 1, TimeoutError, "test"):
        with pytest.raises(RuntimeError, match="another build of the shard index .* is running"):
            build_from_shards(folder, tmp_path / "index", factory="IVF4,Flat")


def test_a_rebuild_replaces_the_old_files_and_a_killed_builds(tmp_path):
    folder = good_shards(tmp_path / "shards")
    first = build_from_shards(folder, tmp_path / "index", factory="IVF4,Flat")
    killed = ["index-0123456789abcdef.faiss", ".paths-0123456789abcdef.bin.tmp-99999-ab12cd34"]
    for name in killed:
        (tmp_path / "index" / name).write_bytes(b"half")
    (tmp_path / "index" / "notes.txt").write_text("mine")  # not a build's: kept
    second = build_from_shards(folder, tmp_path / "index", factory=PQ.replace("16", "4"))
    names = sorted(p.name for p in (tmp_path / "index").iterdir())
    assert names == sorted([".lock", "manifest.json", "notes.txt"] + [second["files"][k] for k in
                                                                      ("index", "paths", "offsets")])
    assert first["build"] != second["build"]
    assert ShardIndex.load(tmp_path / "index").manifest["factory"] == "IVF4,PQ8x4np"


def test_a_reader_of_a_manifest_replaced_midway_reads_the_new_build(tmp_path, monkeypatch):
    folder = good_shards(tmp_path / "shards")
    old = build_from_shards(folder, tmp_path / "index", factory="IVF4,Flat")
    new = build_from_shards(folder, tmp_path / "index", factory="IVF8,Flat")  # removes the old build's files
    reads = iter([old])  # the manifest as a reader read it just before the rebuild
    real = sh.read_json
    monkeypatch.setattr(sh, "read_json", lambda *a: next(reads, None) or real(*a))
    index = ShardIndex.load(tmp_path / "index")
    assert index.manifest["build"] == new["build"] and index.ntotal == 400


def test_auto_factory_follows_the_faiss_guideline():
    assert auto_factory(1_000_000, 128) == "IVF4096,PQ64np"
    assert auto_factory(10_000_000, 128) == "IVF16384_HNSW32,PQ64np"  # centroids found through HNSW
    assert auto_factory(3000, 100) == "IVF64,PQ50np"  # m divides dim
    assert auto_factory(500, 32) == "IVF16,PQ16np"


def test_the_tool_builds_the_index(tmp_path):
    folder = good_shards(tmp_path / "shards")
    out = run_tool("build_shard_index.py", f"shards={folder}", f"out={tmp_path / 'index'}", "factory='IVF4,Flat'",
                   "nprobe=2")
    assert "400 vectors from 2 shards, index IVF4,Flat (nprobe 2)" in out.stdout
    assert ShardIndex.load(tmp_path / "index").ntotal == 400
    assert sh.INDEX_FORMAT == json.loads((tmp_path / "index" / "manifest.json").read_text())["format"]
