"""Faces end to end on face-api's six real demo photos: decode, detect, landmarks, align, describe and add to a
face index, per stage and in faces per second, for the PyTorch path and with the detector in ONNX Runtime;
beside it the face search latency at 10k entries (measured here) and at 1M (the index benchmark's figures).

Each timed round is what ``FacePipeline.run_files`` costs a user on the six photos (22 faces), then adding
their descriptors to a ``FaceIndex`` (Euclidean, ``IDMap2,Flat``: what ``auto`` picks for a gallery this
size). The paths are interleaved round by round with the order rotating (:func:`rotating_rounds`); medians
over rounds. Stage times come from :attr:`mnet_vision.faces.pipeline.FacePipeline.stage_seconds`.

On the ONNX path every net runs in ONNX Runtime: the detector and face-api's landmark and descriptor nets, each
exported by :func:`mnet_vision.inference.export.export_onnx` (the TorchScript exporter, checked against
PyTorch) and fed by the same input pipeline (``faceapi_net_input``); decoding, alignment and the index are
the same code on both paths.
"""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import onnxruntime as ort
import torch

from mnet_vision.benchmarks.timing import number_or_dash, rotating_rounds
from mnet_vision.deploy.runtime import load_onnx
from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.index.face_index import FaceIndex
from mnet_vision.inference.export import export_onnx
from mnet_vision.markdown import markdown_table
from mnet_vision.pretrained.fetch import fetch_package
from mnet_vision.pretrained.models import load_pretrained

PYTORCH = "PyTorch (BN folded, channels_last)"
ONNX = "ONNX Runtime (detector, landmarks, descriptor)"
STAGES = (("decode", "decode (Pillow)"), ("detect", "detect (SSD MobileNet V1, 512x512)"),
          ("landmarks", "landmarks (68 points, 112x112)"), ("align", "align (face-api's dlib crop)"),
          ("describe", "describe (128-D, 150x150)"), ("index", "add to the index (faiss IDMap2,Flat, L2)"))
#: The ONNX path's nets: (FacePipeline argument, pretrained model, task).
ONNX_NETS = (("detector", "faceapi_ssd", "DetectionTask"), ("landmarks", "faceapi_landmarks68", "FaceLandmarks"),
             ("describer", "faceapi_descriptor", "FaceDescriptor"))
# docs/speed.md, "Face search speed (faiss)": the index benchmark at 1,000,000 128-D vectors (2 threads, the
# project's 2-core machine); cited, not rerun here (its build alone takes minutes)
SEARCH_1M = {"IDMap2,Flat": {"single_ms": 32.576, "batch_qps": 328},
             "IDMap2,HNSW32,Flat efSearch 64": {"single_ms": 0.364, "batch_qps": 5101, "recall_at_1": 1.000}}


def compare_face_pipelines(repeats: int = 3, warmup: int = 1, onnx: bool = True, photos: int = 6,
                           threads: int = 1, search_size: int = 10_000) -> list[dict]:
    """Rows ``{"what", "values": {path: ms or count}, "note"}``: per stage ms per photo, end-to-end ms per
    photo, faces and faces per second for each path (PyTorch; with ``onnx`` the detector, landmark and
    descriptor nets exported and run by ONNX Runtime, ``threads`` intra-op threads, as torch's); then the
    search rows (``search_size`` entries measured, 1M cited). ``photos``: how many of the six demo photos
    (fewer for a quick check)."""
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    files = sorted((fetch_package("faceapi") / "demo").glob("sample*.jpg"))[:photos]
    pipelines = {PYTORCH: FacePipeline()}
    with tempfile.TemporaryDirectory(prefix="faces-benchmark-") as tmp:
        if onnx:
            nets = {}
            for role, name, task in ONNX_NETS:
                path = Path(tmp) / f"{name}.onnx"
                # the detector's logits (magnitude ~10) differ by ~1e-4 between ORT and PyTorch under 2 threads
                # (summation order): 1e-3 still catches a wrong graph; the face nets pass the default 1e-4
                export_onnx(load_pretrained(name, fast=False), path, dynamo=False,
                            check_atol=1e-3 if role == "detector" else 1e-4)
                nets[role] = load_onnx(path, threads=threads, task=task)
            pipelines[ONNX] = FacePipeline(**nets)
        per_round: dict[str, list[dict[str, float]]] = {name: [] for name in pipelines}
        faces: dict[str, int] = {}
        for name, measured in rotating_rounds(list(pipelines), warmup, repeats):
            seconds, faces[name] = _one_round(pipelines[name], files)
            if measured:
                per_round[name].append(seconds)
    rows = []
    for stage, label in STAGES:
        values = {name: statistics.median(r[stage] for r in rounds) * 1000 / len(files)
                  for name, rounds in per_round.items()}
        rows.append({"what": f"{label}, ms / photo", "values": values, "note": ""})
    totals = {name: [sum(r.values()) for r in rounds] for name, rounds in per_round.items()}
    rows.append({"what": "end to end, ms / photo",
                 "values": {n: statistics.median(t) * 1000 / len(files) for n, t in totals.items()}, "note": ""})
    rows.append({"what": "faces found", "values": dict(faces), "note": f"{len(files)} photos"})
    rows.append({"what": "end to end, faces / s", "values": {n: faces[n] / statistics.median(t)
                                                             for n, t in totals.items()}, "note": ""})
    rows += search_rows(search_size, list(pipelines))
    return rows


def _one_round(pipeline: FacePipeline, files: list[Path]) -> tuple[dict[str, float], int]:
    """Seconds per stage of one pass over ``files`` (index add included) and the faces found."""
    pipeline.stage_seconds.clear()
    described, unreadable = pipeline.run_files(files, progress=False)
    if unreadable:
        raise RuntimeError(f"the demo photos {unreadable} could not be read")
    start = time.perf_counter()
    embeddings = np.stack([face.embedding for photo in described for face in photo.faces])
    model = pipeline.embedding_model
    index = FaceIndex.create(embeddings.shape[1], "auto", expected_size=len(embeddings), metric=pipeline.metric,
                             embedding_model=model)
    index.add(embeddings, [""] * len(embeddings), [p.photo for p in described for _ in p.faces],
              embedding_model=model)
    seconds = {stage: pipeline.stage_seconds.get(stage, 0.0) for stage, _ in STAGES}
    seconds["index"] = time.perf_counter() - start
    return seconds, len(embeddings)


def search_rows(size: int, paths: list[str], queries: int = 100, seed: int = 0) -> list[dict]:
    """Face search latency: one 128-D query at a time against ``size`` entries (the index ``auto`` picks,
    Euclidean), median of ``queries``, measured; and the 1M figures of docs/speed.md, cited."""
    rng = np.random.default_rng(seed)
    gallery = rng.normal(0, 0.1, (size, 128)).astype(np.float32)  # face-api descriptors: ~0.1 a coordinate
    index = FaceIndex.create(128, "auto", expected_size=size, metric="euclidean")
    index.add(gallery, [""] * size)
    times = []
    for q in rng.normal(0, 0.1, (queries, 128)).astype(np.float32):
        start = time.perf_counter()
        index.search(q, k=5, threshold=0.6)
        times.append(time.perf_counter() - start)
    same = lambda value: {name: value for name in paths}  # noqa: E731 - search is the same on both paths
    single_1m = SEARCH_1M["IDMap2,HNSW32,Flat efSearch 64"]
    return [
        {"what": f"face search, {size:,} entries ({index.factory}), ms / query", "values": same(
            statistics.median(times) * 1000), "note": f"measured: 1 query, top 5, median of {queries}"},
        {"what": "face search, 1,000,000 entries (IDMap2,HNSW32,Flat efSearch 64), ms / query",
         "values": same(single_1m["single_ms"]),
         "note": f"docs/speed.md (index benchmark): recall@1 {single_1m['recall_at_1']:.3f}, "
                 f"{single_1m['batch_qps']:,} queries/s in batches; exact IDMap2,Flat "
                 f"{SEARCH_1M['IDMap2,Flat']['single_ms']} ms / query"},
    ]


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line and one table: a row per stage and figure, a column per path."""
    paths = list(rows[0]["values"]) if rows else []
    table = []
    for row in rows:
        cells = []
        for path in paths:
            value = row["values"].get(path, math.nan)
            fmt = "{:.0f}" if row["what"] == "faces found" else "{:.3f}" if "search" in row["what"] else "{:.1f}"
            cells.append(number_or_dash(float(value), fmt))
        table.append([row["what"], *cells, row["note"]])
    return (f"faces end to end on face-api's {args['photos']} demo photos (1920 px wide), batch 1 per photo, "
            f"PyTorch {torch.__version__} and ONNX Runtime {ort.__version__}, {args['threads']} thread(s); median "
            f"of {args['repeats']} interleaved rounds after {args['warmup']}\n"
            + markdown_table(table, ["stage", *paths, "note"], align="l" + "r" * len(paths) + "l"))
