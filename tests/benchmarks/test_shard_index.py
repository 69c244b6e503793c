"""The shard-index benchmark: streamed face-like shards in predict's format, the rows and the table."""
import inspect
import json

import numpy as np

from mnet_vision.benchmarks.shard_index import compare_shard_indexes, face_like_queries, face_like_shards, report
from mnet_vision.index.shards import exact_search, list_shards

SHAPE = {"n": 2000, "dim": 128, "per_identity": 5, "shard_rows": 600}


def test_face_like_shards_are_predict_shards_of_clustered_unit_photos(tmp_path):
    written = face_like_shards(tmp_path / "a", **SHAPE, seed=3)
    assert [p.name for p in written] == [f"r000-c{c:06d}.json" for c in range(4)] == [
        p.name for p in list_shards(tmp_path / "a")[0]]
    records = [json.loads(p.read_text()) for p in written]
    assert [r["rows"] for r in records] == [600, 600, 600, 200]
    assert records[1]["paths"][:6] == [f"synthetic/{120 + i // 5:08d}/{i % 5}.jpg" for i in range(6)]
    photos = np.concatenate([np.load(p.with_suffix(".npy")) for p in written])
    assert photos.shape == (2000, 128) and photos.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(photos, axis=1), 1, atol=1e-5)
    same = np.einsum("ij,ij->i", photos[0::5], photos[1::5])  # two photos of each identity
    assert 0.5 < same.mean() < 0.7
    face_like_shards(tmp_path / "b", **SHAPE, seed=3)  # seeded: the same bytes again
    assert all((tmp_path / "b" / p.name).with_suffix(".npy").read_bytes() == p.with_suffix(".npy").read_bytes()
               for p in written)

    queries = face_like_queries(**SHAPE, queries=40, seed=3)
    scores, ids = exact_search(tmp_path / "a", queries, k=5)
    assert scores[:, 0].max() < 0.95  # new photos, not copies of stored rows
    # ... of stored identities: a query's nearest photos are its identity's (the centres regenerated
    # from the shards' seeds); queries of made-up identities would have neighbours of many
    owners = ids // 5
    assert np.mean(owners[:, 1:4] == owners[:, :1]) > 0.9


def test_a_tiny_run_has_the_exact_peer_every_row_and_leaves_no_shards(tmp_path):
    args = {"sizes": (3000,), "dim": 32, "factories": ("IVF16,PQ8x4np",), "nprobes": (1, 16, 64),
            "on_disk": (False, True), "queries": 50, "shard_rows": 1000, "repeats": 1, "threads": 1,
            "tmp_dir": str(tmp_path), "progress": False}
    rows = compare_shard_indexes(**args)
    # nprobe 64 is past the 16 lists: left out
    assert [(r["index"], r["on_disk"], r["nprobe"]) for r in rows] == [
        ("exact (Flat over the shards)", False, None), ("IVF16,PQ8x4np", False, 1), ("IVF16,PQ8x4np", False, 16),
        ("IVF16,PQ8x4np", True, 1), ("IVF16,PQ8x4np", True, 16)]
    exact, memory, disk = rows[0], rows[1:3], rows[3:]
    assert exact["recall1"] == exact["recall10"] == exact["speedup"] == 1.0
    assert [r["recall10"] for r in memory] == [r["recall10"] for r in disk]  # the same index, lists on disk
    # 4 bytes a vector lose much (0.45 measured); ids off or metrics mixed up would give ~0
    assert memory[1]["recall10"] > 0.3 and memory[1]["recall10"] >= memory[0]["recall10"]
    for r in rows[1:]:
        assert r["peak_rss_mib"] >= r["base_rss_mib"] > 0 and r["numpy_peak_mib"] > 0 and r["index_mib"] > 0
        assert r["build_s"] >= r["train_s"] + r["add_s"]
    assert list(tmp_path.iterdir()) == []  # the shards and indexes were removed
    bound = inspect.signature(compare_shard_indexes).bind(**args)
    bound.apply_defaults()
    header, *table = report(rows, bound.arguments).splitlines()
    assert header.startswith("faiss ") and "shards of 1,000 rows" in header and "auto = 3,000: IVF64,PQ16np" in header
    assert table[0].startswith("| N | index | on disk | nprobe |") and len(table) == 2 + len(rows)
