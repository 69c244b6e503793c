"""A faiss index of face embeddings with external ids and a metadata sidecar.

Every vector is float32, C-contiguous and L2-normalised before faiss sees it, and every index uses
the inner-product metric, so scores are cosine similarities (faiss' own defaults are L2, and
``normalize_L2`` works in place on float32 only: the classic ways to get silently wrong rankings).
The index file is a plain faiss index (``faiss.read_index`` opens it); ``<file>.meta.json`` maps
each id to its identity and source. Both are written atomically.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from mnet_vision.atomic import atomic_write
from mnet_vision.jsonfiles import read_json, write_json

META_SUFFIX = ".meta.json"


@dataclass(frozen=True)
class Match:
    """One search hit: cosine ``score``; ``unknown`` when below the query's threshold."""

    id: int
    score: float
    identity: str
    source: str
    unknown: bool


# The "auto" rule, measured by `python tools/benchmark.py index` on face-like 128-D vectors
# (README, "Face search speed (faiss)"; 2 threads of this project's 2-core machine):
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
        raise ValueError(f"{what}: {int(bad.sum())} vector(s) hold NaN or infinite values (rows {np.flatnonzero(bad)[:5].tolist()})")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f"{what}: {int((norms == 0).sum())} vector(s) are all zero")
    faiss.normalize_L2(x)
    return x


class FaceIndex:
    """Embeddings searchable by cosine similarity, each with an id, an identity and a source.

    Build with :meth:`create` (a faiss factory string, or ``"auto"`` by expected size), fill with
    :meth:`add`, query with :meth:`search`, persist with :meth:`save` / :meth:`load`.
    """

    def __init__(self, index: faiss.Index, factory: str, entries: dict[int, dict[str, str]] | None = None,
                 next_id: int = 0):
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError("FaceIndex needs an inner-product faiss index (cosine on normalised vectors)")
        self.index, self.factory = index, factory
        self.entries = entries or {}
        self.next_id = next_id

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

    def save(self, path: str | Path) -> Path:
        """Write the faiss index to ``path`` and the metadata to ``<path>.meta.json``. Both go to
        temporary files first and are renamed into place (metadata, then index) only once both are
        written, so a failed save leaves the previous pair intact and no partial file behind."""
        path = Path(path)
        meta = {"factory": self.factory, "dim": self.dim, "next_id": self.next_id,
                "entries": {str(k): v for k, v in self.entries.items()}}

        def write_both(tmp: Path) -> None:
            faiss.write_index(self.index, str(tmp))
            write_json(Path(f"{path}{META_SUFFIX}"), meta)  # renamed just before the index is

        return atomic_write(path, write_both)

    @classmethod
    def load(cls, path: str | Path) -> FaceIndex:
        """Read an index written by :meth:`save`; a missing, corrupt or truncated file, or metadata
        that does not describe it, is an error naming the file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"index file {path} does not exist")
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as err:
            raise ValueError(f"{path} is not a readable faiss index (corrupt or truncated): "
                             f"{str(err).splitlines()[-1]}") from err
        meta = read_json(Path(f"{path}{META_SUFFIX}"), "index metadata")
        entries = {int(k): v for k, v in meta.get("entries", {}).items()}
        if meta.get("dim") != index.d or len(entries) != index.ntotal:
            raise ValueError(f"{path}{META_SUFFIX} describes {len(entries)} vectors of dimension {meta.get('dim')}, "
                             f"but {path} holds {index.ntotal} of dimension {index.d}")
        return cls(index, meta["factory"], entries, int(meta["next_id"]))
