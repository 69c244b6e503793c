"""tools/faces.py: index real photos (a photo with no face and an unreadable file among them), name a face from
a CSV, search, cluster; bad commands. (The refusals of another descriptor's index and of an out= that is an
input are tested through the same library calls in tests/faces/test_gallery.py.)"""
import json
import sys

import numpy as np
import pytest
from PIL import Image

from mnet_vision.cli.faces import main
from mnet_vision.index import FaceIndex
from tests.helpers.cli import run_tool
from tests.helpers.pretrained import faceapi_package


def test_index_search_and_cluster_real_photos(tmp_path):
    demo = faceapi_package() / "demo"
    one, three = demo / "sample1.jpg", demo / "sample3.jpg"
    extra = tmp_path / "extra"
    extra.mkdir()
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(extra / "wall.png")  # no face
    (extra / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "names.csv").write_text(f"photo,face,identity\n{one},0,harley\n")
    out = run_tool("faces.py", "index", f"photos=[{one},{three},{extra}]", f"out={tmp_path / 'faces.faiss'}",
                   f"identities={tmp_path / 'names.csv'}", "progress=false").stdout
    assert "6 faces of 3 photos added (6 in all, 1 named), faceapi_descriptor" in out
    assert f"photos with no face (1): {extra / 'wall.png'}" in out and "unreadable files (1)" in out
    index = FaceIndex.load(tmp_path / "faces.faiss")
    assert index.metric == "euclidean" and index.entries[0]["identity"] == "harley"
    assert index.embedding_model["name"] == "faceapi_descriptor" and len(index.entries[0]["landmarks"]) == 68

    out = run_tool("faces.py", "search", f"index={tmp_path / 'faces.faiss'}", f"photos={one}", "k=2",
                   f"out={tmp_path / 'search'}", "progress=false").stdout
    assert f"{one} face 0: harley (distance 0.000)" in out  # itself, by its name
    assert "3 faces in 1 photos searched" in out
    result = json.loads((tmp_path / "search" / "search.json").read_text())
    assert result["metric"] == "euclidean" and result["threshold"] == 0.6
    faces = result["photos"][0]["faces"]
    assert [len(f["matches"]) for f in faces] == [2, 2, 2] and all(f["matches"][0]["distance"] < 1e-3 for f in faces)
    assert {p.name for p in (tmp_path / "search").iterdir()} == {"search.json", "sample1.jpg.png",
                                                                  "sample1.jpg.matches.png"}

    out = run_tool("faces.py", "cluster", f"index={tmp_path / 'faces.faiss'}", f"out={tmp_path / 'clusters'}",
                   "progress=false").stdout
    clusters = json.loads((tmp_path / "clusters" / "clusters.json").read_text())
    assert f"6 faces -> {len(clusters['clusters'])} clusters (average at 0.6)" in out
    assert sum(c["size"] for c in clusters["clusters"]) == 6 and not any(c["same_photo"] for c in clusters["clusters"])
    assert (tmp_path / "clusters" / "photos" / "sample3.jpg.png").is_file()


def test_bad_commands_are_named(monkeypatch, capsys):
    # in this process: the messages come before any model loads, and a fresh interpreter costs seconds
    for argv, message in ((["frobnicate"], "the command is one of index, search, cluster, got 'frobnicate'"),
                          (["index"], "faces index: give photos= and out="),
                          (["search", "photos=x.jpg"], "faces search: give index="),
                          (["command=sort"], "the command is one of index, search, cluster, got 'sort'")):
        monkeypatch.setattr(sys, "argv", ["faces.py", *argv])
        with pytest.raises(SystemExit, match=message):
            main()
