"""The face index a service searches and adds to: :class:`ServedGallery`.

One lock serialises every add and search in the process (a search never sees a half-added entry);
for an index file, an add also holds the file's writer lock (:func:`mnet_vision.index.face_index.writer_lock`,
so tools/faces.py and other services writing the same file wait their turn), reloads the file when another
writer saved since, and saves with :meth:`FaceIndex.save`'s atomic one-file write: a reader of the file sees
the index before the add or after it, never between.

Faces added through the service are no files of this machine: their ``photo`` is a label
(``upload:<id>/<client file name>``) that is never opened, and their thumbnails are JPEG crops kept when they
are added (``<index>.thumbs/<upload id>-<face>.jpg`` beside an index file, in memory otherwise). Faces of an
index built by tools/faces.py are cut from their stored photo and box, photos the index's owner indexed.
"""
from __future__ import annotations

import io
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mnet_vision.atomic import atomic_write
from mnet_vision.faces.gallery import UNNAMED, check_fits, face_metadata, search_faces, value_key, xywh, xyxy
from mnet_vision.faces.pipeline import FacePipeline, PhotoFaces
from mnet_vision.images import ImageReadError, read_rgb
from mnet_vision.index.face_index import FaceIndex, current_generation, writer_lock
from mnet_vision.viz.faces import face_thumbnail

THUMB_SIZE = 96  # pixels, square: the contact sheets' cell
UPLOAD_PREFIX = "upload:"


def jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class ServedGallery:
    """The service's :class:`FaceIndex`: the file ``path`` (loaded when it exists, else created empty and
    written at the first add), or, ``path=None``, one in memory, empty at start. Its faces must come from
    ``pipeline``'s describer (an index of another model is refused, naming both)."""

    def __init__(self, pipeline: FacePipeline, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.metric, self.model = pipeline.metric, pipeline.embedding_model
        self._lock = threading.Lock()
        self._thumbs: dict[int, bytes] = {}
        self._generation: str | None = None
        self.index = self._read()

    @property
    def thumbs_dir(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".thumbs")

    def _read(self) -> FaceIndex:
        """The index file as it is now (checked against the pipeline's model), or a new empty index."""
        if self.path is not None and self.path.exists():
            index = FaceIndex.load(self.path)
            check_fits(index, self.metric, self.model, self.path)
            self._generation = current_generation(self.path)
            return index
        self._generation = None
        return FaceIndex.create(int(self.model["dim"]), "IDMap2,Flat", metric=self.metric, embedding_model=self.model)

    def __len__(self) -> int:
        with self._lock:
            return len(self.index)

    def describe(self) -> dict[str, Any]:
        """``{"path" (None: in memory), "size", "metric", "factory", "embedding_model"}``."""
        with self._lock:
            return {"path": None if self.path is None else str(self.path), "size": len(self.index),
                    "metric": self.index.metric, "factory": self.index.factory,
                    "embedding_model": self.index.embedding_model}

    def search(self, photo: PhotoFaces, k: int, threshold: float | None) -> list[dict[str, Any]]:
        """Each face of ``photo`` with its ``k`` matches, in tools/faces.py search's shape (``face``,
        ``box`` COCO xywh, ``score``, ``label``, ``identity``, the distance or cosine, ``unknown``,
        ``matches``), plus ``box_xyxy`` and ``bbox`` (the box again, as the detections' JSON names it)."""
        with self._lock:
            if len(self.index) and photo.faces:
                faces = search_faces(self.index, [photo], [], self.model, k, threshold)["photos"][0]["faces"]
            else:  # nobody to match yet: every face unknown, as search_faces reports a face beyond threshold
                faces = [{"face": i, "box": xywh(f.box), "score": round(float(f.score), 4), "label": "unknown",
                          "identity": UNNAMED, value_key(self.metric): None, "unknown": True, "matches": []}
                         for i, f in enumerate(photo.faces)]
        for face in faces:
            face["box_xyxy"] = [round(v, 2) for v in xyxy(face["box"])]
            face["bbox"] = face["box"]
        return faces

    def add(self, photo: PhotoFaces, rgb: np.ndarray, numbers: list[int],
            identity: str) -> tuple[list[dict[str, Any]], int]:
        """Add faces ``numbers`` of ``photo`` (an upload of the picture ``rgb``; ``photo.photo`` its client file
        name) as ``identity``; returns ``([{"id", "identity", "box_xyxy"}], total)``."""
        upload = uuid.uuid4().hex
        metadata = [face_metadata(photo, n) | {"photo": f"{UPLOAD_PREFIX}{upload}/{photo.photo}", "upload": upload}
                    for n in numbers]
        vectors = np.stack([np.asarray(photo.faces[n].embedding, np.float32) for n in numbers])
        thumbs = [jpeg(face_thumbnail(rgb, photo.faces[n].box, THUMB_SIZE)) for n in numbers]
        sources = [m["photo"] for m in metadata]
        with self._lock:
            if self.path is None:
                ids = self.index.add(vectors, [identity] * len(numbers), sources, metadata, self.model)
                self._thumbs.update(zip(ids, thumbs))
            else:
                ids = self._add_to_file(vectors, identity, sources, metadata)
                self._keep_thumbs(metadata, thumbs)
            total = len(self.index)
        return [{"id": i, "identity": identity, "box_xyxy": [round(float(v), 2) for v in photo.faces[n].box]}
                for i, n in zip(ids, numbers)], total

    def _add_to_file(self, vectors: np.ndarray, identity: str, sources: list[str],
                     metadata: list[dict[str, Any]]) -> list[int]:
        """Under the file's writer lock: the file as it is now, these faces added, saved atomically. When
        the save fails the index is read back from the file, so memory never holds what the file lacks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with writer_lock(self.path):
            if current_generation(self.path) != self._generation:  # another writer saved since: start from it
                self.index = self._read()
            try:
                ids = self.index.add(vectors, [identity] * len(vectors), sources, metadata, self.model)
                self.index.save(self.path)
            except BaseException:
                self.index = self._read()
                raise
            self._generation = current_generation(self.path)
        return ids

    def _keep_thumbs(self, metadata: list[dict[str, Any]], thumbs: list[bytes]) -> None:
        """The JPEG crops beside the index file, each written atomically, after the index (a crash between
        leaves a face without a thumbnail, never a thumbnail of another face: names carry the upload's id)."""
        folder = self.thumbs_dir
        folder.mkdir(parents=True, exist_ok=True)
        for meta, data in zip(metadata, thumbs):
            atomic_write(folder / f"{meta['upload']}-{meta['face']}.jpg", lambda tmp, data=data: tmp.write_bytes(data))

    def thumbnail(self, face_id: int) -> bytes | None:
        """The JPEG of indexed face ``face_id``, or None when the index has no such face (or its picture is gone)."""
        with self._lock:
            entry = self.index.entries.get(face_id)
            kept = self._thumbs.get(face_id)
        if entry is None:
            return None
        if kept is not None:
            return kept
        if entry.get("upload"):
            folder = self.thumbs_dir
            file = None if folder is None else folder / f"{entry['upload']}-{entry.get('face', 0)}.jpg"
            return file.read_bytes() if file is not None and file.is_file() else None
        photo, box = entry.get("photo"), entry.get("box")
        if not photo or box is None:
            return None
        try:  # a photo the index's owner indexed (tools/faces.py), never a path a client gave
            return jpeg(face_thumbnail(read_rgb(str(photo)), xyxy(box), THUMB_SIZE))
        except ImageReadError:
            return None
