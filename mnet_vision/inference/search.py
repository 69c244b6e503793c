"""Face search end to end: embed a gallery with a checkpoint into a :class:`FaceIndex`, and query it
with images or embeddings. ``tools/build_index.py`` and ``tools/search.py`` are thin wrappers.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from mnet_vision.images import IMG_EXTENSIONS, MAX_PIXELS, image_files
from mnet_vision.index.face_index import FaceIndex, writer_lock
from mnet_vision.inference.embed import Embedder
from mnet_vision.outputs import refuse_overwrite
from mnet_vision.textfiles import read_lines

log = logging.getLogger(__name__)

GALLERY_LAYOUTS = ("a folder of identity folders (<gallery>/<identity>/*.jpg), "
                   "or a list file of 'path[,identity]' lines (identity: the image's folder name if left out)")


def gallery_entries(source: str | Path) -> list[tuple[Path, str]]:
    """``(image path, identity)`` of every gallery image, sorted by identity then file.

    ``source`` is a folder of identity folders (the VGGFace2 / CASIA / LFW layout) or a text list
    (``.txt``/``.csv``) of ``path[,identity]`` lines, relative paths taken from the list's folder,
    ``#`` comments and blank lines ignored; UTF-8 with or without a byte-order mark (a byte that
    is not UTF-8 is an error naming the line). An empty gallery is an error.
    """
    source = Path(source)
    if source.is_dir():
        entries = [(path, folder.name) for folder in sorted(p for p in source.iterdir() if p.is_dir())
                   for path in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMG_EXTENSIONS)]
    elif source.is_file():
        entries = []
        for number, line in enumerate(read_lines(source, "gallery list"), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = [f.strip() for f in line.replace("\t", ",").split(",")]
            if len(fields) > 2 or not fields[0]:
                raise ValueError(f"{source}:{number}: expected 'path[,identity]', got {line!r}")
            path = Path(fields[0]) if Path(fields[0]).is_absolute() else source.parent / fields[0]
            entries.append((path, fields[1] if len(fields) == 2 and fields[1] else path.parent.name))
    else:
        raise FileNotFoundError(f"gallery {source} does not exist; expected {GALLERY_LAYOUTS}")
    if not entries:
        raise ValueError(f"gallery {source} holds no images; expected {GALLERY_LAYOUTS}")
    return entries


def build_index(ckpt: str | Path, gallery: str | Path, out: str | Path, factory: str = "auto", add: bool = False,
                batch_size: int = 64, device: str = "cpu", max_pixels: int | None = MAX_PIXELS,
                fast: bool = True) -> dict[str, Any]:
    """Embed the ``gallery`` with the embedding checkpoint ``ckpt`` (or its ``.onnx`` export, run
    by ONNX Runtime: :class:`~mnet_vision.inference.embed.Embedder`) and write a :class:`FaceIndex` to
    ``out`` (one file: the faiss index and its metadata), or with ``add`` append to the index
    already there.

    Every check (gallery, checkpoint, dimension of an existing index, at least one readable image)
    runs before anything is written, and the file is replaced atomically: a failed build leaves no
    partial index and an existing one intact. Appends hold the index's writer lock from load to
    save, so concurrent ``add`` runs all land. Unreadable images (and those over ``max_pixels``) are skipped and listed.
    ``fast``: embed with the BN-folded channels_last model (:class:`~mnet_vision.inference.embed.Embedder`).
    Returns ``{"index", "factory", "added", "total", "skipped", "images_per_second"}``.
    """
    entries = gallery_entries(gallery)
    out = refuse_overwrite(out, [ckpt, gallery, *(path for path, _ in entries)], "out")
    embedder = Embedder(ckpt, device, fast)
    if add and out.exists():  # fail before the embedding work; checked again under the lock
        _check_dim(FaceIndex.load(out), embedder.dim, out, ckpt)
    embedded = embedder.embed_files([path for path, _ in entries], batch_size, max_pixels=max_pixels)
    if len(embedded.paths) == 0:
        raise ValueError(f"none of the {len(entries)} gallery images could be read (first: {embedded.skipped[:3]})")
    identity = {path: name for path, name in entries}
    names, sources = [identity[p] for p in embedded.paths], [str(p) for p in embedded.paths]
    out.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(out):  # from load to save: a concurrent add=true lands in between or after, never lost
        if add and out.exists():
            index = FaceIndex.load(out)
            _check_dim(index, embedder.dim, out, ckpt)
        else:
            index = FaceIndex.create(embedder.dim, factory, expected_size=len(entries))
        index.add(embedded.embeddings, names, sources)
        index.save(out)
    log.info("%s: %d vectors (%d added), %s", out, len(index), len(embedded.paths), index.factory)
    return {"index": str(out), "factory": index.factory, "added": len(embedded.paths), "total": len(index),
            "skipped": embedded.skipped, "images_per_second": embedded.images_per_second}


def _check_dim(index: FaceIndex, dim: int, out: Path, ckpt: str | Path) -> None:
    if index.dim != dim:
        raise ValueError(f"{out} holds {index.dim}-D embeddings but {ckpt} makes {dim}-D ones: "
                         f"embed with the checkpoint the index was built with, or build a new index")


def search_index(index_path: str | Path, query: str | Path, ckpt: str | Path | None = None, k: int = 5,
                 threshold: float = -1.0, device: str = "cpu", max_pixels: int | None = MAX_PIXELS,
                 fast: bool = True) -> list[dict[str, Any]]:
    """Query an index with an image, a folder of images (embedded with ``ckpt``) or a ``.npy`` file
    of ``(Q, D)`` embeddings (``ckpt``: a checkpoint or its ``.onnx`` export, as :func:`build_index`).

    Returns one entry per query: ``{"query", "identity", "score", "matches": [{"identity", "score",
    "source", "id", "unknown"}]}``, best match first; ``identity`` is the best match's, or
    ``"unknown"`` when its cosine similarity is below ``threshold``. ``fast``: as :func:`build_index`.
    """
    index = FaceIndex.load(index_path)
    query = Path(query)
    if query.suffix == ".npy":
        embeddings = np.atleast_2d(np.load(query))
        names = [f"{query.name}[{i}]" for i in range(len(embeddings))]
    else:
        if ckpt is None:
            raise ValueError("querying with images needs ckpt= (the checkpoint that embedded the gallery)")
        embedder = Embedder(ckpt, device, fast)
        embedded = embedder.embed_files(image_files(query), progress=False, max_pixels=max_pixels)
        if len(embedded.paths) == 0:
            raise ValueError(f"no readable query image in {query}")
        embeddings, names = embedded.embeddings, [str(p) for p in embedded.paths]
    results = []
    for name, matches in zip(names, index.search(embeddings, k, threshold)):
        best = matches[0]
        results.append({"query": name, "identity": "unknown" if best.unknown else best.identity,
                        "score": round(best.score, 4),
                        "matches": [{"identity": m.identity, "score": round(m.score, 4), "source": m.source, "id": m.id,
                                     "unknown": m.unknown} for m in matches]})
    return results
