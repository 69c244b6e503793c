"""Faces in photos as a searchable gallery: every face of a set of photos in a :class:`FaceIndex`, searched
with other photos, or grouped into the people it shows.

- :func:`index_photos`: photos in (a folder, searched recursively, a file, a list of either, or a text
  list of paths), every face the :class:`~mnet_vision.faces.pipeline.FacePipeline` finds detected,
  aligned and described, then added with its metadata: ``photo`` (absolute path), ``face`` (its number in the photo,
  best detection score first), ``box`` (COCO ``[x, y, w, h]`` pixels of the upright photo),
  ``score``, ``landmarks`` (68 ``[x, y]`` pixels), ``photo_size`` and the attributes when they were
  run; the index records the pipeline's ``embedding_model``. Names come from
  :func:`read_identities` when the user has them.
- :func:`search_photos`: each face of the query photos with its ``k`` nearest faces in the index.
- :func:`cluster_faces` / :func:`cluster_index`: the faces of an index grouped by person, with no names.

Distances are the pipeline's, never converted: for face-api's descriptor (``metric`` ``euclidean``)
the Euclidean distance between raw descriptors, exact (faiss ``IndexFlatL2``), lower is closer, 0.6
the usual same-person threshold, and the JSON key is ``distance``; for our cosine embedders the
cosine similarity, higher is closer, key ``cosine``. Thresholds are inclusive: a face at exactly the
threshold is a match.
"""
from __future__ import annotations

import functools
import glob
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from tqdm import tqdm

from mnet_vision.faces.pipeline import FacePipeline, PhotoFaces
from mnet_vision.images import IMG_EXTENSIONS, MAX_PIXELS, ImageReadError, read_rgb
from mnet_vision.index.face_index import FaceIndex, Match, writer_lock
from mnet_vision.outputs import drawing_paths, prepare_output_dir, refuse_overwrite
from mnet_vision.textfiles import read_csv_rows, read_lines, write_json
from mnet_vision.viz.faces import (
    UNKNOWN_COLOUR,
    FaceCell,
    face_thumbnail,
    person_colour,
    save_face_sheet,
    save_labelled_photo,
)

log = logging.getLogger(__name__)

#: The identity of a face nobody named.
UNNAMED = ""
CLUSTER_METHODS = ("single", "average", "complete", "kmeans")
LIST_SUFFIXES = (".txt", ".lst")
IDENTITY_LAYOUTS = ("a folder of identity folders (<folder>/<identity>/...photos), or a CSV of 'photo,identity' or "
                    "'photo,face,identity' rows (face: the face's number in the photo, 0 the best detection)")


# -- photos in -----------------------------------------------------------------------------------------------

def photo_files(photos: str | Path | Sequence[str | Path]) -> list[Path]:
    """The image files of ``photos``: a file, a folder (searched recursively, sorted), a glob pattern
    (``demo/sample*.jpg``, sorted), a text list of paths (``.txt``/``.lst``, one a line, relative to the
    list, ``#`` comments), or a sequence of any of these. Nothing found, or a path that does not exist,
    is an error naming it."""
    if isinstance(photos, (str, Path)):
        photos = [photos]
    files: list[Path] = []
    for item in photos:
        item = Path(item)
        if not item.exists() and glob.has_magic(str(item)):
            matched = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not matched:
                raise FileNotFoundError(f"photos: no file matches {item}")
            files += matched
        elif item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
            if not found:
                raise FileNotFoundError(f"photo folder {item} holds no image files ({', '.join(IMG_EXTENSIONS)})")
            files += found
        elif item.is_file() and item.suffix.lower() in LIST_SUFFIXES:
            for line in read_lines(item, "photo list"):
                line = line.split("#", 1)[0].strip()
                if line:
                    files.append(Path(line) if Path(line).is_absolute() else item.parent / line)
        elif item.exists():
            files.append(item)  # any other file is a photo; an unreadable one is counted when read
        else:
            raise FileNotFoundError(f"photos: {item} does not exist; expected a photo, a folder of photos or a "
                                    f"list file ({', '.join(LIST_SUFFIXES)}) of photo paths")
    if not files:
        raise FileNotFoundError(f"photos: no photo in {[str(p) for p in photos]}")
    return files


@dataclass
class IdentityNames:
    """Names the user gave: per photo (its largest face is that person) and per face of a photo (its
    number, best detection first). Keys are resolved paths."""

    by_photo: dict[Path, str] = field(default_factory=dict)
    by_face: dict[tuple[Path, int], str] = field(default_factory=dict)
    source: str = ""

    def names(self, photo: PhotoFaces) -> list[str]:
        """One identity per face of ``photo`` (:data:`UNNAMED` for the faces nobody named)."""
        key = Path(photo.photo).resolve()
        names = [self.by_face.get((key, i), UNNAMED) for i in range(len(photo.faces))]
        if key in self.by_photo and photo.faces:
            areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in photo.faces]
            largest = int(np.argmax(areas))
            if names[largest] == UNNAMED:
                names[largest] = self.by_photo[key]
            if len(photo.faces) > 1:
                log.info("%s: %d faces, named by photo: its largest (face %d) is %s, the others stay unnamed unless "
                         "named by face", photo.photo, len(photo.faces), largest, self.by_photo[key])
        return names

    def unmatched(self, photos: Sequence[PhotoFaces]) -> list[str]:
        """The names given to photos or faces the run did not find (a photo not read, no such face)."""
        faces = {Path(p.photo).resolve(): len(p.faces) for p in photos}
        missing = [f"{path}: {name} ({'photo not indexed' if path not in faces else 'no face found'})"
                   for path, name in self.by_photo.items() if not faces.get(path)]
        for (path, i), name in self.by_face.items():
            if path not in faces:
                missing.append(f"{path} face {i}: {name} (photo not indexed)")
            elif faces[path] <= i:
                missing.append(f"{path} face {i}: {name} (the photo has {faces[path]} face(s))")
        return missing


def read_identities(spec: str | Path) -> IdentityNames:
    """The names of a folder layout (every photo below ``<spec>/<identity>/`` is that person) or a CSV
    (``photo,identity`` or ``photo,face,identity`` rows, paths relative to the CSV, an optional header
    row ``photo,...``, blank lines and ``#`` lines ignored). A bad row is an error naming file and line."""
    spec = Path(spec)
    names = IdentityNames(source=str(spec))
    if spec.is_dir():
        for folder in sorted(p for p in spec.iterdir() if p.is_dir()):
            for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS):
                names.by_photo[path.resolve()] = folder.name
        if not names.by_photo:
            raise ValueError(f"identities={spec} holds no identity folder with photos; expected {IDENTITY_LAYOUTS}")
        return names
    if not spec.is_file():
        raise FileNotFoundError(f"identities={spec} does not exist; expected {IDENTITY_LAYOUTS}")
    for line, row in read_csv_rows(spec, "identities CSV"):
        fields = [f.strip() for f in row]
        if not any(fields) or fields[0].startswith("#"):
            continue
        if line == 1 and fields[0].lower() == "photo":
            continue  # the header
        if len(fields) not in (2, 3) or not fields[0] or not fields[-1]:
            raise ValueError(f"{spec}, line {line}: expected 'photo,identity' or 'photo,face,identity', got {row}")
        path = (Path(fields[0]) if Path(fields[0]).is_absolute() else spec.parent / fields[0]).resolve()
        if len(fields) == 2:
            names.by_photo[path] = fields[1]
            continue
        try:
            face = int(fields[1])
        except ValueError:
            face = -1
        if face < 0:
            raise ValueError(f"{spec}, line {line}: face {fields[1]!r} is not a face number (0 the photo's best "
                             f"detection, 1 the next ...)")
        names.by_face[(path, face)] = fields[2]
    if not names.by_photo and not names.by_face:
        raise ValueError(f"identities={spec} names nobody; expected {IDENTITY_LAYOUTS}")
    return names


def xywh(box: Sequence[float]) -> list[float]:
    """An ``(x1, y1, x2, y2)`` pixel box as COCO ``[x, y, w, h]``, to 0.01 px."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def xyxy(box: Sequence[float]) -> list[float]:
    """A COCO ``[x, y, w, h]`` pixel box as ``(x1, y1, x2, y2)``."""
    x, y, w, h = (float(v) for v in box)
    return [x, y, x + w, y + h]


def face_metadata(photo: PhotoFaces, number: int) -> dict[str, Any]:
    """What an index entry records of face ``number`` of ``photo`` (see the module doc)."""
    face = photo.faces[number]
    # an absolute path: a later search or cluster run from another folder still finds the photo to draw
    meta: dict[str, Any] = {"photo": str(Path(photo.photo).absolute()), "face": number, "box": xywh(face.box),
                            "score": round(float(face.score), 4), "photo_size": [photo.width, photo.height],
                            "landmarks": np.round(np.asarray(face.landmarks, np.float64), 2).tolist()}
    for key in ("age", "gender", "expression"):
        if getattr(face, key) is not None:
            meta[key] = {k: round(float(v), 4) for k, v in getattr(face, key).items()}
    return meta


def described(photos: Sequence[PhotoFaces]) -> tuple[np.ndarray, list[tuple[PhotoFaces, int]]]:
    """The ``(N, D)`` embeddings of every face of ``photos`` and each one's ``(photo, face number)``."""
    faces = [(p, i) for p in photos for i, f in enumerate(p.faces)]
    missing = [f"{p.photo} face {i}" for p, i in faces if p.faces[i].embedding is None]
    if missing:
        raise ValueError(f"{len(missing)} face(s) have no embedding (a pipeline with describer=None?): {missing[:3]}")
    if not faces:
        return np.zeros((0, 0), np.float32), []
    return np.stack([np.asarray(p.faces[i].embedding, np.float32) for p, i in faces]), faces


def _run_report(photos: Sequence[PhotoFaces], unreadable: Sequence[str]) -> dict[str, Any]:
    """What a run found besides faces: photos with none, unreadable files, detections not described."""
    return {"no_face": [p.photo for p in photos if not p.faces], "unreadable": list(unreadable),
            "skipped_faces": [{"photo": p.photo, "box": xywh(s["box"]), "score": round(float(s["score"]), 4),
                               "reason": s["reason"]} for p in photos for s in p.skipped]}


# -- index ---------------------------------------------------------------------------------------------------

def check_fits(index: FaceIndex, metric: str, model: dict[str, Any], path: str | Path) -> None:
    """Refuse the index at ``path`` when its metric or embedding model is not ``metric`` / ``model``
    (a pipeline's), naming both."""
    if index.metric != metric:
        raise ValueError(f"{path} compares faces by {index.metric} distance, the describer by {metric}: it was "
                         f"built with another model ({index.embedding_model})")
    try:
        index.check_embedding_model(model, "the faces of this pipeline")
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def index_photos(photos: str | Path | Sequence[str | Path], out: str | Path, pipeline: FacePipeline,
                 identities: str | Path | None = None, factory: str = "auto", add: bool = False,
                 progress: bool = True, max_pixels: int | None = MAX_PIXELS) -> dict[str, Any]:
    """Detect, align and describe every face of ``photos`` (:func:`photo_files`) with ``pipeline`` and
    write them to the index file ``out`` (:func:`index_faces`; ``identities``: :func:`read_identities`).

    Checked before the work: ``out`` is none of the inputs, an existing index to ``add`` to has the
    pipeline's model, the names parse. Photos with no face and unreadable files are listed, not errors.
    """
    files = photo_files(photos)
    out = refuse_overwrite(out, [*files, *([identities] if identities else [])], "out")
    names = read_identities(identities) if identities else IdentityNames()
    model = pipeline.embedding_model
    if add and out.exists():  # fail before the work; checked again under the lock
        check_fits(FaceIndex.load(out), pipeline.metric, model, out)
    read, unreadable = pipeline.run_files(files, progress=progress, max_pixels=max_pixels)
    return index_faces(read, unreadable, out, model, pipeline.metric, names, factory, add)


def index_faces(read: Sequence[PhotoFaces], unreadable: Sequence[str], out: str | Path, model: dict[str, Any],
                metric: str, names: IdentityNames | None = None, factory: str = "auto",
                add: bool = False) -> dict[str, Any]:
    """Write the described faces of ``read`` to the index file ``out`` (replaced, or with ``add`` appended to
    under its writer lock), each entry with its metadata (:func:`face_metadata`) and identity (``names``,
    else unnamed); the index records ``model`` (``{"name", "sha256", "dim", ...}``) and compares by
    ``metric``. No face in any photo is an error (nothing to index, nothing written).

    Returns ``{"index", "photos", "faces", "added", "total", "named", "no_face", "unreadable",
    "skipped_faces", "unmatched_names", "embedding_model"}``.
    """
    out, names = Path(out), names or IdentityNames()
    embeddings, faces = described(read)
    report = _run_report(read, unreadable)
    if not faces:
        raise ValueError(f"no face found in any of the {len(read) + len(unreadable)} photo(s) ({len(unreadable)} "
                         f"unreadable, {len(report['skipped_faces'])} detection(s) skipped): nothing to index, "
                         f"{out} not written")
    per_photo = {id(p): names.names(p) for p in read}
    identity = [per_photo[id(p)][i] for p, i in faces]
    out.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(out):
        if add and out.exists():
            index = FaceIndex.load(out)
            check_fits(index, metric, model, out)
        else:
            index = FaceIndex.create(embeddings.shape[1], factory, expected_size=len(faces), metric=metric,
                                     embedding_model=model)
        metadata = [face_metadata(p, i) for p, i in faces]
        index.add(embeddings, identity, [m["photo"] for m in metadata], metadata, model)
        index.save(out)
    unmatched = names.unmatched(read)
    if unmatched:
        log.warning("%s: %d name(s) matched no indexed face: %s", names.source, len(unmatched), unmatched[:5])
    log.info("%s: %d faces of %d photos added (%d in all)", out, len(faces), len(read), len(index))
    return {"index": str(out), "photos": len(read), "faces": len(faces), "added": len(faces), "total": len(index),
            "named": sum(1 for n in identity if n != UNNAMED), **report, "unmatched_names": unmatched,
            "embedding_model": model}


# -- search --------------------------------------------------------------------------------------------------

def entry_label(entry: dict[str, Any]) -> str:
    """How a face of the index is called in captions: its identity, or ``<photo file>#<face>`` unnamed."""
    if entry.get("identity"):
        return str(entry["identity"])
    return f"{Path(str(entry.get('photo', entry.get('source', '?')))).name}#{entry.get('face', '?')}"


def value_key(metric: str) -> str:
    """The JSON key of a match's number: ``distance`` (Euclidean) or ``cosine`` (similarity)."""
    return "distance" if metric == "euclidean" else "cosine"


def _match_record(match: Match) -> dict[str, Any]:
    entry = match.entry
    return {"id": match.id, "identity": entry.get("identity", UNNAMED), "label": entry_label(entry),
            "photo": entry.get("photo", entry.get("source")), "face": entry.get("face"), "box": entry.get("box"),
            value_key(match.metric): round(match.score, 4), "unknown": match.unknown}


def search_photos(index: str | Path, photos: str | Path | Sequence[str | Path], pipeline: FacePipeline, k: int = 5,
                  threshold: float | None = 0.6, out_dir: str | Path | None = None, skip_same_photo: bool = False,
                  progress: bool = True, max_pixels: int | None = MAX_PIXELS) -> dict[str, Any]:
    """:func:`search_faces` of the faces ``pipeline`` finds in ``photos`` against the index file ``index``.

    An index of another embedding model than the pipeline's is refused before any photo is read, naming
    both. With ``out_dir``, writes ``search.json``, each photo with its faces boxed and labelled by their
    match (``<photo>.png``) and a contact sheet of each face beside its matches (``<photo>.matches.png``)
    (:func:`draw_search`); ``out_dir`` may not be, or lie in, a folder of the query photos.
    """
    index_path = Path(index)
    gallery = FaceIndex.load(index_path)
    check_fits(gallery, pipeline.metric, pipeline.embedding_model, index_path)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    files = photo_files(photos)
    if out_dir is not None:
        out_dir = prepare_output_dir(out_dir, files)
        refuse_overwrite(out_dir / "search.json", [index_path], "out")
    read, unreadable = pipeline.run_files(files, progress=progress, max_pixels=max_pixels)
    summary = search_faces(gallery, read, unreadable, pipeline.embedding_model, k, threshold, skip_same_photo)
    summary["index"] = str(index_path)
    if out_dir is not None:
        write_json(out_dir / "search.json", summary, indent=2)
        draw_search(summary, out_dir, files, progress)
    return summary


def search_faces(gallery: FaceIndex, read: Sequence[PhotoFaces], unreadable: Sequence[str],
                 model: dict[str, Any] | None, k: int = 5, threshold: float | None = 0.6,
                 skip_same_photo: bool = False) -> dict[str, Any]:
    """Each described face of ``read`` (made by ``model``, refused when not the gallery's) with its ``k``
    nearest faces of ``gallery``, best first, and a ``label``: the best match's (:func:`entry_label`), or
    ``unknown`` when it is beyond ``threshold`` (a Euclidean distance above it, a cosine below it; None:
    never unknown). ``skip_same_photo``: leave out matches from the query's own photo (searching an index
    with its own photos: "who else is this").

    Returns ``{"metric", "threshold", "k", "photos": [{"photo", "width", "height", "faces": [{"face",
    "box", "score", "label", "identity", <value_key>, "unknown", "matches": [{"id", "identity", "label",
    "photo", "face", "box", <value_key>, "unknown"}]}]}], "no_face", "unreadable", "skipped_faces"}``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    extra = 0
    if skip_same_photo:  # only then: resolving every entry's path costs ~750 ms at 20,000 faces, per query
        per_photo = Counter(str(Path(str(e.get("photo", ""))).resolve()) for e in gallery.entries.values())
        extra = max(per_photo.values(), default=0)
    embeddings, faces = described(read)
    hits = gallery.search(embeddings, k + extra, threshold, model) if faces else []
    key = value_key(gallery.metric)
    results = {id(p): {"photo": p.photo, "width": p.width, "height": p.height, "faces": []} for p in read}
    for (photo, number), row in zip(faces, hits):
        own = str(Path(photo.photo).resolve())
        if skip_same_photo:
            row = [m for m in row if str(Path(str(m.entry.get("photo", ""))).resolve()) != own]
        matches = [_match_record(m) for m in row[:k]]
        best = matches[0] if matches else None
        known = best is not None and not best["unknown"]
        results[id(photo)]["faces"].append({
            "face": number, "box": xywh(photo.faces[number].box), "score": round(float(photo.faces[number].score), 4),
            "label": best["label"] if known else "unknown", "identity": best["identity"] if known else UNNAMED,
            key: best[key] if best else None, "unknown": not known, "matches": matches})
    return {"metric": gallery.metric, "threshold": threshold, "k": k, "photos": list(results.values()),
            **_run_report(read, unreadable)}


@functools.lru_cache(maxsize=8)  # gallery photos recur across matches; cleared after each drawing pass
def _photo(path: str) -> np.ndarray | None:
    """A gallery or query photo for drawing, or None when it cannot be read now (moved since indexing):
    its cells are left empty, the captions still say who it was."""
    try:
        return read_rgb(path, max_pixels=None)
    except ImageReadError as err:
        log.warning("cannot draw faces of %s: %s", path, err.reason)
        return None


def _thumbnail(photo: str | None, box: Sequence[float] | None) -> np.ndarray | None:
    image = _photo(str(photo)) if photo else None
    return None if image is None or box is None else face_thumbnail(image, xyxy(box))


def draw_search(summary: dict[str, Any], out_dir: Path, files: Sequence[Path], progress: bool = True) -> list[Path]:
    """The pictures of :func:`search_photos`' ``summary`` in ``out_dir``: per photo with faces, the photo
    boxed and labelled, and its contact sheet. Returns the paths written."""
    key = value_key(summary["metric"])
    names = {str(f): d for f, d in zip(files, drawing_paths(files, out_dir))}
    written = []
    photos = [p for p in summary["photos"] if p["faces"]]
    for result in tqdm(photos, desc="pictures", disable=not progress or len(photos) < 2):
        image = _photo(result["photo"])
        if image is None:
            continue
        faces = result["faces"]
        colours = [person_colour(None if f["unknown"] else f["label"]) for f in faces]
        drawing = names.get(result["photo"], out_dir / (Path(result["photo"]).name + ".png"))
        captions = [f"{f['face']}: {f['label']}" + (f" {f[key]:.2f}" if f[key] is not None else "") for f in faces]
        written.append(save_labelled_photo(image, [xyxy(f["box"]) for f in faces], captions, colours, drawing))
        rows = [[FaceCell(face_thumbnail(image, xyxy(f["box"])), f"face {f['face']}\n-> {f['label']}", colour)]
                + [FaceCell(_thumbnail(m["photo"], m["box"]), f"{m['label']}\n{key[0]}={m[key]:.3f}",
                            UNKNOWN_COLOUR if m["unknown"] else person_colour(m["label"])) for m in f["matches"]]
                for f, colour in zip(faces, colours)]
        written.append(save_face_sheet(rows, drawing.with_name(drawing.name.removesuffix(".png") + ".matches.png"),
                                       title=f"{Path(result['photo']).name}: each face, then its matches "
                                             f"({key}, threshold {summary['threshold']})"))
    _photo.cache_clear()
    return written


# -- clusters ------------------------------------------------------------------------------------------------

# The distance given to two faces of one photo when they must stay apart: far beyond any threshold even
# once averaged over two clusters of a thousand faces each (average linkage).
APART = 1e9
# Linkage clustering holds all N (N - 1) / 2 distances as float64: 30k faces are 3.6 GB; beyond, k-means.
LINKAGE_MAX_FACES = 30_000


def cluster_labels(vectors: np.ndarray, metric: str, threshold: float = 0.6, method: str = "average",
                   clusters: int | None = None, seed: int = 0, groups: Sequence[Any] | None = None) -> np.ndarray:
    """``(N,)`` cluster numbers of ``(N, D)`` vectors: ``single`` (connected components of the pairs within
    ``threshold``: single linkage), ``average`` or ``complete`` (agglomerative, merged while the linkage
    distance is within ``threshold``), by the Euclidean distance (``metric`` ``euclidean``) or the cosine
    similarity (``cosine``: linked at or above ``threshold``); or ``kmeans`` (faiss k-means, ``clusters``
    of them, spherical for cosine). Numbers start at 0 in order of first appearance.

    ``groups``: one key per vector (its photo); with ``average`` / ``complete``, two vectors of one group
    never end in one cluster (two faces of one photo are two people): their distance is :data:`APART`.
    """
    vectors = np.asarray(vectors, np.float64)
    if groups is not None and len(groups) != len(vectors):
        raise ValueError(f"{len(groups)} groups for {len(vectors)} vectors")
    if method not in CLUSTER_METHODS:
        raise ValueError(f"method={method!r}: expected one of {CLUSTER_METHODS}")
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric={metric!r}: expected euclidean or cosine")
    n = len(vectors)
    if method == "kmeans":
        if clusters is None or not 1 <= int(clusters) <= n:
            raise ValueError(f"method=kmeans needs clusters= between 1 and the {n} faces, got {clusters}")
        x = np.ascontiguousarray(vectors, np.float32)
        if metric == "cosine":
            faiss.normalize_L2(x)
        kmeans = faiss.Kmeans(x.shape[1], int(clusters), niter=50, nredo=5, seed=seed, spherical=metric == "cosine",
                              min_points_per_centroid=1, verbose=False)
        kmeans.train(x)
        raw = kmeans.index.search(x, 1)[1][:, 0]
    elif n == 1:
        raw = np.zeros(1, np.int64)
    elif n > LINKAGE_MAX_FACES:
        raise ValueError(f"method={method} on {n} faces needs {n * (n - 1) // 2 * 8 / 1e9:.0f} GB of pairwise "
                         f"distances (at most {LINKAGE_MAX_FACES} faces): use method=kmeans clusters=K")
    else:
        # cosine: scipy's distance is 1 - similarity, so "similarity >= t" is "distance <= 1 - t"
        distances = pdist(vectors, metric)
        if groups is not None and method in ("average", "complete"):
            keys = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
            distances[pdist(keys[:, None].astype(np.float64), "cityblock") == 0] = APART
        cut = threshold if metric == "euclidean" else 1.0 - threshold
        raw = fcluster(linkage(distances, method), t=cut, criterion="distance")
    _, first = np.unique(raw, return_index=True)
    order = {int(raw[i]): rank for rank, i in enumerate(sorted(first))}
    return np.array([order[int(c)] for c in raw], np.int64)


def cluster_faces(index: FaceIndex, threshold: float = 0.6, method: str = "average", clusters: int | None = None,
                  seed: int = 0, same_photo_apart: bool = True) -> dict[str, Any]:
    """The faces of ``index`` grouped by person (:func:`cluster_labels` on its stored vectors, raw for a
    euclidean index, unit for a cosine one), largest group first; ``same_photo_apart`` (``average`` and
    ``complete``): two faces of one photo are never put in one cluster.

    Returns ``{"method", "threshold", "metric", "faces", "clusters": [{"cluster", "size", "photos",
    "identities", "same_photo", "members": [{"id", "photo", "face", "box", "identity", "label"}]}],
    "people_in_several_photos", "singletons"}``; ``same_photo`` lists photos holding two members of a
    cluster: one person appears once in a photo, so each is a sign of a wrong merge.
    """
    ids, vectors = index.vectors()
    if not ids:
        raise ValueError("the index is empty: nothing to cluster")
    photos = [str(index.entries[i].get("photo", index.entries[i].get("source", ""))) for i in ids]
    labels = cluster_labels(vectors, index.metric, threshold, method, clusters, seed,
                            photos if same_photo_apart else None)
    groups: dict[int, list[int]] = {}
    for i, label in zip(ids, labels.tolist()):
        groups.setdefault(label, []).append(i)
    out = []
    for members in sorted(groups.values(), key=lambda m: (-len(m), m[0])):
        entries = [index.entries[i] for i in members]
        photos = Counter(str(e.get("photo", e.get("source", ""))) for e in entries)
        out.append({"cluster": len(out), "size": len(members), "photos": len(photos),
                    "identities": dict(Counter(e["identity"] for e in entries if e.get("identity"))),
                    "same_photo": sorted(p for p, count in photos.items() if count > 1),
                    "members": [{"id": i, "photo": e.get("photo", e.get("source")), "face": e.get("face"),
                                 "box": e.get("box"), "identity": e.get("identity", UNNAMED), "label": entry_label(e)}
                                for i, e in zip(members, entries)]})
    return {"method": method, "threshold": None if method == "kmeans" else threshold, "metric": index.metric,
            "same_photo_apart": same_photo_apart and method in ("average", "complete"),
            "faces": len(ids), "clusters": out,
            "people_in_several_photos": sum(1 for c in out if c["photos"] > 1),
            "singletons": sum(1 for c in out if c["size"] == 1)}


def cluster_index(index: str | Path, out_dir: str | Path | None = None, threshold: float = 0.6,
                  method: str = "average", clusters: int | None = None, seed: int = 0,
                  same_photo_apart: bool = True, progress: bool = True) -> dict[str, Any]:
    """:func:`cluster_faces` of the index file ``index``; with ``out_dir``, also ``clusters.json``, a
    contact sheet per cluster of two or more faces (``cluster_<n>.png``) and of them all, one a row
    (``clusters.png``), one of the single faces
    (``singletons.png``) and each photo with its faces boxed and labelled by cluster
    (``photos/<photo>.png``, colour and number per cluster)."""
    index_path = Path(index)
    result = cluster_faces(FaceIndex.load(index_path), threshold, method, clusters, seed, same_photo_apart)
    result["index"] = str(index_path)
    if out_dir is not None:
        members = [m for c in result["clusters"] for m in c["members"]]
        photos = sorted({str(m["photo"]) for m in members})
        out_dir = prepare_output_dir(out_dir, [Path(p) for p in photos])
        refuse_overwrite(out_dir / "clusters.json", [index_path], "out")
        write_json(out_dir / "clusters.json", result, indent=2)
        draw_clusters(result, out_dir, progress)
    return result


def cluster_name(cluster: dict[str, Any]) -> str:
    """``c<n>``, with its most frequent given name when it has one (``c3 alice``)."""
    named = Counter(cluster["identities"]).most_common(1)
    return f"c{cluster['cluster']}" + (f" {named[0][0]}" if named else "")


def draw_clusters(result: dict[str, Any], out_dir: Path, progress: bool = True) -> list[Path]:
    """The pictures of :func:`cluster_index` in ``out_dir``; returns the paths written."""
    written = []
    singles, overview = [], []
    for cluster in tqdm(result["clusters"], desc="cluster sheets", disable=not progress):
        colour = person_colour(f"c{cluster['cluster']}") if cluster["size"] > 1 else UNKNOWN_COLOUR
        cells = [FaceCell(_thumbnail(m["photo"], m["box"]), m["label"], colour) for m in cluster["members"]]
        if cluster["size"] == 1:
            singles += [FaceCell(c.image, f"{cluster_name(cluster)}\n{c.caption}", c.colour) for c in cells]
            continue
        overview.append([FaceCell(c.image, f"{cluster_name(cluster)}\n{c.caption}", c.colour) for c in cells])
        warning = f", {len(cluster['same_photo'])} photo(s) twice: a wrong merge" if cluster["same_photo"] else ""
        written.append(save_face_sheet([cells], out_dir / f"cluster_{cluster['cluster']:03d}.png",
                                       title=f"{cluster_name(cluster)}: {cluster['size']} faces in "
                                             f"{cluster['photos']} photo(s){warning}"))
    if overview:
        written.append(save_face_sheet(overview, out_dir / "clusters.png", title=f"the {len(overview)} clusters of "
                                       f"two or more faces ({result['method']}, {result['threshold']}), one a row"))
    if singles:
        written.append(save_face_sheet([singles], out_dir / "singletons.png", title="faces alone in their cluster"))
    by_photo: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for cluster in result["clusters"]:
        for m in cluster["members"]:
            by_photo.setdefault(str(m["photo"]), []).append((cluster, m))
    photos = sorted(by_photo)
    for photo, drawing in zip(photos, drawing_paths([Path(p) for p in photos], out_dir / "photos")):
        image = _photo(photo)
        if image is None:
            continue
        faces = sorted(by_photo[photo], key=lambda cm: cm[1]["face"] if cm[1]["face"] is not None else 0)
        written.append(save_labelled_photo(
            image, [xyxy(m["box"]) for _, m in faces], [f"{m['face']}: {cluster_name(c)}" for c, m in faces],
            [person_colour(f"c{c['cluster']}") if c["size"] > 1 else UNKNOWN_COLOUR for c, _ in faces], drawing))
    _photo.cache_clear()
    return written
