import json

import numpy as np
import pytest

from mnet_vision.images import read_rgb
from mnet_vision.inference.detect import Detector
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.predict.run import predict_photos
from mnet_vision.predict.shards import read_shard, shard_dir, shard_jsons
from mnet_vision.predict.sources import chunked, photo_paths
from tests.predict.photos import UNREADABLE, photo_tree

ONE_CPU = {"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", "devices": 1, "enable_progress_bar": False}


def run(kind, ckpt, source, out, **kw):
    return predict_photos(kind, ckpt, source, out, **{"chunk_size": 4, "batch": 4, "workers": 0, "trainer": ONE_CPU,
                                                      **kw})


def union(out):
    """Every complete shard's paths, unreadable paths and rows, in chunk order."""
    paths, bad, rows = [], [], []
    for _, path in sorted(shard_jsons(out)):
        entry, array = read_shard(path, mmap=False)
        paths += entry["paths"]
        bad += [u["path"] for u in entry["unreadable"]]
        rows.append(array)
    return paths, bad, np.concatenate(rows)


def test_embedding_shards_hold_embed_arrays_rows_and_list_the_unreadable(embedding_run, tmp_path):
    ckpt = embedding_run["best_checkpoint"]
    files = photo_tree(tmp_path / "photos", count=9)
    summary = run("embeddings", ckpt, tmp_path / "photos", tmp_path / "out", workers=1)
    assert summary["predicted"] == 9 and summary["unreadable_count"] == 2 and summary["complete"]
    assert {u["path"] for u in summary["unreadable"]} == {str(tmp_path / "photos" / n) for n in UNREADABLE}
    assert all(u["reason"] for u in summary["unreadable"])
    assert summary["this_run"]["chunks_run"] == [0, 1, 2] and summary["this_run"]["photos"] == 11
    embedder = Embedder(ckpt)
    for chunk, path in shard_jsons(tmp_path / "out"):
        entry, array = read_shard(path)
        assert entry["chunk"] == chunk and entry["rank"] == 0 and entry["model"]["task"] == "EmbeddingTask"
        listed = [str(p) for p in files[4 * chunk:4 * chunk + 4]]
        assert entry["paths"] + [u["path"] for u in entry["unreadable"]] == sorted(
            listed, key=listed.index)  # the chunk's photos, in the source's order
        expected = embedder.embed_arrays([read_rgb(p) for p in entry["paths"]])
        np.testing.assert_allclose(array, expected, atol=1e-6)
    assert json.loads((tmp_path / "out" / "predict.json").read_text()) == summary


def test_a_rerun_recomputes_only_the_missing_chunk_and_refuses_another_model(embedding_run, attribute_run, tmp_path):
    ckpt = embedding_run["best_checkpoint"]
    photo_tree(tmp_path / "photos", count=14)
    (tmp_path / "list.txt").write_text("\n".join(str(p) for p in photo_paths(tmp_path / "photos").paths))
    run("embeddings", ckpt, tmp_path / "list.txt", tmp_path / "out")
    before = union(tmp_path / "out")
    (shard_dir(tmp_path / "out") / "r000-c000002.json").unlink()
    summary = run("embeddings", ckpt, tmp_path / "list.txt", tmp_path / "out")
    assert summary["this_run"]["chunks_run"] == [2] and summary["complete"]
    after = union(tmp_path / "out")
    assert after[:2] == before[:2] and np.array_equal(after[2], before[2])
    assert run("embeddings", ckpt, tmp_path / "list.txt", tmp_path / "out")["this_run"]["chunks_run"] == []
    with pytest.raises(ValueError, match=r"r000-c000000.json was predicted by model .* this run's is"):
        run("embeddings", attribute_run["best_checkpoint"], tmp_path / "list.txt", tmp_path / "out")
    with pytest.raises(ValueError, match=r"r000-c000000.json holds embeddings, this run predicts attributes"):
        run("attributes", attribute_run["best_checkpoint"], tmp_path / "list.txt", tmp_path / "out")
    with pytest.raises(ValueError, match=r"r000-c000000.json holds other photos than chunk 0"):
        run("embeddings", ckpt, tmp_path / "list.txt", tmp_path / "out", chunk_size=3)


def test_detections_of_a_coco_json_are_the_detectors_entries(detection_run, tmp_path):
    ckpt = detection_run["best_checkpoint"]
    photo_tree(tmp_path / "photos", count=5)
    names = [p.relative_to(tmp_path / "photos").as_posix() for p in photo_paths(tmp_path / "photos").paths]
    coco = {"images": [{"id": i, "file_name": n} for i, n in enumerate(names)]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    summary = run("detections", ckpt, tmp_path / "coco.json", tmp_path / "out", images=tmp_path / "photos", score=0.05)
    assert summary["predicted"] == 5 and summary["unreadable_count"] == 2
    detector = Detector(ckpt)
    records = []
    for _, path in shard_jsons(tmp_path / "out"):
        entry, array = read_shard(path)
        assert array is None and [r["file"] for r in entry["records"]] == entry["paths"]
        records += entry["records"]
        found = detector.detect([read_rgb(p) for p in entry["paths"]], 0.05)
        assert [r["detections"] for r in entry["records"]] == found
    assert sum(len(r["detections"]) for r in records) > 0  # untrained but scoring: some boxes over 0.05


def test_geolocation_and_attributes_records_of_csv_lists(geo_run, attribute_run, tmp_path):
    photo_tree(tmp_path / "photos", count=5)
    relative = [p.relative_to(tmp_path / "photos").as_posix() for p in photo_paths(tmp_path / "photos").paths]
    (tmp_path / "photos" / "list.csv").write_text("path,note\n" + "".join(f"{r},x\n" for r in relative))
    run("geolocation", geo_run["best_checkpoint"], tmp_path / "photos" / "list.csv", tmp_path / "geo", top_k=3)
    geolocator = Geolocator(geo_run["best_checkpoint"])
    for _, path in shard_jsons(tmp_path / "geo"):
        entry, _ = read_shard(path)
        _, cells = geolocator.locate([read_rgb(p) for p in entry["paths"]], 3)
        assert [r["cells"] for r in entry["records"]] == cells
        assert all((r["lat"], r["lon"]) == (c[0]["lat"], c[0]["lon"]) for r, c in zip(entry["records"], cells))
    summary = run("attributes", attribute_run["best_checkpoint"], tmp_path / "photos" / "list.csv", tmp_path / "attr")
    assert summary["predicted"] == 5
    paths, _, probs = union(tmp_path / "attr")
    records = [r for _, p in shard_jsons(tmp_path / "attr") for r in read_shard(p)[0]["records"]]
    assert probs.shape == (5, 17) and ((probs > 0) & (probs < 1)).all()
    assert [r["file"] for r in records] == paths
    np.testing.assert_allclose([list(r["attributes"].values()) for r in records], probs, atol=1e-6)
    assert list(records[0]["attributes"])[:2] == ["attr0", "attr1"]


def test_bad_settings_are_refused_before_any_work(embedding_run, tmp_path):
    photo_tree(tmp_path / "photos", count=2)
    with pytest.raises(ValueError, match="kind='faces': expected one of embeddings, detections"):
        run("faces", embedding_run["best_checkpoint"], tmp_path / "photos", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="ckpt=.*missing.ckpt: no such checkpoint"):
        run("embeddings", tmp_path / "missing.ckpt", tmp_path / "photos", tmp_path / "out")
    with pytest.raises(ValueError, match="workers=-1"):
        run("embeddings", embedding_run["best_checkpoint"], tmp_path / "photos", tmp_path / "out", workers=-1)
    assert not (tmp_path / "out" / "shards").exists()
    assert chunked(photo_paths(tmp_path / "photos").paths, 4)  # the input itself is fine


def test_a_chunk_of_unreadable_photos_is_a_shard_with_no_rows(attribute_run, tmp_path):
    photo_tree(tmp_path / "photos", count=3)
    (tmp_path / "list.txt").write_text("gone.png\nphotos/broken.jpg\nphotos/p000.png\nphotos/a/p001.png\n"
                                       "photos/deep/truncated.png\nphotos/deep/b/p002.png\n")
    summary = run("attributes", attribute_run["best_checkpoint"], tmp_path / "list.txt", tmp_path / "out",
                  chunk_size=2, batch=1)
    assert summary["predicted"] == 3 and summary["unreadable_count"] == 3 and summary["complete"]
    entry, array = read_shard(shard_dir(tmp_path / "out") / "r000-c000000.json")
    assert entry["rows"] == 0 and entry["records"] == [] and array.shape == (0, 17)
    assert [u["reason"] for u in entry["unreadable"]][0] == "file not found"
    entry, array = read_shard(shard_dir(tmp_path / "out") / "r000-c000002.json")  # parts of 1: unreadable, then one
    assert entry["paths"] == [str(tmp_path / "photos/deep/b/p002.png")] and array.shape == (1, 17)
    assert [r["file"] for r in entry["records"]] == entry["paths"]
