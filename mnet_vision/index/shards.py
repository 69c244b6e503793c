"""A faiss IVF index built from the embedding shards that ``tools/predict.py`` writes, without ever
holding all the vectors in memory, and searched with ids mapping back to the photos' paths.

The shards (the contract with predict, :mod:`mnet_vision.predict.shards`):
``<dir>/r{rank:03d}-c{chunk:06d}.json`` beside the ``.npy`` of the same stem. The JSON holds
``{"format": "mnet_vision.predict/1", "kind": "embeddings", "chunk", "rank", "paths": [...],
"unreadable": [...], "rows": N, "dim": D, "model": {...}}``, ``paths`` in the row order of the
``(N, D)`` float32 ``.npy``. A shard is complete once its JSON exists (predict writes it last): an
``.npy`` without one is a shard being written or killed, skipped and counted; a JSON whose vectors
are missing, of another shape, dim, kind or model (its sha256 and task), of a chunk another shard
holds too, or unreadable is an error naming the file, before any training starts.

The build (:func:`build_from_shards`) reads one shard at a time, memory-mapped: a first pass checks
every shard and writes the paths table; the index is trained on a seeded random sample (faiss'
guideline: 30 to 256 training vectors per inverted list; :data:`TRAIN_PER_LIST`); a second pass
adds the vectors in blocks of :data:`ADD_BLOCK` rows, ids counting up from 0 in chunk order (the
input's order, whichever process wrote a chunk). In memory the index then holds its codes only
(IVF-PQ: ``m`` bytes + an 8-byte id a vector); with ``on_disk=True`` every ``block_rows`` vectors go
to an index file of their own, and ``faiss.contrib.ondisk.merge_ondisk`` merges those into
``OnDiskInvertedLists`` (one ``.ivfdata`` file, memory-mapped when searched), so the index may be
larger than memory.

On disk the index is a folder: ``manifest.json`` (format, metric, factory, the shards and what was
skipped) names the files of one build, each carrying the build's id: ``index-<id>.faiss``, the paths
table ``paths-<id>.bin`` (the UTF-8 paths end to end) with its ``offsets-<id>.npy`` (``ntotal + 1``
int64 byte offsets, memory-mapped: no 10M-entry Python dict), and ``ivfdata-<id>.ivfdata`` when on
disk. Every file is written atomically and the manifest last, so a reader sees one whole build,
the old or the new (a reader that finds the files of the manifest it read gone, replaced by a
build in between, reads the new manifest); a build killed midway leaves files no manifest names,
which the next build removes. Builders of one folder take turns on ``<out>/.lock``.

Metrics, as in :class:`~mnet_vision.index.face_index.FaceIndex`: ``cosine`` (vectors L2-normalised,
inner product: scores are cosine similarities, higher is closer) or ``euclidean`` (raw vectors, L2:
scores are Euclidean distances, lower is closer). PQ scores are approximations of those.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import faiss
import numpy as np
from faiss.contrib.exhaustive_search import knn_ground_truth
from faiss.contrib.ondisk import merge_ondisk

from mnet_vision.atomic import atomic_write
from mnet_vision.index.face_index import METRICS, checked_vectors, normalised, same_model
from mnet_vision.locks import exclusive_flock
from mnet_vision.textfiles import read_json, write_json

log = logging.getLogger(__name__)

SHARD_FORMAT = "mnet_vision.predict/1"
INDEX_FORMAT = "mnet_vision.shard_index/1"
MANIFEST = "manifest.json"
STEM = re.compile(r"r\d{3}-c\d{6}")
# The files of one build, <kind>-<build id>.<ext>; a leading dot: atomic_write's temporaries of them.
BUILD_FILE = re.compile(r"\.?(index|paths|offsets|ivfdata|blocks)-([0-9a-f]{16})\b.*")
# faiss warns below 39 training vectors a list (k-means); 40 keeps k-means, the costliest step on a
# CPU (nlist x training vectors distances a pass), at the low end of its 30-256 guideline.
TRAIN_PER_LIST = 40
# Rows copied out of a shard's memory map, normalised and added at once: bounds the build's memory
# (65536 x 128 float32 = 32 MiB) whatever the shards' size.
ADD_BLOCK = 65536
HNSW_QUANTIZER_FROM = 16384
LOCK_TIMEOUT_S = 1.0  # a build takes minutes: a second builder of the same folder fails fast


@dataclass(frozen=True)
class Shard:
    """One complete embedding shard: its files, its rows and the id of its first row in the index."""

    json: Path
    npy: Path
    rows: int
    first_id: int
    unreadable: int

    def vectors(self) -> np.ndarray:
        """The ``(rows, dim)`` float32 vectors, memory-mapped (nothing read until sliced)."""
        return np.load(self.npy, mmap_mode="r")


class Hits(NamedTuple):
    """Search results, one row per query: ``ids`` ``(Q, k)`` int64 (-1: fewer than ``k`` found),
    ``scores`` ``(Q, k)`` float32 (cosine similarity or Euclidean distance, by the index's metric),
    ``paths`` the photo of each id (None for -1)."""

    ids: np.ndarray
    scores: np.ndarray
    paths: list[list[str | None]]


def auto_factory(n: int, dim: int) -> str:
    """The IVF-PQ factory string for ``n`` vectors of ``dim``: ``IVF{nlist},PQ{m}np``.

    ``nlist``: the power of two nearest 4·sqrt(n) (faiss' guideline 4..16·sqrt(n), its low end: the
    k-means of the lists is the build's costliest step on a CPU), at least 16 and no more than
    n / 39 (k-means wants 39 vectors a list). ``m``: ``dim / 2`` sub-quantizers of 8 bits (64 bytes a
    128-D vector; PQ32 loses the top-1 of face-like vectors half the time, see docs/large_indexes.md),
    the largest divisor of ``dim`` up to ``dim / 2``. ``np``: no polysemous training, which faiss'
    factory otherwise runs by default and which takes minutes for a feature IVF search does not use.
    From :data:`HNSW_QUANTIZER_FROM` lists (above ~12M vectors) the lists' centroids are searched
    through an HNSW graph (``IVF16384_HNSW32``, faiss' advice for 1M-100M vectors): assigning each
    vector to its list by brute force would cost ``nlist`` distances a vector, the build's largest step.
    """
    nlist = max(16, min(2 ** round(np.log2(4 * np.sqrt(max(n, 1)))), 2 ** int(np.log2(max(n // 39, 1)))))
    m = max(d for d in range(1, max(dim // 2, 1) + 1) if dim % d == 0)
    return f"IVF{nlist}{'_HNSW32' if nlist >= HNSW_QUANTIZER_FROM else ''},PQ{m}np"


def list_shards(shard_dir: str | os.PathLike) -> tuple[list[Path], list[dict[str, str]]]:
    """The shard JSON files of ``shard_dir`` (or of its ``shards/``: predict's out folder) in chunk
    order, and the skipped ones: ``{"file", "reason"}`` for each ``.npy`` without
    its JSON (a shard predict has not finished)."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise FileNotFoundError(f"shard folder {shard_dir} does not exist")
    stems = {p.stem for p in shard_dir.iterdir() if p.suffix in (".json", ".npy") and STEM.fullmatch(p.stem)}
    if not stems and (shard_dir / "shards").is_dir():  # predict's out folder given: its shards are in shards/
        return list_shards(shard_dir / "shards")
    done, skipped = [], []
    # by chunk, predict's number of the chunk in the input's order, whichever process wrote it: ids
    # follow the input; two shards of one chunk are refused by the scan
    for stem in sorted(stems, key=lambda stem: (int(stem[6:]), stem)):
        if (shard_dir / f"{stem}.json").is_file():
            done.append(shard_dir / f"{stem}.json")
        else:
            skipped.append({"file": str(shard_dir / f"{stem}.npy"), "reason": "no JSON: not finished by predict"})
    return done, skipped


def _read_shard_record(path: Path, first: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON of the shard at ``path``, checked against the contract and against ``first`` (the
    first shard's record: the same dim and model); errors name the file."""
    record = read_json(path, "embedding shard")
    if not isinstance(record, dict) or record.get("format") != SHARD_FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"{path}: not a predict shard (format {got!r}, expected {SHARD_FORMAT!r})")
    if record.get("kind") != "embeddings":
        raise ValueError(f"{path}: a shard of {record.get('kind')!r}, not of 'embeddings': an index is built from "
                         "the shards of an embedding model")
    paths, rows, dim = record.get("paths"), record.get("rows"), record.get("dim")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError(f"{path}: 'paths' must be a list of strings")
    if not isinstance(rows, int) or rows != len(paths):
        raise ValueError(f"{path}: 'rows' is {rows!r} but 'paths' lists {len(paths)} photos: an incomplete shard")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"{path}: 'dim' must be a positive integer, got {dim!r}")
    if first is not None:
        if dim != first["dim"]:
            raise ValueError(f"{path}: {dim}-D vectors, but the shards before hold {first['dim']}-D ones")
        model, model0 = record.get("model") or {}, first.get("model") or {}
        if not same_model(model, model0) or model.get("task") != model0.get("task"):
            raise ValueError(f"{path}: made by {_model_text(model)}, but the shards before by "
                             f"{_model_text(model0)}: vectors of two models cannot share an index")
    return record


def _model_text(model: dict[str, Any]) -> str:
    """predict's model record (``source``, ``task``, ``sha256``) or an index's (``name``, ``sha256``) in words."""
    sha = str(model.get("sha256") or "?")
    return f"{model.get('name') or model.get('source') or '?'} ({model.get('task') or 'task ?'}, sha256 {sha[:12]})"


def _check_npy(path: Path, rows: int, dim: int) -> None:
    """Refuse an ``.npy`` that is missing, unreadable, or not ``(rows, dim)`` float32 (reads its header only)."""
    try:
        vectors = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise ValueError(f"{path}: missing, but its shard's JSON exists (the vectors were removed or lost)") from None
    except (ValueError, OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable .npy file ({err})") from err
    if vectors.dtype != np.float32 or vectors.shape != (rows, dim):
        raise ValueError(f"{path}: holds {vectors.dtype} {vectors.shape}, but its JSON says float32 ({rows}, {dim})")


def _scan_shards(files: Sequence[Path], paths_out: BinaryIO | None = None) -> tuple[list[Shard], dict[str, Any],
                                                                                    np.ndarray]:
    """Check every shard (JSON and ``.npy`` header) and number its rows, in shard order; with
    ``paths_out``, write the paths table's bytes there. Returns the shards, the first shard's record
    (dim, model) and the ``ntotal + 1`` byte offsets of the paths (zeros without ``paths_out``)."""
    shards, first, lengths, next_id, chunks = [], None, [np.zeros(1, np.int64)], 0, {}
    for path in files:
        record = _read_shard_record(path, first)
        if chunks.setdefault(record.get("chunk"), path) != path:  # two processes' shards of one chunk
            raise ValueError(f"{path} and {chunks[record.get('chunk')]} both hold chunk {record.get('chunk')}: "
                             "remove the one predict did not finish last")
        first = first or record
        npy = path.with_suffix(".npy")
        _check_npy(npy, record["rows"], record["dim"])
        if paths_out is not None:
            encoded = [p.encode("utf-8", "surrogateescape") for p in record["paths"]]
            paths_out.write(b"".join(encoded))
            lengths.append(np.fromiter(map(len, encoded), np.int64, len(encoded)))
        shards.append(Shard(path, npy, record["rows"], next_id, len(record.get("unreadable") or [])))
        next_id += record["rows"]
    offsets = np.concatenate(lengths)
    return shards, first or {}, np.cumsum(offsets, out=offsets)  # in place: 8 bytes a vector, not 16


def _prepared(block: np.ndarray, rows: np.ndarray, npy: Path, metric: str) -> np.ndarray:
    """``block`` (rows ``rows`` of the shard ``npy``) copied out of its memory map as float32,
    checked finite and (cosine) non-zero and L2-normalised in place; errors name the file and rows."""
    x = np.array(block, dtype=np.float32, order="C")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{npy}: {int(bad.sum())} vector(s) hold NaN or infinite values "
                         f"(rows {rows[bad][:5].tolist()})")
    if metric == "cosine":
        zero = ~x.any(axis=1)
        if zero.any():
            raise ValueError(f"{npy}: {int(zero.sum())} vector(s) are all zero (rows {rows[zero][:5].tolist()}): "
                             "no direction to compare by cosine")
        faiss.normalize_L2(x)
    return x


def _blocks(shards: Sequence[Shard], metric: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(vectors, ids)`` of every shard in blocks of at most :data:`ADD_BLOCK` rows, prepared
    (:func:`_prepared`): only one block at a time is ever copied out of the memory maps."""
    for shard in shards:
        vectors = shard.vectors()
        for start in range(0, shard.rows, ADD_BLOCK):
            rows = np.arange(start, min(start + ADD_BLOCK, shard.rows))
            yield _prepared(vectors[start:start + ADD_BLOCK], rows, shard.npy, metric), rows + shard.first_id


def _training_sample(shards: Sequence[Shard], size: int, metric: str, dim: int, seed: int) -> np.ndarray:
    """``size`` vectors drawn without replacement (seeded) from all the shards, read shard by shard
    into one array (the sample's memory once, plus one shard's share of it)."""
    total = sum(s.rows for s in shards)
    picked = np.sort(np.random.default_rng(seed).choice(total, size=min(size, total), replace=False))
    sample = np.empty((len(picked), dim), np.float32)
    for shard in shards:
        lo, hi = np.searchsorted(picked, [shard.first_id, shard.first_id + shard.rows])
        if hi > lo:
            rows = picked[lo:hi] - shard.first_id
            sample[lo:hi] = _prepared(shard.vectors()[rows], rows, shard.npy, metric)
    return sample


def _empty_index(factory: str, dim: int, metric: str) -> faiss.Index:
    try:
        index = faiss.index_factory(dim, factory, METRICS[metric])
    except RuntimeError as err:
        raise ValueError(f"faiss cannot build index {factory!r}: {str(err).splitlines()[-1]}") from err
    try:
        faiss.extract_index_ivf(index)
    except RuntimeError:
        raise ValueError(f"factory {factory!r} is not an IVF index: an index from shards is trained on a sample, "
                         "filled shard by shard and searched with nprobe (e.g. IVF1024,PQ64np)") from None
    return index


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save appends ".npy" to a name without it
        np.save(f, array)


def build_from_shards(shard_dir: str | os.PathLike, out: str | os.PathLike, factory: str = "auto",
                      metric: str = "cosine", train_size: int | None = None, nprobe: int | None = None,
                      on_disk: bool = False, block_rows: int = 2_000_000, seed: int = 0) -> dict[str, Any]:
    """Build the index folder ``out`` from the embedding shards in ``shard_dir`` (see the module doc).

    ``factory``: an IVF faiss factory string (``IVF4096,PQ64np``, ``IVF16384_HNSW32,PQ32np``,
    ``OPQ32,IVF4096,PQ32np`` ...) or ``auto`` (:func:`auto_factory` by the vectors' count).
    ``train_size``: training vectors sampled (seeded by ``seed``); None: :data:`TRAIN_PER_LIST` per
    inverted list. ``nprobe``: the lists a search scans by default (stored; None: nlist / 64, at
    least 1). ``on_disk``: inverted lists in an ``.ivfdata`` file (per-block indexes of
    ``block_rows`` vectors merged by ``merge_ondisk``), for indexes larger than memory.

    Returns the manifest (``ntotal``, ``factory``, ``shards``, ``skipped``, ``seconds`` of each step:
    scan, train, add, write ...), also written as ``out/manifest.json``.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    shard_dir, out = Path(shard_dir), Path(out)
    files, skipped = list_shards(shard_dir)
    if out.resolve() == shard_dir.resolve():
        raise ValueError(f"out {out} is the shard folder: give the index a folder of its own")
    out.mkdir(parents=True, exist_ok=True)

    def busy(fd: int) -> RuntimeError:
        return RuntimeError(f"another build of the shard index {out} is running (it holds {out / '.lock'})")

    with exclusive_flock(out / ".lock", LOCK_TIMEOUT_S, busy, f"waiting for another build of {out}"):
        build = secrets.token_hex(8)
        try:
            manifest = _build(files, skipped, shard_dir, out, build, factory, metric, train_size, nprobe, on_disk,
                              block_rows, seed)
        except BaseException:
            _remove_builds(out, lambda other: other == build)  # a failed build leaves nothing of its own
            raise
        _remove_builds(out, lambda other: other != build)
    if skipped:
        log.warning("skipped %d unfinished shard(s) in %s (an .npy without its JSON), e.g. %s", len(skipped),
                    shard_dir, skipped[0]["file"])
    return manifest


def _write_paths_table(files: Sequence[Path], paths: Path, offsets: Path) -> tuple[list[Shard], dict[str, Any]]:
    """Check the shards (:func:`_scan_shards`) while writing the paths table, then its offsets."""
    found: list[Any] = []

    def scan(tmp: Path) -> None:
        with open(tmp, "wb") as paths_out:
            found.extend(_scan_shards(files, paths_out))

    atomic_write(paths, scan)
    shards, first, byte_offsets = found
    atomic_write(offsets, lambda tmp: _save_npy(tmp, byte_offsets))
    return shards, first


def _build(files: Sequence[Path], skipped: list[dict[str, str]], shard_dir: Path, out: Path, build: str,
           factory: str, metric: str, train_size: int | None, nprobe: int | None, on_disk: bool, block_rows: int,
           seed: int) -> dict[str, Any]:
    """:func:`build_from_shards` under its lock: the files of ``build``, the manifest last."""
    names = {"index": f"index-{build}.faiss", "paths": f"paths-{build}.bin", "offsets": f"offsets-{build}.npy",
             "ivfdata": f"ivfdata-{build}.ivfdata" if on_disk else None}
    started = time.perf_counter()
    shards, first = _write_paths_table(files, out / names["paths"], out / names["offsets"])
    ntotal = int(sum(s.rows for s in shards))
    if ntotal == 0:
        raise ValueError(f"{shard_dir}: no vectors in {len(shards)} complete embedding shard(s)"
                         + (f" ({len(skipped)} unfinished skipped)" if skipped else ""))
    dim = int(first["dim"])
    factory = auto_factory(ntotal, dim) if factory == "auto" else factory
    index = _empty_index(factory, dim, metric)
    ivf = faiss.extract_index_ivf(index)
    train_size = TRAIN_PER_LIST * ivf.nlist if train_size is None else int(train_size)
    if train_size < ivf.nlist:
        raise ValueError(f"train_size {train_size} is below the index's {ivf.nlist} lists (faiss: 30..256 a list)")
    if nprobe is not None and not 1 <= nprobe <= ivf.nlist:
        raise ValueError(f"nprobe must lie in 1..{ivf.nlist} (the index's lists), got {nprobe}")
    log.info("training %s on %d of %d vectors", factory, min(train_size, ntotal), ntotal)
    seconds = {"scan": time.perf_counter() - started}
    index.train(_training_sample(shards, train_size, metric, dim, seed))
    seconds["train"] = time.perf_counter() - started - sum(seconds.values())
    ivf.nprobe = max(1, ivf.nlist // 64) if nprobe is None else int(nprobe)
    if on_disk:
        _fill_on_disk(index, shards, metric, out, build, block_rows, names["ivfdata"])
    else:
        for x, ids in _blocks(shards, metric):
            index.add_with_ids(x, ids)
    seconds["add"] = time.perf_counter() - started - sum(seconds.values())
    atomic_write(out / names["index"], lambda tmp: faiss.write_index(index, str(tmp)))
    seconds["write"] = time.perf_counter() - started - sum(seconds.values())
    manifest = {"format": INDEX_FORMAT, "build": build, "files": names, "ntotal": ntotal, "dim": dim,
                "metric": metric, "factory": factory, "nlist": int(ivf.nlist), "nprobe": int(ivf.nprobe),
                "train_size": min(train_size, ntotal), "seed": seed, "on_disk": on_disk,
                "model": first.get("model"), "shard_dir": str(shard_dir),
                "shards": [{"stem": s.json.stem, "rows": s.rows, "first_id": s.first_id,
                            "unreadable": s.unreadable} for s in shards],
                "unreadable": int(sum(s.unreadable for s in shards)), "skipped": skipped,
                "seconds": {step: round(t, 3) for step, t in seconds.items()}}
    write_json(out / MANIFEST, manifest)
    return manifest


def _fill_on_disk(index: faiss.Index, shards: Sequence[Shard], metric: str, out: Path, build: str,
                  block_rows: int, ivfdata: str) -> None:
    """Add the shards' vectors to per-block copies of the trained ``index`` (one file each, in a work
    folder removed after), then merge those into on-disk inverted lists ``out/ivfdata``: the memory
    held is one block's codes, whatever the total."""
    work = out / f"blocks-{build}"
    work.mkdir()
    try:
        files: list[str] = []
        block, filled = faiss.clone_index(index), 0

        def flush() -> None:
            nonlocal block, filled
            files.append(str(work / f"block-{len(files):05d}.faiss"))
            faiss.write_index(block, files[-1])
            block, filled = faiss.clone_index(index), 0

        for x, ids in _blocks(shards, metric):
            block.add_with_ids(x, ids)
            filled += len(x)
            if filled >= block_rows:
                flush()
        if filled:
            flush()
        merge_ondisk(index, files, str(out / ivfdata))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _remove_builds(out: Path, which: Callable[[str], bool]) -> None:
    """Remove the files (and block folders) of the builds of ``out`` whose id ``which`` accepts:
    after a build, every other one (older builds, killed ones); after a failed build, its own.
    Called under the builders' lock."""
    for entry in out.iterdir():
        match = BUILD_FILE.fullmatch(entry.name)
        if match and which(match.group(2)):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


class ShardIndex:
    """A built shard index folder (:func:`build_from_shards`), loaded for search: the faiss index
    (its inverted lists memory-mapped when on disk) and the memory-mapped paths table."""

    def __init__(self, folder: Path, manifest: dict[str, Any], index: faiss.Index, offsets: np.ndarray,
                 paths: np.ndarray | bytes):
        self.folder, self.manifest, self.index = folder, manifest, index
        self.metric: str = manifest["metric"]
        self.dim: int = manifest["dim"]
        self._offsets, self._paths = offsets, paths

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ShardIndex:
        """The index of the folder ``folder``; errors name the file that is missing or inconsistent."""
        folder = Path(folder)
        manifest = read_json(folder / MANIFEST, "shard index manifest")
        while True:
            try:
                return cls._open(folder, manifest)
            except FileNotFoundError:
                # a rebuild in between may have replaced the manifest and removed the files of this one
                newer = read_json(folder / MANIFEST, "shard index manifest")
                if not isinstance(newer, dict) or newer.get("build") == manifest.get("build"):
                    raise
                manifest = newer

    @classmethod
    def _open(cls, folder: Path, manifest: Any) -> ShardIndex:
        if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
            raise ValueError(f"{folder / MANIFEST}: not a shard index manifest (expected format {INDEX_FORMAT!r})")
        files = manifest["files"]
        index_file = folder / files["index"]
        if not index_file.is_file():
            raise FileNotFoundError(f"{index_file}, named by {folder / MANIFEST}, is missing")
        # IO_FLAG_ONDISK_SAME_DIR: the .ivfdata is looked up beside the index file, not at the path it
        # had when built (relative to the builder's working folder), so the folder may move.
        index = faiss.read_index(str(index_file), faiss.IO_FLAG_ONDISK_SAME_DIR if files.get("ivfdata") else 0)
        offsets = np.load(folder / files["offsets"], mmap_mode="r")
        paths_file = folder / files["paths"]
        size = paths_file.stat().st_size
        paths = np.memmap(paths_file, dtype=np.uint8, mode="r") if size else b""
        if index.ntotal != manifest["ntotal"] or index.d != manifest["dim"]:
            raise ValueError(f"{index_file}: {index.ntotal} vectors of {index.d}-D, but {folder / MANIFEST} says "
                             f"{manifest['ntotal']} of {manifest['dim']}-D")
        if len(offsets) != manifest["ntotal"] + 1 or int(offsets[-1]) != size:
            raise ValueError(f"{folder / files['offsets']}: does not describe the {manifest['ntotal']} paths of "
                             f"{paths_file} ({size} bytes)")
        return cls(folder, manifest, index, offsets, paths)

    def paths_of(self, ids: Sequence[int] | np.ndarray) -> list[str | None]:
        """The photo path of each id (None for -1, faiss' "no result")."""
        found: list[str | None] = []
        for i in np.asarray(ids, dtype=np.int64).ravel().tolist():
            if i == -1:
                found.append(None)
                continue
            if not 0 <= i < self.ntotal:
                raise IndexError(f"id {i} is not in the index (0..{self.ntotal - 1})")
            start, end = int(self._offsets[i]), int(self._offsets[i + 1])
            found.append(bytes(self._paths[start:end]).decode("utf-8", "surrogateescape"))
        return found

    def search(self, queries: Any, k: int = 10, nprobe: int | None = None) -> Hits:
        """The top ``k`` of each query vector (``(Q, D)`` or ``(D,)``), scanning ``nprobe`` inverted
        lists (None: the index's, :func:`build_from_shards`' ``nprobe``)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        x = (normalised(queries, self.dim, "queries") if self.metric == "cosine"
             else checked_vectors(queries, self.dim, "queries"))
        ivf = faiss.extract_index_ivf(self.index)
        if nprobe is not None and not 1 <= nprobe <= ivf.nlist:
            raise ValueError(f"nprobe must lie in 1..{ivf.nlist} (the index's lists), got {nprobe}")
        params = faiss.SearchParametersIVF(nprobe=int(nprobe or ivf.nprobe))
        # through any wrapper (OPQ's IndexPreTransform): IVF parameters on the IVF index only
        if isinstance(faiss.downcast_index(self.index), faiss.IndexPreTransform):
            params = faiss.SearchParametersPreTransform(index_params=params)
        scores, ids = self.index.search(x, k, params=params)
        if self.metric == "euclidean":
            scores = np.sqrt(np.maximum(scores, 0))
        paths = self.paths_of(ids)
        return Hits(ids, scores, [paths[r * k:(r + 1) * k] for r in range(len(ids))])


def exact_search(shard_dir: str | os.PathLike, queries: Any, k: int = 10, metric: str = "cosine") -> tuple[
        np.ndarray, np.ndarray]:
    """Exact top-``k`` ``(scores, ids)`` of ``queries`` over the complete shards of ``shard_dir``,
    computed shard block by shard block (``faiss.contrib.exhaustive_search.knn_ground_truth``): the
    ground truth of an index's recall, ids numbered as :func:`build_from_shards` numbers them."""
    shards, first, _ = _scan_shards(list_shards(shard_dir)[0])
    if not shards:
        raise ValueError(f"{shard_dir}: no complete embedding shards")
    dim = int(first["dim"])
    x = normalised(queries, dim, "queries") if metric == "cosine" else checked_vectors(queries, dim, "queries")
    scores, ids = knn_ground_truth(x, (block for block, _ in _blocks(shards, metric)), k,
                                   metric_type=METRICS[metric])
    return (np.sqrt(np.maximum(scores, 0)) if metric == "euclidean" else scores), ids
