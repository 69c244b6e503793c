"""A faiss index of face embeddings with external ids and their metadata, in one file.

Two metrics, recorded in the file, never mixed:

- ``cosine`` (the default, our embedders): every vector is float32, C-contiguous and L2-normalised
  before faiss sees it, and the faiss index uses the inner-product metric, so a match's ``score`` is
  a cosine similarity, higher is closer (faiss' own defaults are L2, and ``normalize_L2`` works in
  place on float32 only: the classic ways to get silently wrong rankings).
- ``euclidean`` (face-api's / dlib's descriptor, whose users compare raw descriptors by Euclidean
  distance, 0.6 the same-person threshold): vectors are stored as given, the faiss index uses the L2
  metric (``IDMap2,Flat`` is faiss' exact ``IndexFlatL2``), and a match's ``score`` is the Euclidean
  distance (the square root of what faiss returns), lower is closer. Those descriptors are not unit
  length (norms 1.40-1.51 on the 22 faces of face-api's demo photos, its aligned crops), so cosine on
  normalised vectors would rank and threshold them differently from every face-api user.

An entry records, beside its identity and source, any JSON-able metadata (a photo, a box, landmarks),
and an index may record the ``embedding_model`` that made its vectors (``{"name", "sha256", "dim",
...}``): adding or searching with vectors of another model is refused, naming both.

On disk (issue 13, "nothing lost"): the file at the path the user names is a plain faiss index
(``faiss.read_index`` opens it and stops at its end) followed by a metadata trailer, the JSON map of
each id to its identity and source, then a fixed footer (:data:`FOOTER`: the JSON's length, a
generation id, a magic). Vectors and names are one file written atomically, so a reader sees the
old pair or the new one, never a mix, and a save killed at any point leaves the old pair. (The
format before kept the metadata in a ``<file>.meta.json`` sidecar renamed separately; such indexes
still load, and their next save rewrites them as one file.)

Writers are serialised by an ``fcntl.flock`` on ``<file>.lock`` (:func:`writer_lock`), and a save
to the file an index was loaded from merges: when another writer saved since the load, it loads
that newer index under the lock and appends this one's additions to it, so two concurrent appends
both land.
"""
from __future__ import annotations

import json
import logging
import os
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np

from mnet_vision.atomic import atomic_write
from mnet_vision.locks import exclusive_flock
from mnet_vision.textfiles import read_json

log = logging.getLogger(__name__)

META_SUFFIX = ".meta.json"  # the sidecar of the two-file format before issue 13 (read, then removed)
LOCK_SUFFIX = ".lock"
# Footer: little-endian u64 length of the metadata JSON, 16-byte generation id, magic.
FOOTER = struct.Struct("<Q16s8s")
MAGIC = b"MNFIDX01"
FORMAT = 1
# A writer holds the lock for one load + append + write (seconds; a minute for millions of vectors),
# never while embedding; waiting longer than this means a writer is stuck or very large.
LOCK_TIMEOUT_S = 300.0


METRICS = {"cosine": faiss.METRIC_INNER_PRODUCT, "euclidean": faiss.METRIC_L2}


@dataclass(frozen=True)
class Match:
    """One search hit. ``score``: the index's ``metric``, a cosine similarity (higher is closer,
    ``unknown`` below the query's threshold) or a Euclidean distance (lower is closer, ``unknown``
    above it). ``entry``: the hit's whole metadata (identity, source, photo, box ...)."""

    id: int
    score: float
    identity: str
    source: str
    unknown: bool
    metric: str = "cosine"
    entry: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


# The "auto" rule, measured by `python tools/benchmark.py name=index` on face-like 128-D vectors
# (docs/speed.md, "Face search speed (faiss)"; 2 threads of this project's 2-core machine):
# - up to 100k vectors exact search: one query alone takes <= 3.6 ms, a 1000-query batch 0.46 ms a
#   query, with no build, no recall loss and 520 bytes a vector; an ANN index would first cost a
#   build (18 s for HNSW at 100k) to save milliseconds.
# - above, HNSW32 at efSearch 64: at 1M recall@1 1.000 and recall@10 0.994 against exact search,
#   15.5x its batched and 90x its single-query speed. efSearch 16 is the edge (recall@1 0.986) and
#   32 the fastest with margin (23.8x); 64 keeps a second step of margin for real embeddings, which
#   can be harder than the synthetic ones, while 128 falls under 10x (8.0x). HNSW needs no training
#   (IVF must train on its first add: 4096+ vectors at 1M, and at nprobe 128 IVF Flat reaches only
#   3.2x), takes additions one by one, and stores efSearch in the index file.
EXACT_UP_TO = 100_000
AUTO_ANN = "IDMap2,HNSW32,Flat"
AUTO_SEARCH_PARAMS = {"efSearch": 64}


def auto_index(expected_size: int) -> tuple[str, dict[str, int]]:
    """The factory string and search-time parameters of the ``auto`` index for a gallery of
    ``expected_size`` vectors."""
    if expected_size <= EXACT_UP_TO:
        return "IDMap2,Flat", {}
    return AUTO_ANN, dict(AUTO_SEARCH_PARAMS)


def auto_factory(expected_size: int) -> str:
    """The factory string of the ``auto`` index for ``expected_size`` vectors (see :func:`auto_index`)."""
    return auto_index(expected_size)[0]


def normalised(vectors: Any, dim: int | None, what: str) -> np.ndarray:
    """``(N, D)`` float32, C-contiguous, unit-norm rows; errors name ``what`` and the problem."""
    x = checked_vectors(vectors, dim, what)
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f"{what}: {int((norms == 0).sum())} vector(s) are all zero")
    faiss.normalize_L2(x)
    return x


def checked_vectors(vectors: Any, dim: int | None, what: str) -> np.ndarray:
    """``(N, D)`` float32, C-contiguous, finite rows (a copy, as given otherwise); errors name ``what``."""
    x = np.array(vectors, dtype=np.float32, copy=True, order="C")
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{what}: expected a non-empty (N, D) array, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{what}: dimension {x.shape[1]} does not match the index's {dim}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} vector(s) hold NaN or infinite values "
                         f"(rows {np.flatnonzero(bad)[:5].tolist()})")
    return x


def describe_model(model: dict[str, Any] | None) -> str:
    """One line naming an embedding model record: ``name (sha256 1a2b3c4d5e6f..., 128-D, align faceapi)``."""
    if model is None:
        return "no recorded embedding model"
    sha = str(model.get("sha256") or "?")
    extras = [f"{model.get('dim', '?')}-D"] + [f"{k} {model[k]}" for k in ("align", "metric") if model.get(k)]
    return f"{model.get('name', '?')} (sha256 {sha[:12]}{'...' if len(sha) > 12 else ''}, {', '.join(extras)})"


# The fields of an embedding model record that must agree for two sets of vectors to be comparable.
MODEL_FIELDS = ("name", "sha256", "dim", "align", "metric")


def same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two embedding model records describe the same vectors (:data:`MODEL_FIELDS` equal)."""
    return all(a.get(k) == b.get(k) for k in MODEL_FIELDS)


class IndexLockTimeout(TimeoutError):
    """Another writer held a face index's lock for longer than the caller would wait."""


_held_locks: dict[tuple[str, int], int] = {}  # (lock file, thread) -> depth: the lock is re-entrant
_held_guard = threading.Lock()


def lock_path(path: str | Path) -> Path:
    """The lock file of the index at ``path``: ``<path>.lock``, beside it (never removed: removing a
    flock file while another process waits on it would let a third one lock a new file)."""
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


@contextmanager
def writer_lock(path: str | Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold the exclusive writer lock of the index at ``path`` (an ``fcntl.flock`` on
    :func:`lock_path`) for the block; re-entrant within a thread. Hold it around a whole
    load-append-save so no other writer saves in between. Waits up to ``timeout`` seconds, then
    raises :class:`IndexLockTimeout` naming the index and the writer (pid) that holds it."""
    path = Path(path)
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = (str(lock.resolve()), threading.get_ident())
    with _held_guard:
        if key in _held_locks:
            _held_locks[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield lock
        finally:
            with _held_guard:
                _held_locks[key] -= 1
        return
    def held(fd: int) -> IndexLockTimeout:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return IndexLockTimeout(
            f"could not lock the face index {path} for writing within {timeout:g} s: another writer holds its lock "
            f"{lock}" + (f" (pid {holder})" if holder else "")
            + "; nothing was written. Retry when it has finished (or wait longer: lock_timeout)")

    with exclusive_flock(lock, timeout, held, f"waiting for another writer of {path}", poll=0.02) as fd:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the message of a writer that times out
        with _held_guard:
            _held_locks[key] = 0
        try:
            yield lock
        finally:
            with _held_guard:
                del _held_locks[key]
            os.ftruncate(fd, 0)


def _bounded_reader(f: BinaryIO, size: int) -> faiss.PyCallbackIOReader:
    """A faiss reader of the first ``size`` bytes of ``f`` from where it stands: faiss cannot read
    into the metadata trailer, so an index cut short is an error, not a parse of the JSON."""
    left = [size]

    def read(n: int) -> bytes:
        chunk = f.read(min(n, left[0]))
        left[0] -= len(chunk)
        return chunk

    return faiss.PyCallbackIOReader(read)


def _footer(f: BinaryIO, size: int) -> tuple[int, str] | None:
    """``(metadata length, generation)`` from the footer of the open file ``f`` of ``size`` bytes,
    or None when it has none (an index of the two-file format, or a file cut short)."""
    if size < FOOTER.size:
        return None
    f.seek(size - FOOTER.size)
    length, generation, magic = FOOTER.unpack(f.read(FOOTER.size))
    if magic != MAGIC or length > size - FOOTER.size:
        return None
    return length, generation.hex()


def _legacy_generation(stat: os.stat_result) -> str:
    # The two-file format has no generation id: the index file's identity and times stand in.
    return f"legacy-{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"


def current_generation(path: str | Path) -> str | None:
    """The generation id of the index saved at ``path`` (a new one every save; reads 32 bytes), or
    None when there is no file."""
    try:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            footer = _footer(f, stat.st_size)
    except FileNotFoundError:
        return None
    return footer[1] if footer else _legacy_generation(stat)


class FaceIndex:
    """Embeddings searchable by cosine similarity or Euclidean distance (``metric``), each with an id,
    an identity, a source and any JSON-able metadata; ``embedding_model`` records what made them.

    Build with :meth:`create` (a faiss factory string, or ``"auto"`` by expected size), fill with
    :meth:`add`, query with :meth:`search`, persist with :meth:`save` / :meth:`load`, or append to
    the file in one locked step with :meth:`append_to`.
    """

    def __init__(self, index: faiss.Index, factory: str, entries: dict[int, dict[str, Any]] | None = None,
                 next_id: int = 0, metric: str = "cosine", embedding_model: dict[str, Any] | None = None):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        if index.metric_type != METRICS[metric]:
            raise ValueError(f"a {metric} FaceIndex needs a faiss index of metric "
                             f"{'inner product (cosine on normalised vectors)' if metric == 'cosine' else 'L2'}")
        self.index, self.factory, self.metric = index, factory, metric
        self.entries = entries or {}
        self.next_id = next_id
        self.embedding_model = dict(embedding_model) if embedding_model is not None else None
        # Where this index was last loaded from or saved to, as (resolved path, generation id), and
        # the changes since (("add", vectors, identities, sources) / ("params", dict)): what a save
        # replays onto the file when another writer saved there in between.
        self._origin: tuple[str, str] | None = None
        self._pending: list[tuple[Any, ...]] = []

    @classmethod
    def create(cls, dim: int, factory: str = "auto", expected_size: int = 0,
               search_params: dict[str, int] | None = None, metric: str = "cosine",
               embedding_model: dict[str, Any] | None = None) -> FaceIndex:
        """An empty index of ``dim``-D vectors; ``factory`` is a faiss factory string (e.g.
        ``IDMap2,Flat``, ``IVF1024,Flat``, ``IDMap2,HNSW32,Flat``) or ``auto`` (:func:`auto_index`:
        the index and its search parameters for ``expected_size`` vectors). ``search_params``
        (see :meth:`set_search_params`) override the auto ones or faiss' defaults. ``metric``:
        ``cosine`` or ``euclidean`` (see the module doc); ``embedding_model``: the record of the model
        whose vectors it will hold (its ``dim`` must be ``dim``)."""
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        if embedding_model is not None and embedding_model.get("dim", dim) != dim:
            raise ValueError(f"the embedding model {describe_model(embedding_model)} makes "
                             f"{embedding_model['dim']}-D vectors, not {dim}-D")
        params: dict[str, int] = {}
        if factory == "auto":
            factory, params = auto_index(expected_size)
        try:
            index = faiss.index_factory(dim, factory, METRICS[metric])
        except RuntimeError as err:
            raise ValueError(f"faiss cannot build index {factory!r}: {str(err).splitlines()[-1]}") from err
        face_index = cls(index, factory, metric=metric, embedding_model=embedding_model)
        face_index.set_search_params(**(params | (search_params or {})))
        return face_index

    def set_search_params(self, **params: int) -> None:
        """Set search-time parameters by their ``faiss.ParameterSpace`` names: ``efSearch`` (HNSW),
        ``nprobe`` (IVF), ``k_factor_rf`` (re-ranking) ..., through any IDMap wrapper. faiss stores
        them in the index file, so they survive :meth:`save` / :meth:`load`."""
        space = faiss.ParameterSpace()
        for name, value in params.items():
            try:
                space.set_index_parameter(self.index, name, value)
            except RuntimeError as err:
                raise ValueError(f"{self.factory!r} has no search parameter {name!r}") from err
        if self._origin is not None and params:
            self._pending.append(("params", dict(params)))

    def search_params(self) -> dict[str, float]:
        """The index's current search-time parameters (empty for exact search)."""
        params: dict[str, float] = {}
        index = faiss.downcast_index(self.index)
        while isinstance(index, (faiss.IndexIDMap, faiss.IndexPreTransform, faiss.IndexRefine)):
            if isinstance(index, faiss.IndexRefine):
                params["k_factor_rf"] = index.k_factor
                index = faiss.downcast_index(index.base_index)
            else:
                index = faiss.downcast_index(index.index)
        if isinstance(index, faiss.IndexIVF):
            params["nprobe"] = index.nprobe
        elif isinstance(index, faiss.IndexHNSW):
            params["efSearch"] = index.hnsw.efSearch
        return params

    @property
    def dim(self) -> int:
        return self.index.d

    def __len__(self) -> int:
        return self.index.ntotal

    def check_embedding_model(self, model: dict[str, Any] | None, what: str) -> None:
        """Refuse vectors made by ``model`` (a record, or None: a model that names none, as the checkpoint
        tools' embedders) when this index records another one, or records none but already holds
        vectors (provenance unknown), or records one while ``model`` is None: the error names both."""
        if model is None:
            if self.embedding_model is None:
                return
            raise ValueError(f"{what} name no embedding model, but this index was built with "
                             f"{describe_model(self.embedding_model)} and compares by {self.metric} distance: "
                             f"search or extend it with the tool that built it (tools/faces.py)")
        if self.embedding_model is None:
            if len(self) == 0:
                return
            raise ValueError(f"{what} come from {describe_model(model)}, but this index of {len(self)} vectors "
                             f"records no embedding model (built by another tool): their distances would mean "
                             f"nothing; build a new index with this model")
        if not same_model(self.embedding_model, model):
            raise ValueError(f"{what} come from {describe_model(model)}, but this index was built with "
                             f"{describe_model(self.embedding_model)}: vectors of two models are not comparable; "
                             f"use the index's model, or build a new index")

    def _vectors(self, vectors: Any, what: str) -> np.ndarray:
        return normalised(vectors, self.dim, what) if self.metric == "cosine" else checked_vectors(vectors, self.dim,
                                                                                                    what)

    def add(self, embeddings: Any, identities: Sequence[str], sources: Sequence[str] | None = None,
            metadata: Sequence[dict[str, Any]] | None = None,
            embedding_model: dict[str, Any] | None = None) -> list[int]:
        """Add ``(N, D)`` embeddings (normalised here for a cosine index, as given for a euclidean one)
        with their identities, sources (file paths) and per-entry ``metadata`` (JSON-able dicts, e.g.
        ``{"photo", "box", "landmarks"}``; the keys ``identity`` and ``source`` are taken);
        returns their new ids. ``embedding_model``: the record of the model that made them, refused
        when the index records another (:meth:`check_embedding_model`) and recorded when the index has
        none yet. An index that needs training (IVF) is trained on the first batch, which must hold at
        least as many vectors as it has lists."""
        x = self._vectors(embeddings, "embeddings to add")
        self.check_embedding_model(embedding_model, "the embeddings to add")
        sources = list(sources) if sources is not None else [""] * len(x)
        metadata = [dict(m) for m in metadata] if metadata is not None else [{} for _ in range(len(x))]
        if not (len(identities) == len(sources) == len(metadata) == len(x)):
            raise ValueError(f"{len(x)} embeddings but {len(identities)} identities, {len(sources)} sources and "
                             f"{len(metadata)} metadata records")
        for row, meta in enumerate(metadata):
            taken = {"identity", "source"} & meta.keys()
            if taken:
                raise ValueError(f"metadata of embedding {row}: the keys {sorted(taken)} are the entry's own "
                                 f"(give them as identities / sources)")
            try:
                json.dumps(meta)
            except (TypeError, ValueError) as err:
                raise ValueError(f"metadata of embedding {row} is not JSON-able ({err}): give lists, numbers "
                                 f"and strings (e.g. array.tolist())") from err
        if not self.index.is_trained:
            try:
                self.index.train(x)
            except RuntimeError as err:
                lists = faiss.extract_index_ivf(self.index).nlist
                raise ValueError(f"training {self.factory!r} on {len(x)} vectors failed: {str(err).splitlines()[-1]} "
                                 f"(the first add trains the index: give it at least {lists} vectors, "
                                 f"{39 * lists} or more for good lists)") from err
        ids = np.arange(self.next_id, self.next_id + len(x), dtype=np.int64)
        self.index.add_with_ids(x, ids)
        for i, identity, source, meta in zip(ids.tolist(), identities, sources, metadata):
            self.entries[i] = {"identity": str(identity), "source": str(source), **meta}
        self.next_id += len(x)
        if self.embedding_model is None and embedding_model is not None:
            self.embedding_model = dict(embedding_model)
        if self._origin is not None:  # only an index tied to a file can be merged onto it
            self._pending.append(("add", x, list(identities), sources, metadata, embedding_model))
        return ids.tolist()

    def search(self, queries: Any, k: int = 5, threshold: float | None = None,
               embedding_model: dict[str, Any] | None = None) -> list[list[Match]]:
        """The ``k`` best matches of each query (``(Q, D)`` or ``(D,)``), best first; a match beyond
        ``threshold`` is flagged ``unknown`` (a face of nobody in the gallery): a cosine score below
        it, or a Euclidean distance above it (thresholds inclusive: at it is a match); None flags
        none. ``embedding_model``: the queries' model, refused when it is not the index's."""
        if len(self) == 0:
            raise ValueError("the index is empty: add embeddings before searching")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = self._vectors(queries, "queries")
        self.check_embedding_model(embedding_model, "the queries")
        scores, ids = self.index.search(x, min(k, len(self)))
        if self.metric == "euclidean":  # faiss' L2 metric returns squared distances
            scores = np.sqrt(np.maximum(scores, 0.0))
        out = []
        for row_scores, row_ids in zip(scores, ids):
            row = []
            for s, i in zip(row_scores.tolist(), row_ids.tolist()):
                if i < 0:
                    continue
                entry = self.entries[i]
                unknown = threshold is not None and (s < threshold if self.metric == "cosine" else s > threshold)
                row.append(Match(i, s, entry["identity"], entry["source"], unknown, self.metric, entry))
            out.append(row)
        return out

    def vectors(self) -> tuple[list[int], np.ndarray]:
        """Every entry's id (ascending) and its stored ``(N, D)`` vector (unit length in a cosine index)."""
        ids = sorted(self.entries)
        if not ids:
            return [], np.zeros((0, self.dim), np.float32)
        return ids, np.stack([self.index.reconstruct(i) for i in ids])

    def save(self, path: str | Path, lock_timeout: float = LOCK_TIMEOUT_S) -> Path:
        """Write the index and its metadata to ``path`` as one file, atomically (a temporary file
        renamed into place): a failed or killed save leaves the previous index with its metadata.

        Under the writer lock (:func:`writer_lock`, waiting up to ``lock_timeout`` s). When this
        index was loaded from (or last saved to) ``path`` and another writer has saved there since,
        the save merges: it loads that index and appends this one's additions (and search
        parameter changes) since the load to it, then writes the result, and this object becomes
        the merged index, so the ids of those additions can change. Saving anywhere else, or an
        index made by :meth:`create`, replaces the file.
        """
        path = Path(path)
        with writer_lock(path, lock_timeout):
            if self._origin is not None and self._origin[0] == str(path.resolve()):
                generation = current_generation(path)
                if generation is not None and generation != self._origin[1]:
                    self._merge_onto(FaceIndex.load(path), path)
            generation = uuid.uuid4()
            meta = {"format": FORMAT, "factory": self.factory, "dim": self.dim, "next_id": self.next_id,
                    "metric": self.metric, "embedding_model": self.embedding_model,
                    "generation": generation.hex, "entries": {str(k): v for k, v in self.entries.items()}}

            def write(tmp: Path) -> None:
                faiss.write_index(self.index, str(tmp))
                index_bytes = tmp.stat().st_size
                trailer = _metadata_trailer(meta | {"index_bytes": index_bytes}, generation)
                with open(tmp, "ab") as f:
                    f.write(trailer)

            atomic_write(path, write)
            # The two-file format's sidecar is stale now; this loader ignores it, an older one would
            # pair it with these vectors.
            Path(f"{path}{META_SUFFIX}").unlink(missing_ok=True)
            self._origin, self._pending = (str(path.resolve()), generation.hex), []
        return path

    def _merge_onto(self, current: FaceIndex, path: Path) -> None:
        """Replay this index's changes since its load onto ``current`` (the index another writer
        saved at ``path`` since) and become the result."""
        try:
            if current.metric != self.metric:
                raise ValueError(f"it compares by {current.metric}, this one by {self.metric}")
            for change in self._pending:
                if change[0] == "add":
                    vectors, identities, sources, metadata, model = change[1:]
                    current.add(vectors, identities, sources, metadata, model or self.embedding_model)
                else:
                    current.set_search_params(**change[1])
        except ValueError as err:
            raise ValueError(f"another writer replaced {path} since this index was loaded, and this index's "
                             f"additions do not fit the new one: {err}; nothing was saved") from err
        log.info("%s: another writer saved since the load; appended %d change(s) to its %d vectors",
                 path, len(self._pending), len(current) - sum(len(c[1]) for c in self._pending if c[0] == "add"))
        self.index, self.factory, self.entries, self.next_id = (current.index, current.factory, current.entries,
                                                                 current.next_id)
        self.embedding_model = current.embedding_model
        self._origin, self._pending = current._origin, []

    @classmethod
    def append_to(cls, path: str | Path, embeddings: Any, identities: Sequence[str],
                  sources: Sequence[str] | None = None, factory: str = "auto", expected_size: int = 0,
                  lock_timeout: float = LOCK_TIMEOUT_S, metadata: Sequence[dict[str, Any]] | None = None,
                  metric: str = "cosine", embedding_model: dict[str, Any] | None = None) -> FaceIndex:
        """Add embeddings (with their ``metadata``, see :meth:`add`) to the index at ``path`` in one
        locked load-add-save, creating it (with ``factory`` / ``expected_size`` / ``metric`` /
        ``embedding_model``, see :meth:`create`) when there is none; returns the saved index.
        Concurrent callers are serialised, so every caller's vectors land. An existing index of
        another metric or embedding model is refused, naming both."""
        path = Path(path)
        with writer_lock(path, lock_timeout):
            if path.exists():
                index = cls.load(path)
                if index.metric != metric:
                    raise ValueError(f"{path} compares vectors by {index.metric} distance, not {metric}: "
                                     f"build a new index for these vectors")
            else:
                dim = int(np.shape(embeddings)[-1]) if np.ndim(embeddings) else 0
                index = cls.create(dim, factory, expected_size=expected_size or len(identities), metric=metric,
                                   embedding_model=embedding_model)
            try:
                index.add(embeddings, identities, sources, metadata, embedding_model)
            except ValueError as err:
                raise ValueError(f"{path}: {err}") from err
            index.save(path, lock_timeout)
        return index

    @classmethod
    def load(cls, path: str | Path) -> FaceIndex:
        """Read an index written by :meth:`save` (or a faiss file with the ``.meta.json`` sidecar of
        the two-file format); a missing, corrupt or truncated file, or metadata that does not
        describe it, is an error naming the file. Needs no lock: a save replaces the file by one
        rename, and the index and its metadata are read from one open file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"index file {path} does not exist")
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            footer = _footer(f, stat.st_size)
            meta = None
            if footer is not None:
                length, generation = footer
                f.seek(stat.st_size - FOOTER.size - length)
                try:
                    meta = json.loads(f.read(length))
                except ValueError as err:
                    raise ValueError(f"{path}: its metadata trailer is not valid JSON (corrupt file): {err}") from err
                index_bytes = stat.st_size - FOOTER.size - length
                if (not isinstance(meta, dict) or meta.get("index_bytes") != index_bytes
                        or meta.get("generation") != generation):
                    raise ValueError(f"{path}: its metadata trailer does not match the file (corrupt file)")
            else:
                index_bytes, generation = stat.st_size, _legacy_generation(stat)
            f.seek(0)
            try:
                index = faiss.read_index(_bounded_reader(f, index_bytes))
            except RuntimeError as err:
                raise ValueError(f"{path} is not a readable faiss index (corrupt or truncated): "
                                 f"{str(err).splitlines()[-1]}") from err
        if meta is None:  # the two-file format, or a file that lost its trailer
            sidecar = Path(f"{path}{META_SUFFIX}")
            if not sidecar.is_file():
                raise ValueError(f"{path} holds a faiss index but no metadata: no trailer (a file cut short, or "
                                 f"not written by FaceIndex.save) and no {sidecar.name} sidecar beside it")
            meta = read_json(sidecar, "index metadata")
            where = sidecar
        else:
            where = path
        entries = {int(k): v for k, v in meta.get("entries", {}).items()}
        if meta.get("dim") != index.d or len(entries) != index.ntotal:
            raise ValueError(f"{where} describes {len(entries)} vectors of dimension {meta.get('dim')}, "
                             f"but {path} holds {index.ntotal} of dimension {index.d}")
        metric = meta.get("metric", "cosine")  # indexes saved before the metric was recorded are cosine
        if metric not in METRICS or index.metric_type != METRICS[metric]:
            raise ValueError(f"{where} records metric {metric!r}, which does not match the faiss index in {path} "
                             f"(corrupt file)")
        loaded = cls(index, meta["factory"], entries, int(meta["next_id"]), metric, meta.get("embedding_model"))
        loaded._origin = (str(path.resolve()), generation)
        return loaded


def _metadata_trailer(meta: dict[str, Any], generation: uuid.UUID) -> bytes:
    """The JSON metadata and the footer that follow the faiss index in the file."""
    text = json.dumps(meta, separators=(",", ":")).encode()
    return text + FOOTER.pack(len(text), generation.bytes, MAGIC)
