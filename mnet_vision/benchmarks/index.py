"""Face search speed and recall: faiss ANN indexes beside exact search (Flat) in the same run.

The vectors are synthetic but shaped like face embeddings (:func:`face_like_vectors`): many
identities with several images each, identity centres of low intrinsic dimension, and queries that
are *new* images of gallery identities. ANN recall depends on that structure far more than on the
vector count (isotropic data is a near-worst case), so a table measured on isotropic noise would
pick the wrong defaults; real embeddings should still be checked with the same code.

Every index is built through :meth:`FaceIndex.create` (inner-product metric, the same factory
strings and search-parameter handling as the product) and fed vectors normalised once by
:func:`~mnet_vision.index.face_index.normalised`. Training, adding and searching then call faiss on
``FaceIndex.index`` directly: ``FaceIndex.add`` / ``search`` also keep and look up per-vector
metadata in Python (a dict entry per vector, a ``Match`` per hit), which would make the timing a
measure of Python rather than of the index. Exact search (``IDMap2,Flat``) runs in the same process
on the same data as the ground truth for recall and the peer for the speed-ups; all searches are
timed interleaved with the order rotating (:func:`mnet_vision.benchmarks.timing.rotating_rounds`).
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from mnet_vision.benchmarks.timing import rotating_rounds
from mnet_vision.index.face_index import FaceIndex, normalised
from mnet_vision.markdown import markdown_table

EXACT = "IDMap2,Flat"  # the exact peer: ground truth for recall, baseline for speed


def face_like_vectors(n: int, dim: int = 128, per_identity: int = 10, queries: int = 1000,
                      intrinsic_dim: int = 32, intra_cosine: float = 0.6, centre_noise: float = 0.3,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A gallery of ``n`` face-like unit vectors and ``queries`` held-out query vectors, both
    ``(rows, dim)`` float32 with unit-norm rows.

    Gallery row ``i`` is an image of identity ``i // per_identity``. An identity's centre is a
    random unit vector of an ``intrinsic_dim``-D subspace plus isotropic noise of relative norm
    ``centre_noise`` (embeddings of real faces occupy a low-dimensional part of their space); an
    image is its centre plus isotropic noise scaled so that two images of one identity have cosine
    ``intra_cosine`` on average. Queries are new images (fresh noise) of random gallery identities,
    never copies of gallery rows.
    """
    if n < 1 or queries < 1 or per_identity < 1:
        raise ValueError(f"need n, queries and per_identity >= 1, got {n}, {queries}, {per_identity}")
    if not 0.0 < intra_cosine < 1.0:
        raise ValueError(f"intra_cosine must lie in (0, 1), got {intra_cosine}")
    rng = np.random.default_rng(seed)
    identities = -(-n // per_identity)
    basis = np.linalg.qr(rng.standard_normal((dim, min(intrinsic_dim, dim))))[0].astype(np.float32)
    centres = rng.standard_normal((identities, basis.shape[1]), dtype=np.float32) @ basis.T
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres += centre_noise / np.sqrt(dim) * rng.standard_normal((identities, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # |centre + noise|^2 = 1 + dim * spread^2 on average, so two images have cosine 1 / (1 + dim * spread^2)
    spread = np.float32(np.sqrt((1.0 / intra_cosine - 1.0) / dim))

    def images(owners: np.ndarray) -> np.ndarray:
        x = centres[owners]
        x += spread * rng.standard_normal(x.shape, dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    return images(np.arange(n) // per_identity), images(rng.integers(0, identities, size=queries))


@dataclass(frozen=True)
class Candidate:
    """One index to build (a :meth:`FaceIndex.create` factory string) and the search-time settings
    (``faiss.ParameterSpace`` names, e.g. ``{"efSearch": 64}``) measured on it without rebuilding."""

    factory: str
    settings: tuple[dict[str, int], ...] = ({},)


def sweep(factory: str, name: str, values: Sequence[int], **fixed: int) -> Candidate:
    """A candidate whose parameter ``name`` takes each of ``values`` (plus ``fixed`` settings)."""
    return Candidate(factory, tuple({name: v, **fixed} for v in values))


def ivf_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest 4·sqrt(n) (faiss' guideline is
    4..16·sqrt(n); the low end keeps k-means affordable on a CPU), but no more than n / 39 (k-means
    wants 39 training vectors per list), and at least 16."""
    return max(16, min(2 ** round(np.log2(4 * np.sqrt(n))), 2 ** int(np.log2(max(n // 39, 1)))))


def default_candidates(n: int) -> list[Candidate]:
    """The indexes measured at ``n`` vectors: HNSW32 at efSearch 16-128; IVF Flat probing 1/256 to
    1/16 of its lists; two compressed IVF-PQ variants (PQ32: 32 bytes a vector; 4-bit fast-scan PQ
    re-ranked on the full vectors, which it keeps). The exact peer is added by :func:`compare_indexes`."""
    lists = ivf_lists(n)
    probes = sorted({max(1, lists // part) for part in (256, 64, 32, 16)})
    return [
        sweep("IDMap2,HNSW32,Flat", "efSearch", (16, 32, 64, 128)),
        sweep(f"IVF{lists},Flat", "nprobe", probes),
        # "np": no polysemous training, which the factory's IVF-PQ does by default and which takes
        # minutes (109 s for 10k vectors here) for a feature this search does not use
        sweep(f"IVF{lists},PQ32np", "nprobe", probes[1:]),
        # RFlat has no add_with_ids of its own (faiss #2963): the IDMap2 wrapper gives the ids
        sweep(f"IDMap2,IVF{lists},PQ32x4fs,RFlat", "nprobe", probes[1:], k_factor_rf=4),
    ]


def compare_indexes(sizes: Sequence[int] = (10_000, 100_000, 1_000_000), candidates: Sequence[Candidate] | None = None,
                    queries: int = 1000, k: int = 10, threads: int | None = None, batch: int = 1000,
                    single: int = 100, repeats: int = 3, warmup: int = 1, train_per_list: int = 64,
                    seed: int = 0, progress: bool = True) -> list[dict]:
    """One row per size, index and search setting, measured on :func:`face_like_vectors`.

    Row keys: ``n``, ``index`` (factory string), ``param`` (search setting), ``build_s`` (train +
    add), ``train_s`` (0 without training; IVF trains on ``train_per_list`` sampled vectors per
    list; IVF indexes with the same list count reuse the first one's k-means centroids and count its
    time in theirs: one k-means of 4096 lists takes minutes on 2 cores), ``qps`` (queries/s
    searching ``batch``-query batches, median of ``repeats`` passes over all queries), ``single_ms``
    (median latency of one query alone, over ``single`` queries),
    ``recall1`` / ``recall10`` (share of the exact top-1 / top-``k`` neighbours found in the
    index's top-1 / top-``k``), ``speedup`` / ``speedup_single`` (exact search's time / this time,
    batched / single query), ``bytes_per_vector`` (serialised index size / ``n``). ``candidates``
    defaults to :func:`default_candidates` per size; the exact peer is always measured first.
    """
    if threads:
        faiss.omp_set_num_threads(threads)
    rows = []
    for n in sizes:
        database, query_vectors = face_like_vectors(n, queries=queries, seed=seed)
        database = normalised(database, None, "database")  # a no-op here, but the product's path
        query_vectors = normalised(query_vectors, database.shape[1], "queries")
        todo = [Candidate(EXACT)] + [c for c in (default_candidates(n) if candidates is None else candidates)
                                     if c.factory != EXACT]
        built: dict[str, FaceIndex] = {}
        timings: dict[str, tuple[float, float, int]] = {}
        coarse: dict[int, tuple[np.ndarray, float]] = {}
        for cand in tqdm(todo, desc=f"build n={n}", disable=not progress):
            built[cand.factory], build_s, train_s = _build(cand.factory, database, train_per_list, coarse, seed,
                                                           progress)
            timings[cand.factory] = (build_s, train_s, faiss.serialize_index(built[cand.factory].index).nbytes)
        runs = {_run_name(c.factory, s): (c.factory, s) for c in todo for s in c.settings}
        batched, alone = _time_searches(built, runs, query_vectors, k, batch, single, repeats, warmup, progress)
        truth = _search(built[EXACT], {}, query_vectors, k, batch)
        exact = _run_name(EXACT, {})
        for name, (factory, setting) in runs.items():
            found = _search(built[factory], setting, query_vectors, k, batch)
            build_s, train_s, nbytes = timings[factory]
            rows.append({"n": n, "index": factory, "param": _setting_text(setting), "build_s": build_s,
                         "train_s": train_s, "qps": queries / batched[name], "single_ms": 1000 * alone[name],
                         "recall1": recall_at(found, truth, 1), "recall10": recall_at(found, truth, k),
                         "speedup": batched[exact] / batched[name], "speedup_single": alone[exact] / alone[name],
                         "bytes_per_vector": nbytes / n})
        del built  # before the next size's data: the 1M indexes together take gigabytes
    return rows


def recall_at(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top-``k`` ids (``truth``, ``(Q, >=k)``) present in its
    top-``k`` found ids (``found``, ``(Q, >=k)``); at ``k=1``: the share whose nearest is right."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist()) - {-1}) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k


def _build(factory: str, database: np.ndarray, train_per_list: int, coarse: dict[int, tuple[np.ndarray, float]],
           seed: int, progress: bool, chunk: int = 100_000) -> tuple[FaceIndex, float, float]:
    """The index filled with ``database`` (ids 0..n-1), its build seconds (train + add) and training
    seconds. ``coarse`` maps a list count to trained IVF centroids and their k-means seconds: reused
    when present (faiss skips k-means for a quantizer that holds its lists), recorded otherwise."""
    face_index = FaceIndex.create(database.shape[1], factory)
    index = face_index.index
    train_s = 0.0
    if not index.is_trained:  # IVF: k-means on a sample, as faiss advises (39..256 vectors per list)
        ivf = faiss.extract_index_ivf(index)
        shared = coarse.get(ivf.nlist)
        if shared is not None:
            ivf.quantizer.add(shared[0])
        sample = np.random.default_rng(seed).choice(len(database), min(len(database), train_per_list * ivf.nlist),
                                                    replace=False)
        start = time.perf_counter()
        index.train(database[np.sort(sample)])
        train_s = time.perf_counter() - start
        if shared is None:
            coarse[ivf.nlist] = (ivf.quantizer.reconstruct_n(0, ivf.nlist), train_s)
        else:
            train_s += shared[1]
    start = time.perf_counter()
    with tqdm(total=len(database), desc=f"add {factory}", leave=False, disable=not progress) as bar:
        for first in range(0, len(database), chunk):  # in chunks for the progress bar: HNSW at 1M takes minutes
            part = database[first:first + chunk]
            index.add_with_ids(part, np.arange(first, first + len(part), dtype=np.int64))
            bar.update(len(part))
    return face_index, train_s + time.perf_counter() - start, train_s


def _search(face_index: FaceIndex, setting: dict[str, int], queries: np.ndarray, k: int, batch: int) -> np.ndarray:
    """``(Q, k)`` ids found with ``setting``, searching ``batch`` queries at a time."""
    face_index.set_search_params(**setting)
    return np.concatenate([face_index.index.search(queries[i:i + batch], k)[1] for i in range(0, len(queries), batch)])


def _time_searches(built: dict[str, FaceIndex], runs: dict[str, tuple[str, dict[str, int]]], queries: np.ndarray,
                   k: int, batch: int, single: int, repeats: int, warmup: int,
                   progress: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Per run name: median seconds of one pass over all queries in ``batch``-query batches, and of
    one query searched alone (the first ``single`` queries, each run seeing them in the same order)."""
    passes: dict[str, list[float]] = {name: [] for name in runs}
    alone: dict[str, list[float]] = {name: [] for name in runs}
    single = min(single, len(queries))
    with tqdm(total=len(runs) * (warmup + repeats + 1 + single), desc="search", disable=not progress) as bar:
        for name, measured in rotating_rounds(list(runs), warmup, repeats):
            factory, setting = runs[name]
            start = time.perf_counter()
            _search(built[factory], setting, queries, k, batch)
            if measured:
                passes[name].append(time.perf_counter() - start)
            bar.update()
        # One query alone runs on one thread whatever ``threads`` is: faiss splits a batch by query,
        # so a single query never uses a second thread, but waking it costs (0.12 ms on one thread
        # against 0.39 ms on two for Flat at 10k here; faiss #2953). A server gives each its own.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        for name, measured in rotating_rounds(list(runs), 1, single):
            factory, setting = runs[name]
            built[factory].set_search_params(**setting)
            query = queries[len(alone[name])][None, :]
            start = time.perf_counter()
            built[factory].index.search(query, k)
            if measured:
                alone[name].append(time.perf_counter() - start)
            bar.update()
        faiss.omp_set_num_threads(threads)
    return ({name: statistics.median(t) for name, t in passes.items()},
            {name: statistics.median(t) for name, t in alone.items()})


def _run_name(factory: str, setting: dict[str, int]) -> str:
    return f"{factory} {_setting_text(setting)}"


def _setting_text(setting: dict[str, int]) -> str:
    return ", ".join(f"{name} {value}" for name, value in setting.items()) or "–"


def index_table(rows: list[dict]) -> str:
    """The rows of :func:`compare_indexes` as a Markdown table."""
    # N first (a number), then the index and its search parameter (names), then numbers
    return markdown_table([(f"{r['n']:,}", r["index"], r["param"], f"{r['build_s']:.1f}", f"{r['train_s']:.1f}",
                            f"{r['qps']:,.0f}", f"{r['single_ms']:.3f}", f"{r['recall1']:.3f}",
                            f"{r['recall10']:.3f}", f"{r['speedup']:.1f}x", f"{r['speedup_single']:.1f}x",
                            f"{r['bytes_per_vector']:.0f}") for r in rows],
                          ["N", "index", "search param", "build s", "train s", "queries/s (batch)",
                           "ms/query (single)", "recall@1", "recall@10", "speed vs Flat (batch)",
                           "speed vs Flat (single)", "bytes/vector"], align="rll" + "r" * 9)


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, settings) and :func:`index_table`; ``args``: the call's arguments."""
    return (f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads "
            f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), face-like 128-D vectors "
            f"(10 per identity), {args['queries']} new-image queries, k={args['k']}, median of {args['repeats']} "
            f"interleaved passes\n" + index_table(rows))
