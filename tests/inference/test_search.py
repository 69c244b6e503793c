"""Face search end to end: a gallery embedded with a checkpoint, added to, searched; bad input."""
from pathlib import Path

import faiss
import numpy as np
import pytest

from mnet_vision.index import FaceIndex
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.search import build_index, gallery_entries, search_index


@pytest.fixture(scope="module")
def faces(embedding_run):
    """The checkpoint and the test split folder (identity folders) of the tiny identity run."""
    return embedding_run["best_checkpoint"], Path(embedding_run["run_dir"]).parent / "data" / "test"


def test_gallery_layouts(tmp_path, faces):
    _, test = faces
    entries = gallery_entries(test)
    assert len(entries) == 18 and entries[0][1] == sorted(p.name for p in test.iterdir())[0]
    listing = tmp_path / "list.txt"
    first, second = entries[0][0], entries[1][0]
    listing.write_text(f"# gallery\n{first}\n\n{second},alice\n")
    assert gallery_entries(listing) == [(first, first.parent.name), (second, "alice")]
    (tmp_path / "bad.txt").write_text("a.png,b,c\n")
    with pytest.raises(ValueError, match="bad.txt:1: expected 'path\\[,identity\\]'"):
        gallery_entries(tmp_path / "bad.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        gallery_entries(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gallery_entries(tmp_path / "missing")


def test_build_add_and_search(tmp_path, faces):
    ckpt, test = faces
    people = sorted(p.name for p in test.iterdir())
    gallery = tmp_path / "gallery"
    for person in people[:4]:  # the first image of four people, and a corrupt file
        (gallery / person).mkdir(parents=True)
        (gallery / person / "a.png").write_bytes(sorted((test / person).iterdir())[0].read_bytes())
    (gallery / people[0] / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "faces.faiss"
    summary = build_index(ckpt, gallery, out)
    assert summary["added"] == 4 and summary["total"] == 4 and len(summary["skipped"]) == 1
    assert faiss.read_index(str(out)).ntotal == 4  # a plain faiss index
    more = tmp_path / "more"
    (more / people[4]).mkdir(parents=True)
    (more / people[4] / "b.png").write_bytes(sorted((test / people[4]).iterdir())[0].read_bytes())
    assert build_index(ckpt, more, out, add=True)["total"] == 5

    # a gallery image finds itself with cosine 1; the threshold names strangers "unknown"
    query = gallery / people[2] / "a.png"
    (hit,) = search_index(out, query, ckpt, k=3)
    assert hit["identity"] == people[2] and hit["score"] == pytest.approx(1.0, abs=1e-4)
    assert len(hit["matches"]) == 3
    (far,) = search_index(out, query, ckpt, k=1, threshold=1.01)
    assert far["identity"] == "unknown"
    np.save(tmp_path / "q.npy", FaceIndex.load(out).index.reconstruct(0)[None])
    assert search_index(out, tmp_path / "q.npy")[0]["identity"] == people[0]


def test_bad_builds_leave_nothing_behind(tmp_path, faces):
    ckpt, test = faces
    out = tmp_path / "faces.faiss"
    broken = tmp_path / "broken" / "someone"
    broken.mkdir(parents=True)
    (broken / "x.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(ValueError, match="none of the 1 gallery images could be read"):
        build_index(ckpt, broken.parent, out)
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
    other = FaceIndex.create(8)  # an index of another dimension: adding 16-D embeddings is refused
    other.add(np.eye(8), [str(i) for i in range(8)])
    other.save(out)
    before = out.read_bytes()
    with pytest.raises(ValueError, match="holds 8-D embeddings but .* makes 16-D"):
        build_index(ckpt, test, out, add=True)
    assert out.read_bytes() == before
    with pytest.raises(ValueError, match="needs ckpt="):
        search_index(out, test / sorted(p.name for p in test.iterdir())[0])
    with pytest.raises(ValueError, match="is a ClassificationTask checkpoint"):
        Embedder(_classifier_ckpt(tmp_path))


def _classifier_ckpt(tmp_path):
    from mnet_vision.checkpoints import atomic_save
    from mnet_vision.config import compose
    from mnet_vision.training import build_task
    from tests.helpers.configs import tiny_overrides

    task = build_task(compose(tiny_overrides(tmp_path / "shapes")))
    path = tmp_path / "classifier.ckpt"
    atomic_save({"state_dict": task.state_dict(), "mnet_config": task.run_config}, path)
    return path


def test_gallery_list_bom_and_non_utf8_bytes(tmp_path):
    """A list saved by a spreadsheet or Notepad starts with a BOM (read as part of the first path
    before); a Latin-1 name failed with a bare UnicodeDecodeError."""
    listing = tmp_path / "list.csv"
    listing.write_bytes(b"\xef\xbb\xbfa/1.png,ann\r\nb/2.png\r\n")
    assert gallery_entries(listing) == [(tmp_path / "a" / "1.png", "ann"), (tmp_path / "b" / "2.png", "b")]
    listing.write_bytes("a/1.png,ann\nb/2.png,Jos\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError,
                       match=r"list\.csv, line 2, column 12 \(byte offset 23\): byte b'\\xe9' is not UTF-8"):
        gallery_entries(listing)


def test_an_index_is_never_written_over_the_checkpoint_or_a_photo(embedding_run, tmp_path):
    ckpt = Path(embedding_run["best_checkpoint"])
    gallery = Path(embedding_run["run_dir"]).parent / "data" / "test"
    photo = sorted(gallery.glob("*/*"))[0]
    before = ckpt.read_bytes(), photo.read_bytes()
    for out in (ckpt, photo):
        with pytest.raises(ValueError, match="out=.* is an input of this run"):
            build_index(ckpt, gallery, out)
    assert (ckpt.read_bytes(), photo.read_bytes()) == before
