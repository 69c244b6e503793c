import json
import os
from pathlib import Path

import numpy as np
import pytest

from mnet_vision.predict.shards import (
    check_existing,
    read_shard,
    remove_incomplete,
    shard_dir,
    summarize,
    write_shard,
)

MODEL = {"source": "a.ckpt", "task": "EmbeddingTask", "sha256": "ab" * 32, "settings": {}}
CHUNKS = [[Path("/p/a.jpg"), Path("/p/b.jpg")], [Path("/p/c.jpg"), Path("/p/bad.jpg")]]
BAD = [{"path": "/p/bad.jpg", "reason": "file not found"}]


def _write_both(out):
    rows = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_shard(out, 0, 0, "embeddings", MODEL, ["/p/a.jpg", "/p/b.jpg"], [], rows[:2], None)
    write_shard(out, 1, 1, "embeddings", MODEL, ["/p/c.jpg"], BAD, rows[2:], None)
    return rows


def test_a_shard_round_trips_and_is_checked_against_its_array(tmp_path):
    rows = _write_both(tmp_path)
    entry, array = read_shard(shard_dir(tmp_path) / "r001-c000001.json")
    assert entry["paths"] == ["/p/c.jpg"] and entry["unreadable"] == BAD and entry["rows"] == 1 and entry["dim"] == 2
    assert array.dtype == np.float32 and np.array_equal(array, rows[2:])
    np.save(shard_dir(tmp_path) / "r001-c000001.npy", rows)  # a .npy that is not the JSON's
    with pytest.raises(ValueError, match=r"r001-c000001.npy holds \(3, 2\), the JSON says \(1, 2\)"):
        read_shard(shard_dir(tmp_path) / "r001-c000001.json")


def test_records_shards_carry_no_array_and_mismatched_counts_are_refused(tmp_path):
    path = write_shard(tmp_path, 0, 3, "detections", MODEL, ["/p/a.jpg"], [], None, [{"file": "/p/a.jpg"}])
    entry, array = read_shard(path)
    assert array is None and entry["records"] == [{"file": "/p/a.jpg"}] and "dim" not in entry
    assert not path.with_suffix(".npy").exists()
    with pytest.raises(ValueError, match="2 records for 1 photos"):
        write_shard(tmp_path, 0, 4, "detections", MODEL, ["/p/a.jpg"], [], None, [{}, {}])
    with pytest.raises(ValueError, match=r"needs an \(N=1, D\) array"):
        write_shard(tmp_path, 0, 5, "embeddings", MODEL, ["/p/a.jpg"], [], np.zeros((2, 3)), None)


def test_what_killed_writers_left_is_removed_and_complete_shards_stay(tmp_path):
    _write_both(tmp_path)
    folder = shard_dir(tmp_path)
    np.save(folder / "r001-c000002.npy", np.zeros((2, 2), np.float32))  # a killed rank 1 got this far only
    (folder / ".r001-c000003.npy.tmp-999999999-ab12cd34").write_bytes(b"half")  # killed mid-write (no such pid)
    (folder / f".r000-c000004.json.tmp-{os.getpid()}-ab12cd34").write_bytes(b"{")  # a live writer's: kept
    removed = remove_incomplete(tmp_path)
    assert sorted(p.name for p in removed) == [".r001-c000003.npy.tmp-999999999-ab12cd34", "r001-c000002.npy"]
    assert sorted(p.name for p in folder.iterdir()) == [f".r000-c000004.json.tmp-{os.getpid()}-ab12cd34",
                                                       "r000-c000000.json", "r000-c000000.npy",
                                                       "r001-c000001.json", "r001-c000001.npy"]


def test_existing_shards_are_done_or_refused_by_name(tmp_path):
    assert check_existing(tmp_path, "embeddings", MODEL, CHUNKS) == set()
    _write_both(tmp_path)
    assert check_existing(tmp_path, "embeddings", MODEL, CHUNKS) == {0, 1}
    cases = [("attributes", MODEL, CHUNKS, "holds embeddings, this run predicts attributes"),
             ("embeddings", {**MODEL, "sha256": "cd" * 32}, CHUNKS, "was predicted by model a.ckpt"),
             ("embeddings", {**MODEL, "settings": {"score": 0.5}}, CHUNKS, "with settings {}"),
             ("embeddings", MODEL, CHUNKS[:1], "is chunk 1, past this input's 1 chunks"),
             ("embeddings", MODEL, [CHUNKS[0], [Path("/p/c.jpg")]], "holds other photos than chunk 1")]
    for kind, model, chunks, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            check_existing(tmp_path, kind, model, chunks)
        assert str(shard_dir(tmp_path)) in str(err.value)
    write_shard(tmp_path, 3, 1, "embeddings", MODEL, ["/p/c.jpg"], BAD, np.zeros((1, 2), np.float32), None)
    with pytest.raises(ValueError, match="r003-c000001.json holds chunk 1, as r001-c000001.json does"):
        check_existing(tmp_path, "embeddings", MODEL, CHUNKS)


def test_the_summary_counts_every_complete_shard(tmp_path):
    _write_both(tmp_path)
    summary_path = summarize(tmp_path, 3, {"chunks_run": [1]}, "embeddings", MODEL, {"input": "/p"})
    summary = json.loads(summary_path.read_text())
    assert summary["predicted"] == 3 and summary["unreadable"] == BAD and summary["unreadable_count"] == 1
    assert summary["shards"] == ["r000-c000000", "r001-c000001"] and summary["complete"] is False
    assert summary["this_run"] == {"chunks_run": [1]}
