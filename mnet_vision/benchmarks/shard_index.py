"""The index from embedding shards at scale: build time and memory, index size, search time and
recall against exact search, on synthetic face-like vectors written as predict's shards.

The vectors follow :func:`mnet_vision.benchmarks.index.face_like_vectors`' model (identity centres
of low intrinsic dimension on the unit sphere, several noisy unit "photos" of each, two photos of
one identity at cosine ``intra_cosine``), generated shard by shard (:func:`face_like_shards`), so
10M vectors (5.1 GB) never sit in memory: a shard's identities and their photos come from a
generator seeded by the shard's number, and the queries (new photos of random identities) regenerate
the centres of the shards they fall in.

Each build runs in a fresh process (:func:`measured_build`), so its peak resident memory (the
kernel's ``VmHWM``, faiss' C++ allocations included) is the build's alone, beside the process's resident
memory before it (Python, numpy, faiss loaded) and the peak of numpy's allocations (``tracemalloc``).
Exact search over the shards, block by block (:func:`mnet_vision.index.shards.exact_search`), is
the ground truth for recall@1 / recall@k and the peer of the search times.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm import tqdm

from mnet_vision.benchmarks.index import recall_at
from mnet_vision.index.shards import SHARD_FORMAT, ShardIndex, auto_factory, exact_search
from mnet_vision.markdown import markdown_table
from mnet_vision.textfiles import write_json

QUERY_STREAM = 2**31  # the queries' generator: seeded apart from every shard's


def _model(dim: int, intrinsic_dim: int, seed: int) -> np.ndarray:
    """The ``(dim, intrinsic_dim)`` orthonormal basis every identity centre lies near."""
    rng = np.random.default_rng([seed, QUERY_STREAM + 1])
    return np.linalg.qr(rng.standard_normal((dim, min(intrinsic_dim, dim))))[0].astype(np.float32)


def _centres(rng: np.random.Generator, count: int, basis: np.ndarray, centre_noise: float) -> np.ndarray:
    dim = basis.shape[0]
    centres = rng.standard_normal((count, basis.shape[1]), dtype=np.float32) @ basis.T
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centres += centre_noise / np.sqrt(dim) * rng.standard_normal((count, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    return centres


def _photos(rng: np.random.Generator, centres: np.ndarray, intra_cosine: float) -> np.ndarray:
    # |centre + noise|^2 = 1 + dim * spread^2 on average: two photos have cosine 1 / (1 + dim * spread^2)
    spread = np.float32(np.sqrt((1.0 / intra_cosine - 1.0) / centres.shape[1]))
    x = centres + spread * rng.standard_normal(centres.shape, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def face_like_shards(folder: str | os.PathLike, n: int, dim: int = 128, per_identity: int = 10,
                     shard_rows: int = 100_000, intrinsic_dim: int = 32, intra_cosine: float = 0.6,
                     centre_noise: float = 0.3, seed: int = 0) -> list[Path]:
    """Write ``n`` face-like unit vectors as embedding shards of predict's format into ``folder``
    (``r000-c{chunk:06d}``, ``shard_rows`` rows each, rounded down to whole identities); row ``i``
    is a photo of identity ``i // per_identity``, its path ``synthetic/<identity>/<photo>.jpg``.
    Returns the JSON files."""
    if not 0.0 < intra_cosine < 1.0:
        raise ValueError(f"intra_cosine must lie in (0, 1), got {intra_cosine}")
    per_shard = max(1, shard_rows // per_identity)  # identities a shard
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    basis, written = _model(dim, intrinsic_dim, seed), []
    model = {"name": "synthetic-face-like", "sha256": f"seed{seed}", "dim": dim, "metric": "cosine"}
    for chunk, first in enumerate(range(0, n, per_shard * per_identity)):
        rows = min(per_shard * per_identity, n - first)
        rng = np.random.default_rng([seed, chunk])
        centres = _centres(rng, per_shard, basis, centre_noise)
        owners = np.arange(rows) // per_identity
        stem = folder / f"r000-c{chunk:06d}"
        np.save(stem.with_suffix(".npy"), _photos(rng, centres[owners], intra_cosine))
        identity0 = chunk * per_shard
        paths = [f"synthetic/{identity0 + o:08d}/{r % per_identity}.jpg" for r, o in enumerate(owners.tolist())]
        written.append(write_json(stem.with_suffix(".json"), {
            "format": SHARD_FORMAT, "kind": "embeddings", "chunk": chunk, "rank": 0, "paths": paths,
            "unreadable": [], "rows": rows, "dim": dim, "model": model}, indent=0))
    return written


def face_like_queries(n: int, queries: int, dim: int = 128, per_identity: int = 10, shard_rows: int = 100_000,
                      intrinsic_dim: int = 32, intra_cosine: float = 0.6, centre_noise: float = 0.3,
                      seed: int = 0) -> np.ndarray:
    """``(queries, dim)`` new photos (fresh noise, never a stored row) of random identities of the
    shards :func:`face_like_shards` writes with the same arguments."""
    per_shard = max(1, shard_rows // per_identity)
    identities = -(-n // per_identity)
    rng = np.random.default_rng([seed, QUERY_STREAM])
    owners = rng.integers(0, identities, size=queries)
    basis, centres = _model(dim, intrinsic_dim, seed), np.empty((queries, dim), np.float32)
    for chunk in np.unique(owners // per_shard).tolist():
        mine = owners // per_shard == chunk
        centres[mine] = _centres(np.random.default_rng([seed, chunk]), per_shard, basis,
                                 centre_noise)[owners[mine] % per_shard]
    return _photos(rng, centres, intra_cosine)


# A build in a fresh interpreter that imports what the tool imports (the index room: faiss, numpy),
# not this module (torch, through the timing helpers), so its peak resident memory is the build's.
BUILD_PROCESS = """
import json, sys, time, tracemalloc
import faiss
from mnet_vision.index.shards import build_from_shards

def status_kib(field):  # VmRSS: resident now; VmHWM: its peak, this program's own (getrusage's
    # ru_maxrss also counts the parent's memory at the fork before exec)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

shard_dir, out, threads, options = json.loads(sys.argv[1])
if threads:
    faiss.omp_set_num_threads(threads)
base = status_kib("VmRSS")
tracemalloc.start()
start = time.perf_counter()
manifest = build_from_shards(shard_dir, out, **options)
seconds = time.perf_counter() - start
numpy_peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"manifest": manifest, "build_s": seconds, "base_rss_mib": base / 1024,
                  "peak_rss_mib": status_kib("VmHWM") / 1024, "numpy_peak_mib": numpy_peak / 2**20}))
"""


def measured_build(shard_dir: Path, out: Path, threads: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """:func:`build_from_shards` in a fresh process, with its seconds and memory: ``peak_rss_mib``
    (the process's peak resident memory, faiss' allocations included), ``base_rss_mib`` (before the
    build: Python, numpy and faiss loaded), ``numpy_peak_mib`` (tracemalloc's peak: numpy's arrays)."""
    result = subprocess.run([sys.executable, "-c", BUILD_PROCESS, json.dumps([str(shard_dir), str(out), threads,
                                                                              options])],
                            capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"the build of {out} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])  # faiss may print lines before


def _timed(run: Any, args: tuple, repeats: int) -> tuple[float, Any]:
    """Median seconds of ``run(*args)`` over ``repeats`` calls and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def compare_shard_indexes(sizes: Sequence[int] = (1_000_000, 10_000_000), dim: int = 128,
                          factories: Sequence[str] = ("auto",), nprobes: Sequence[int] = (16, 64),
                          on_disk: Sequence[bool] = (False,), block_rows: int = 2_000_000, queries: int = 1000,
                          k: int = 10, shard_rows: int = 100_000, per_identity: int = 10, repeats: int = 3,
                          threads: int | None = None, tmp_dir: str | None = None, seed: int = 0,
                          progress: bool = True) -> list[dict]:
    """One row per size, factory (``auto``: :func:`~mnet_vision.index.shards.auto_factory`),
    on-disk mode and nprobe, plus the exact peer first for each size.

    ``block_rows``: the vectors of a block index in an on-disk build. Each size's shards are written
    under ``tmp_dir`` (None: the system's temporary folder) and removed after. Row keys: ``n``,
    ``index``, ``on_disk``, ``nprobe``, ``gen_s`` (writing the shards), ``build_s``, ``train_s``,
    ``add_s``, ``peak_rss_mib``, ``base_rss_mib``, ``numpy_peak_mib`` (see :func:`measured_build`),
    ``index_mib`` (index file + its ``.ivfdata``), ``paths_mib`` (paths table + offsets),
    ``ms_per_query`` (a batch of all queries, median of ``repeats``), ``recall1`` / ``recall10``
    (against exact search), ``speedup`` (exact's time / this).
    Exact's row has its search time and no build.
    """
    if threads:
        faiss.omp_set_num_threads(threads)
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="shard-index-", dir=tmp_dir) as tmp:
            shards = Path(tmp) / "shards"
            start = time.perf_counter()
            face_like_shards(shards, n, dim, per_identity, shard_rows, seed=seed)
            gen_s = time.perf_counter() - start
            q = face_like_queries(n, queries, dim, per_identity, shard_rows, seed=seed)
            exact_s, (_, truth) = _timed(exact_search, (shards, q, k), 1)
            rows.append({"n": n, "index": "exact (Flat over the shards)", "on_disk": False, "nprobe": None,
                         "gen_s": gen_s, "ms_per_query": 1000 * exact_s / queries, "recall1": 1.0, "recall10": 1.0,
                         "speedup": 1.0})
            todo = [(f, d) for f in factories for d in on_disk]
            for factory, disk in tqdm(todo, desc=f"build n={n:,}", disable=not progress):
                out = Path(tmp) / f"index-{len(rows)}"
                options = {"factory": factory, "on_disk": disk, "block_rows": block_rows, "seed": seed}
                built = measured_build(shards, out, threads, options)
                manifest, index = built["manifest"], ShardIndex.load(out)
                files = manifest["files"]
                index_bytes = sum((out / files[key]).stat().st_size for key in ("index", "ivfdata") if files[key])
                paths_bytes = sum((out / files[key]).stat().st_size for key in ("paths", "offsets"))
                for nprobe in nprobes:
                    if nprobe > manifest["nlist"]:
                        continue
                    search_s, hits = _timed(index.search, (q, k, nprobe), repeats)
                    rows.append({"n": n, "index": manifest["factory"], "on_disk": disk, "nprobe": nprobe,
                                 "gen_s": gen_s, "build_s": built["build_s"],
                                 "train_s": manifest["seconds"]["train"], "add_s": manifest["seconds"]["add"],
                                 "peak_rss_mib": built["peak_rss_mib"], "base_rss_mib": built["base_rss_mib"],
                                 "numpy_peak_mib": built["numpy_peak_mib"], "index_mib": index_bytes / 2**20,
                                 "paths_mib": paths_bytes / 2**20, "ms_per_query": 1000 * search_s / queries,
                                 "recall1": recall_at(hits.ids, truth, 1), "recall10": recall_at(hits.ids, truth, k),
                                 "speedup": exact_s / search_s})
                del index
    return rows


def _num(row: dict, key: str, fmt: str) -> str:
    return format(row[key], fmt) if row.get(key) is not None else "–"


def shard_index_table(rows: list[dict]) -> str:
    """The rows of :func:`compare_shard_indexes` as a Markdown table."""
    return markdown_table([(f"{r['n']:,}", r["index"], "yes" if r["on_disk"] else "no", _num(r, "nprobe", "d"),
                            _num(r, "build_s", ".1f"), _num(r, "train_s", ".1f"), _num(r, "add_s", ".1f"),
                            _num(r, "peak_rss_mib", ",.0f"), _num(r, "base_rss_mib", ",.0f"),
                            _num(r, "numpy_peak_mib", ",.0f"), _num(r, "index_mib", ",.1f"),
                            _num(r, "paths_mib", ",.1f"), f"{r['ms_per_query']:.3f}", f"{r['recall1']:.3f}",
                            f"{r['recall10']:.3f}", f"{r['speedup']:.1f}x") for r in rows],
                          ["N", "index", "on disk", "nprobe", "build s", "train s", "add s", "peak RSS MiB",
                           "RSS before MiB", "numpy peak MiB", "index MiB", "paths MiB", "ms/query (batch)",
                           "recall@1", "recall@10", "speed vs exact"], align="rllr" + "r" * 12)


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (versions, threads, data, settings) and :func:`shard_index_table`."""
    gen = ", ".join(f"{r['n']:,}: {r['gen_s']:.0f} s" for r in rows if r["nprobe"] is None)
    autos = ", ".join(f"{n:,}: {auto_factory(n, args['dim'])}" for n in args["sizes"])
    return (f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, face-like {args['dim']}-D vectors "
            f"({args['per_identity']} per identity) in shards of {args['shard_rows']:,} rows (written in {gen}), "
            f"{args['queries']} new-photo queries in one batch, k={args['k']}, median of {args['repeats']}; "
            f"auto = {autos}\n" + shard_index_table(rows))
