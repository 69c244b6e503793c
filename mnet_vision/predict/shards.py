"""The shard format of batch prediction, its writer, reader and checks, and the run summary.

``<out>/shards/<stem>.json`` and, for array outputs, ``<out>/shards/<stem>.npy``, stem
``r{rank:03d}-c{chunk:06d}`` (the process that wrote it, the chunk's number in the input's order).
The JSON::

    {"format": "mnet_vision.predict/1", "kind", "chunk", "rank",
     "paths": [the readable photos, in the .npy's row order], "unreadable": [{"path", "reason"}],
     "rows": N, "dim": D (array kinds), "model": {"source", "task", "sha256", "settings"},
     "records": [one per path, in the tools' JSON shapes] (detections, geolocation, attributes)}

The ``.npy`` is written first, the JSON last, both atomically (:mod:`mnet_vision.atomic`): a shard is
complete when its JSON exists and its rows match the ``.npy``; a chunk without a JSON is pending,
whichever process held it before. ``<out>/predict.json`` sums a run up at its end.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnet_vision.atomic import atomic_write_bytes, remove_orphan_temporaries
from mnet_vision.textfiles import read_json, write_json

FORMAT = "mnet_vision.predict/1"
ARRAY_KINDS = ("embeddings", "attributes")
STEM = re.compile(r"r(\d+)-c(\d+)")


def shard_dir(out: str | Path) -> Path:
    return Path(out) / "shards"


def shard_stem(rank: int, chunk: int) -> str:
    return f"r{rank:03d}-c{chunk:06d}"


def shard_jsons(out: str | Path) -> Iterator[tuple[int, Path]]:
    """``(chunk, json path)`` of every shard JSON under ``out`` (complete or not checked), by name."""
    folder = shard_dir(out)
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("r*-c*.json")):
        match = STEM.fullmatch(path.stem)
        if match:
            yield int(match.group(2)), path


def write_shard(out: str | Path, rank: int, chunk: int, kind: str, model: Mapping[str, Any], paths: Sequence[str],
                unreadable: Sequence[Mapping[str, str]], array: np.ndarray | None,
                records: Sequence[Mapping[str, Any]] | None) -> Path:
    """Write chunk ``chunk``'s shard (the ``.npy`` first, then the JSON, each atomically); returns the
    JSON's path. What a killed earlier holder of the chunk left is :func:`remove_incomplete`'s."""
    folder = shard_dir(out)
    stem = shard_stem(rank, chunk)
    entry: dict[str, Any] = {"format": FORMAT, "kind": kind, "chunk": int(chunk), "rank": int(rank),
                             "paths": list(paths), "unreadable": [dict(u) for u in unreadable], "rows": len(paths),
                             "model": dict(model)}
    if kind in ARRAY_KINDS:
        if array is None or array.ndim != 2 or array.shape[0] != len(paths):
            raise ValueError(f"chunk {chunk}: a {kind} shard needs an (N={len(paths)}, D) array, got "
                             f"{None if array is None else array.shape}")
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array, dtype=np.float32))
        atomic_write_bytes(folder / f"{stem}.npy", buffer.getvalue())
        entry["dim"] = int(array.shape[1])
    if records is not None:
        if len(records) != len(paths):
            raise ValueError(f"chunk {chunk}: {len(records)} records for {len(paths)} photos")
        entry["records"] = list(records)
    return write_json(folder / f"{stem}.json", entry, indent=None)


def remove_incomplete(out: str | Path) -> list[Path]:
    """Remove what killed writers left under ``out``'s shards: each ``.npy`` without its JSON (the
    chunk is pending and may go to another rank, under another name) and the temporaries of writes
    whose process is gone. Call it only while no process writes (a run's global-zero process does,
    before it hands out the pending chunks). Returns the removed files."""
    folder, removed = shard_dir(out), []
    if not folder.is_dir():
        return removed
    for path in sorted(folder.iterdir()):
        if path.suffix == ".npy" and STEM.fullmatch(path.stem) and not path.with_suffix(".json").exists():
            path.unlink(missing_ok=True)
            removed.append(path)
        elif path.name.startswith(".") and ".tmp-" in path.name:
            removed += remove_orphan_temporaries(folder / path.name[1:].split(".tmp-")[0])
    return removed


def read_shard(json_path: str | Path, mmap: bool = True) -> tuple[dict[str, Any], np.ndarray | None]:
    """A shard's JSON entry and its array (memory-mapped by default; None for record kinds). Raises
    ``ValueError`` naming the file when it is not of this format or its ``.npy`` does not hold
    ``rows`` rows of ``dim``."""
    json_path = Path(json_path)
    entry = read_json(json_path, "prediction shard")
    if not isinstance(entry, dict) or entry.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a prediction shard (expected format {FORMAT!r})")
    if entry["kind"] not in ARRAY_KINDS:
        return entry, None
    npy = json_path.with_suffix(".npy")
    if not npy.is_file():
        raise ValueError(f"{json_path}: its array {npy.name} is missing")
    array = np.load(npy, mmap_mode="r" if mmap else None)
    if array.shape != (entry["rows"], entry["dim"]):
        raise ValueError(f"{json_path}: {npy.name} holds {array.shape}, the JSON says "
                         f"({entry['rows']}, {entry['dim']})")
    return entry, array


def check_existing(out: str | Path, kind: str, model: Mapping[str, Any], chunks: Sequence[Sequence[Path]]
                   ) -> set[int]:
    """The chunks whose shards are complete under ``out``, after refusing (``ValueError`` naming the
    file) any shard of another kind, model (its file's sha256) or settings, or of another input
    (a chunk number past this input's, or photos other than this input's chunk holds), and a chunk
    held by two shards."""
    done: dict[int, Path] = {}
    for chunk, path in shard_jsons(out):
        entry, _ = read_shard(path)
        held = entry.get("model") or {}
        why = None
        if entry["kind"] != kind:
            why = f"holds {entry['kind']}, this run predicts {kind}"
        elif held.get("sha256") != model["sha256"] or held.get("task") != model["task"]:
            why = (f"was predicted by model {held.get('source')} (sha256 {str(held.get('sha256'))[:12]}), this "
                   f"run's is {model['source']} (sha256 {model['sha256'][:12]})")
        elif held.get("settings") != model["settings"]:
            why = f"was predicted with settings {held.get('settings')}, this run's are {model['settings']}"
        elif chunk >= len(chunks):
            why = f"is chunk {chunk}, past this input's {len(chunks)} chunks (another input or chunk_size)"
        elif {*entry["paths"], *(u["path"] for u in entry["unreadable"])} != {str(p) for p in chunks[chunk]}:
            why = f"holds other photos than chunk {chunk} of this input (another input or chunk_size)"
        elif chunk in done:  # two runs wrote into one out at once: the union would hold the chunk twice
            why = f"holds chunk {chunk}, as {done[chunk].name} does (two runs into one out?); remove one of them"
        if why:
            raise ValueError(f"out={out}: shard {path} {why}; give another out= or remove its shards/")
        done[chunk] = path
    return set(done)


def summarize(out: str | Path, chunks: int, this_run: Mapping[str, Any], kind: str, model: Mapping[str, Any],
              source: Mapping[str, Any]) -> Path:
    """Write ``<out>/predict.json``: every complete shard's counts (``predicted`` photos, ``unreadable``
    with reasons, ``shards``), whether all ``chunks`` are done, the ``kind``, ``model`` and ``source``
    (the input, its photo count, duplicates left out), and ``this_run``'s figures."""
    photos, unreadable, shards, done = 0, [], [], set()
    for chunk, path in shard_jsons(out):
        entry, _ = read_shard(path)
        photos += entry["rows"]
        unreadable += entry["unreadable"]
        shards.append(path.stem)
        done.add(chunk)
    summary = {"format": FORMAT, "kind": kind, "model": dict(model), "source": dict(source), "predicted": photos,
               "unreadable_count": len(unreadable), "unreadable": unreadable,
               "chunks": chunks, "complete": len(done) == chunks, "shards": shards, "this_run": dict(this_run)}
    return write_json(Path(out) / "predict.json", summary)
