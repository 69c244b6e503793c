"""A FaceIndex on disk under kills, concurrent readers and concurrent writers (issue 13, "nothing
lost"): the vectors and their names are one unit, and appends from two writers both survive."""
import fcntl
import os
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import faiss
import numpy as np
import pytest

from mnet_vision.index import FaceIndex
from mnet_vision.index import face_index as fi
from mnet_vision.textfiles import write_json

REPO = Path(__file__).resolve().parents[2]
DIM = 16


def vectors(names: list[str]) -> np.ndarray:
    """One vector per name, a function of the name alone: any id whose stored vector is not its
    name's vector shows vectors and metadata from two different saves (or writers)."""
    return np.stack([np.random.default_rng(zlib.crc32(n.encode())).normal(size=DIM) for n in names])


def gallery(names: list[str]) -> FaceIndex:
    index = FaceIndex.create(DIM, "IDMap2,Flat")
    index.add(vectors(names), names, [f"{n}.png" for n in names])
    return index


def stored_pairs(path: Path) -> list[str]:
    """The identities of the index at ``path``, after checking that every id's vector is its
    identity's vector and its source its identity's file."""
    index = FaceIndex.load(path)
    names = [index.entries[i]["identity"] for i in sorted(index.entries)]
    stored = np.stack([index.index.reconstruct(i) for i in sorted(index.entries)])
    expected = vectors(names)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(stored, expected, atol=1e-5)
    assert all(index.entries[i]["source"] == f"{index.entries[i]['identity']}.png" for i in index.entries)
    return names


def run_python(code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


OLD = [f"old{i}" for i in range(3)]
NEW = [f"new{i}" for i in range(5)]

# A save of NEW over OLD that dies (os._exit: no cleanup, no finally) at a hook point: in the middle
# of writing the index, or right after the first / second rename the save makes.
KILLED_SAVE = """
import os, sys
import faiss
from tests.index.test_index_on_disk import NEW, gallery

path, hook = sys.argv[1], sys.argv[2]
if hook == "writing":
    real_write = faiss.write_index
    def write_then_die(index, target):
        real_write(index, target)
        os._exit(9)
    faiss.write_index = write_then_die
else:
    real_replace, renames = os.replace, []
    def replace_then_die(src, dst):
        real_replace(src, dst)
        renames.append(dst)
        if len(renames) == int(hook):
            os._exit(9)
    os.replace = replace_then_die
gallery(NEW).save(path)
"""


@pytest.mark.parametrize("hook", ["writing", "1", "2"])
def test_a_save_killed_at_any_point_leaves_a_consistent_pair(tmp_path, hook):
    path = gallery(OLD).save(tmp_path / "faces.faiss")
    run_python(KILLED_SAVE, str(path), hook, check=False)
    names = stored_pairs(path)  # loads, and every vector is its name's: never old vectors with new names
    assert names in (OLD, NEW)
    if hook == "writing":
        assert names == OLD  # killed before anything was renamed: the old index with its old metadata
    gallery(NEW).save(path)  # the next save works and clears what the killed one left
    assert stored_pairs(path) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.faiss", "faces.faiss.lock"]


def test_readers_never_see_a_torn_pair_during_repeated_saves(tmp_path, monkeypatch):
    """A reader loop while another thread saves two galleries in turn over the same path. Every
    rename sleeps a little, which widens any window between two renames (the old format had one)."""
    path = tmp_path / "faces.faiss"
    galleries = [gallery(OLD), gallery(NEW)]
    galleries[0].save(path)
    real_replace = os.replace

    def slow_replace(src, dst):
        real_replace(src, dst)
        time.sleep(0.003)

    monkeypatch.setattr(os, "replace", slow_replace)
    done = threading.Event()

    def writer():
        try:
            for i in range(60):
                galleries[i % 2].save(path)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen, loads = set(), 0
    try:
        while not done.is_set() or loads < 20:
            seen.add(tuple(stored_pairs(path)))
            loads += 1
    finally:
        done.set()
        thread.join()
    assert seen <= {tuple(OLD), tuple(NEW)} and loads >= 20


# One writer process: waits for the test's go, then appends in rounds the way build_index does
# (load, add, save; a pause between load and save, where an embedder would run). With
# mode=append_to it uses the one-call locked append instead, starting from no file at all.
APPENDER = """
import sys, time
from pathlib import Path
from mnet_vision.index import FaceIndex
from tests.index.test_index_on_disk import DIM, vectors

path, writer, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(path.parent / f"ready-{writer}").touch()
while not (path.parent / "go").exists():
    time.sleep(0.005)
for round in range(6):
    names = [f"{writer}-{round}-{j}" for j in range(4)]
    sources = [f"{n}.png" for n in names]
    if mode == "append_to":
        FaceIndex.append_to(path, vectors(names), names, sources, factory="IDMap2,Flat")
    else:
        index = FaceIndex.load(path)
        index.add(vectors(names), names, sources)
        time.sleep(0.03)
        index.save(path)
"""


@pytest.mark.parametrize("mode", ["load-add-save", "append_to"])
def test_two_concurrent_appenders_keep_every_vector_with_its_name(tmp_path, mode):
    path = tmp_path / "faces.faiss"
    if mode == "load-add-save":
        gallery(OLD).save(path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), w, mode], cwd=REPO, env=env,
                              stderr=subprocess.PIPE, text=True) for w in ("a", "b")]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{w}").exists() for w in "ab") and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    names = stored_pairs(path)
    expected = ((OLD if mode == "load-add-save" else [])
                + [f"{w}-{r}-{j}" for w in "ab" for r in range(6) for j in range(4)])
    assert sorted(names) == sorted(expected)  # all 48 appended vectors, each with its own name
    assert FaceIndex.load(path).next_id == len(expected)


def test_an_append_merges_what_another_writer_saved_since_the_load(tmp_path):
    path = gallery(OLD).save(tmp_path / "faces.faiss")
    mine, theirs = FaceIndex.load(path), FaceIndex.load(path)
    theirs.add(vectors(["t0", "t1"]), ["t0", "t1"], ["t0.png", "t1.png"])
    theirs.save(path)
    mine.add(vectors(["m0"]), ["m0"], ["m0.png"])
    mine.save(path)  # loads theirs under the lock and appends mine after it
    assert stored_pairs(path) == OLD + ["t0", "t1", "m0"]
    assert len(mine) == 6 and mine.entries[5]["identity"] == "m0"  # the saver holds the merged index


def test_a_writer_that_cannot_take_the_lock_says_who_holds_it(tmp_path):
    path = gallery(OLD).save(tmp_path / "faces.faiss")
    before = path.read_bytes()
    with open(tmp_path / "faces.faiss.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another writer, mid-append
        with pytest.raises(TimeoutError, match=r"faces\.faiss.*another writer holds"):
            gallery(NEW).save(path, lock_timeout=0.2)
    assert path.read_bytes() == before
    gallery(NEW).save(path, lock_timeout=0.2)  # free again
    assert stored_pairs(path) == NEW


def test_the_file_is_a_plain_faiss_index_carrying_its_metadata(tmp_path):
    path = gallery(NEW).save(tmp_path / "faces.faiss")
    assert faiss.read_index(str(path)).ntotal == 5  # faiss stops at its own end, before the metadata
    assert not (tmp_path / f"faces.faiss{fi.META_SUFFIX}").exists()  # one file: no sidecar to tear


def test_indexes_of_the_two_file_format_still_load_and_are_rewritten_as_one(tmp_path):
    """The format before issue 13: a plain faiss file plus ``<file>.meta.json``."""
    path = tmp_path / "faces.faiss"
    faiss.write_index(gallery(OLD).index, str(path))
    entries = {str(i): {"identity": n, "source": f"{n}.png"} for i, n in enumerate(OLD)}
    write_json(Path(f"{path}{fi.META_SUFFIX}"), {"factory": "IDMap2,Flat", "dim": DIM, "next_id": 3,
                                                     "entries": entries})
    index = FaceIndex.load(path)
    assert stored_pairs(path) == OLD
    index.add(vectors(["x"]), ["x"], ["x.png"])
    index.save(path)
    assert stored_pairs(path) == OLD + ["x"]
    assert not Path(f"{path}{fi.META_SUFFIX}").exists()  # the stale sidecar goes: one source of truth
