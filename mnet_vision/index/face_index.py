"""A faiss index of face embeddings with external ids and their metadata, in one file.

Every vector is float32, C-contiguous and L2-normalised before faiss sees it, and every index uses
the inner-product metric, so scores are cosine similarities (faiss' own defaults are L2, and
``normalize_L2`` works in place on float32 only: the classic ways to get silently wrong rankings).

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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Match:
    """One search hit: cosine ``score``; ``unknown`` when below the query's threshold."""

    id: int
    score: float
    identity: str
    source: str
    unknown: bool


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
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f"{what}: {int((norms == 0).sum())} vector(s) are all zero")
    faiss.normalize_L2(x)
    return x


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
    """Embeddings searchable by cosine similarity, each with an id, an identity and a source.

    Build with :meth:`create` (a faiss factory string, or ``"auto"`` by expected size), fill with
    :meth:`add`, query with :meth:`search`, persist with :meth:`save` / :meth:`load`, or append to
    the file in one locked step with :meth:`append_to`.
    """

    def __init__(self, index: faiss.Index, factory: str, entries: dict[int, dict[str, str]] | None = None,
                 next_id: int = 0):
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("FaceIndex needs an inner-product faiss index (cosine on normalised vectors)")
        self.index, self.factory = index, factory
        self.entries = entries or {}
        self.next_id = next_id
        # Where this index was last loaded from or saved to, as (resolved path, generation id), and
        # the changes since (("add", vectors, identities, sources) / ("params", dict)): what a save
        # replays onto the file when another writer saved there in between.
        self._origin: tuple[str, str] | None = None
        self._pending: list[tuple[Any, ...]] = []

    @classmethod
    def create(cls, dim: int, factory: str = "auto", expected_size: int = 0,
               search_params: dict[str, int] | None = None) -> FaceIndex:
        """An empty index of ``dim``-D vectors; ``factory`` is a faiss factory string (e.g.
        ``IDMap2,Flat``, ``IVF1024,Flat``, ``IDMap2,HNSW32,Flat``) or ``auto`` (:func:`auto_index`:
        the index and its search parameters for ``expected_size`` vectors). ``search_params``
        (see :meth:`set_search_params`) override the auto ones or faiss' defaults."""
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        params: dict[str, int] = {}
        if factory == "auto":
            factory, params = auto_index(expected_size)
        try:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as err:
            raise ValueError(f"faiss cannot build index {factory!r}: {str(err).splitlines()[-1]}") from err
        face_index = cls(index, factory)
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

    def add(self, embeddings: Any, identities: Sequence[str], sources: Sequence[str] | None = None) -> list[int]:
        """Add ``(N, D)`` embeddings (normalised here) with their identities and sources (file paths);
        returns their new ids. An index that needs training (IVF) is trained on the first batch,
        which must hold at least as many vectors as it has lists."""
        x = normalised(embeddings, self.dim, "embeddings to add")
        sources = list(sources) if sources is not None else [""] * len(x)
        if not (len(identities) == len(sources) == len(x)):
            raise ValueError(f"{len(x)} embeddings but {len(identities)} identities and {len(sources)} sources")
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
        for i, identity, source in zip(ids.tolist(), identities, sources):
            self.entries[i] = {"identity": str(identity), "source": str(source)}
        self.next_id += len(x)
        if self._origin is not None:  # only an index tied to a file can be merged onto it
            self._pending.append(("add", x, list(identities), sources))
        return ids.tolist()

    def search(self, queries: Any, k: int = 5, threshold: float = -1.0) -> list[list[Match]]:
        """The ``k`` best matches of each query (``(Q, D)`` or ``(D,)``), best first; a match scoring
        below ``threshold`` is flagged ``unknown`` (a face of nobody in the gallery)."""
        if len(self) == 0:
            raise ValueError("the index is empty: add embeddings before searching")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        scores, ids = self.index.search(normalised(queries, self.dim, "queries"), min(k, len(self)))
        out = []
        for row_scores, row_ids in zip(scores, ids):
            out.append([Match(int(i), float(s), self.entries[int(i)]["identity"], self.entries[int(i)]["source"],
                              float(s) < threshold)
                        for s, i in zip(row_scores, row_ids) if i >= 0])
        return out

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
            for change in self._pending:
                if change[0] == "add":
                    current.add(*change[1:])
                else:
                    current.set_search_params(**change[1])
        except ValueError as err:
            raise ValueError(f"another writer replaced {path} since this index was loaded, and this index's "
                             f"additions do not fit the new one: {err}; nothing was saved") from err
        log.info("%s: another writer saved since the load; appended %d change(s) to its %d vectors",
                 path, len(self._pending), len(current) - sum(len(c[1]) for c in self._pending if c[0] == "add"))
        self.index, self.factory, self.entries, self.next_id = (current.index, current.factory, current.entries,
                                                                 current.next_id)
        self._origin, self._pending = current._origin, []

    @classmethod
    def append_to(cls, path: str | Path, embeddings: Any, identities: Sequence[str],
                  sources: Sequence[str] | None = None, factory: str = "auto", expected_size: int = 0,
                  lock_timeout: float = LOCK_TIMEOUT_S) -> FaceIndex:
        """Add embeddings to the index at ``path`` in one locked load-add-save, creating it (with
        ``factory`` / ``expected_size``, see :meth:`create`) when there is none; returns the saved
        index. Concurrent callers are serialised, so every caller's vectors land."""
        path = Path(path)
        with writer_lock(path, lock_timeout):
            if path.exists():
                index = cls.load(path)
            else:
                dim = int(np.shape(embeddings)[-1]) if np.ndim(embeddings) else 0
                index = cls.create(dim, factory, expected_size=expected_size or len(identities))
            index.add(embeddings, identities, sources)
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
        loaded = cls(index, meta["factory"], entries, int(meta["next_id"]))
        loaded._origin = (str(path.resolve()), generation)
        return loaded


def _metadata_trailer(meta: dict[str, Any], generation: uuid.UUID) -> bytes:
    """The JSON metadata and the footer that follow the faiss index in the file."""
    text = json.dumps(meta, separators=(",", ":")).encode()
    return text + FOOTER.pack(len(text), generation.bytes, MAGIC)
