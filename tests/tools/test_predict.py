"""tools/predict.py as a user runs it: killed mid-run and rerun, and on two processes (DDP over gloo)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from mnet_vision.predict.run import predict_photos
from mnet_vision.predict.shards import read_shard, shard_jsons
from tests.helpers.cli import REPO, run_tool
from tests.predict.photos import photo_tree

ONE_CPU = {"_target_": "lightning.pytorch.Trainer", "accelerator": "cpu", "devices": 1, "enable_progress_bar": False}


def _outputs(out):
    """``{path: row}`` of every complete shard, the unreadable paths, and each chunk's number of shards."""
    rows, bad, seen = {}, [], {}
    for chunk, path in sorted(shard_jsons(out)):  # chunk order: the source's order
        entry, array = read_shard(path, mmap=False)
        seen[chunk] = seen.get(chunk, 0) + 1
        assert not set(entry["paths"]) & set(rows), f"{path} repeats photos of another shard"
        rows.update(zip(entry["paths"], array))
        bad += [u["path"] for u in entry["unreadable"]]
    return rows, sorted(bad), seen


def _assert_same(got, expected):
    assert list(got[0]) == list(expected[0]) and got[1] == expected[1]
    np.testing.assert_allclose(np.stack(list(got[0].values())), np.stack(list(expected[0].values())), atol=1e-6)


def test_a_killed_run_completes_on_rerun_with_an_uninterrupted_runs_output(embedding_run, tmp_path):
    ckpt = embedding_run["best_checkpoint"]
    photo_tree(tmp_path / "photos", count=40)
    args = ["kind=embeddings", f"ckpt={ckpt}", f"input={tmp_path / 'photos'}", f"out={tmp_path / 'out'}",
            "chunk_size=1", "workers=0", "trainer.enable_progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "predict.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while proc.poll() is None and not any(shard_jsons(tmp_path / "out")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{proc.stderr.read()[-2000:]}"
    done = {chunk for chunk, _ in shard_jsons(tmp_path / "out")}
    assert 0 < len(done) < 42, f"killed after {len(done)} of 42 chunks: nothing left to resume"
    out = run_tool("predict.py", *args)
    summary = json.loads((tmp_path / "out" / "predict.json").read_text())
    assert summary["this_run"]["chunks_run"] == sorted(set(range(42)) - done) and summary["complete"]
    assert "photos predicted in 42 shards" in out.stdout
    predict_photos("embeddings", ckpt, tmp_path / "photos", tmp_path / "whole", chunk_size=1, workers=0,
                   trainer=ONE_CPU)
    got, expected = _outputs(tmp_path / "out"), _outputs(tmp_path / "whole")
    assert set(got[2].values()) == {1} and len(got[2]) == 42
    _assert_same(got, expected)
    assert not [p.name for p in (tmp_path / "out" / "shards").iterdir() if p.name.startswith(".")]  # no temporaries


def test_two_ddp_processes_cover_every_photo_once_as_one_process_does(embedding_run, tmp_path):
    ckpt = embedding_run["best_checkpoint"]
    files = photo_tree(tmp_path / "photos", count=13)
    out = run_tool("predict.py", "kind=embeddings", f"ckpt={ckpt}", f"input={tmp_path / 'photos'}",
                   f"out={tmp_path / 'ddp'}", "chunk_size=2", "batch=2", "workers=1", "trainer=ddp",
                   "trainer.devices=2", "trainer.accelerator=cpu")
    assert "on 2 process(es)" in out.stdout
    summary = json.loads((tmp_path / "ddp" / "predict.json").read_text())
    assert [p["rank"] for p in summary["this_run"]["per_process"]] == [0, 1]
    assert {json.loads(p.read_text())["rank"] for _, p in shard_jsons(tmp_path / "ddp")} == {0, 1}
    got = _outputs(tmp_path / "ddp")
    assert sorted([*got[0], *got[1]]) == sorted(str(f) for f in files)  # every photo, none twice (_outputs checks)
    assert set(got[2]) == set(range(8)) and set(got[2].values()) == {1}
    predict_photos("embeddings", ckpt, tmp_path / "photos", tmp_path / "one", chunk_size=2, batch=2, workers=0,
                   trainer=ONE_CPU)
    _assert_same(got, _outputs(tmp_path / "one"))
