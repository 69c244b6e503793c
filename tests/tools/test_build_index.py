"""tools/build_index.py run twice at once with add=true (issue 13): both galleries land, every
vector under its own identity."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mnet_vision.index import FaceIndex
from mnet_vision.inference.search import build_index

REPO = Path(__file__).resolve().parents[2]


def _gallery(folder: Path, people: list[Path]) -> Path:
    for person in people:
        (folder / person.name).mkdir(parents=True)
        for image in sorted(person.iterdir()):
            (folder / person.name / image.name).write_bytes(image.read_bytes())
    return folder


def test_two_concurrent_appending_tools_keep_both_galleries(tmp_path, embedding_run):
    ckpt = embedding_run["best_checkpoint"]
    people = sorted((Path(embedding_run["run_dir"]).parent / "data" / "test").iterdir())
    assert len(people) == 6 and all(len(list(p.iterdir())) == 3 for p in people)  # the tiny identity set
    base, first, second = (_gallery(tmp_path / name, group)
                           for name, group in (("base", people[:2]), ("first", people[2:4]), ("second", people[4:6])))
    out = tmp_path / "faces.faiss"
    build_index(ckpt, base, out)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    tools = [subprocess.Popen([sys.executable, str(REPO / "tools" / "build_index.py"), f"ckpt={ckpt}",
                               f"gallery={gallery}", f"out={out}", "add=true"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for gallery in (first, second)]
    for tool in tools:
        stdout, stderr = tool.communicate(timeout=300)
        assert tool.returncode == 0, stderr[-3000:]
        assert "(6 added" in stdout
    index = FaceIndex.load(out)
    stored = {index.entries[i]["source"]: (index.entries[i]["identity"], index.index.reconstruct(i))
              for i in index.entries}
    galleries = [base, first, second]
    expected = {str(p): p.parent.name for g in galleries for p in g.glob("*/*")}
    assert {s: identity for s, (identity, _) in stored.items()} == expected  # all 18, each with its name
    # each vector is its own file's embedding, not another writer's: a fresh build of each gallery agrees
    for gallery in galleries:
        alone = FaceIndex.load(build_index(ckpt, gallery, tmp_path / f"{gallery.name}.faiss")["index"])
        for i, entry in alone.entries.items():
            np.testing.assert_allclose(stored[entry["source"]][1], alone.index.reconstruct(i), atol=1e-5)


def test_two_concurrent_appends_to_no_index_yet_keep_both(tmp_path, embedding_run):
    """Both writers find no index and create one: the second save must not replace the first."""
    import threading

    ckpt = embedding_run["best_checkpoint"]
    people = sorted((Path(embedding_run["run_dir"]).parent / "data" / "test").iterdir())
    first, second = _gallery(tmp_path / "first", people[:2]), _gallery(tmp_path / "second", people[2:4])
    out = tmp_path / "faces.faiss"
    errors = []

    def append(gallery):
        try:
            build_index(ckpt, gallery, out, add=True)
        except Exception as err:  # surfaced below: a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=append, args=(g,)) for g in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    index = FaceIndex.load(out)
    assert sorted(e["source"] for e in index.entries.values()) == sorted(
        str(p) for g in (first, second) for p in g.glob("*/*"))
