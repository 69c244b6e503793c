"""The service under load: ``tools/serve.py`` started as its own process on 127.0.0.1 and driven by an async
client at a fixed concurrency, beside the same work done by calling the models directly in this process.

Per endpoint (``/detect``, ``/faces/search``): ``requests`` uploads of face-api's demo photos (their bytes read
once, cycled), ``concurrency`` of them in flight (:class:`httpx.AsyncClient`; and before, one at a time, the
cost of a request with no queue), each request's latency and status recorded: p50 / p99 / mean latency,
requests per second, how many answers were not 2xx, how many 5xx, how many requests were lost (a transport
error, a timeout, or still unanswered when the phase's ``timeout_s`` ran out: the run stops by itself), and
how many 2xx answers differ from the direct call's answer for the same photo.
The direct call is what the service's batcher runs for one item, on the same loaded models
(:class:`mnet_vision.serving.models.ServedModels`): ``Detector.detect`` of the decoded photo;
``FacePipeline.describe_photo`` and the gallery's search (:class:`mnet_vision.serving.gallery.ServedGallery`,
``FaceIndex.search`` beneath). Timed per call, one at a time, half before and half after the endpoint's load
phases (their ratio shows how far the machine's speed drifted meanwhile). The service also decodes each upload (the
``decode ms`` column: :func:`mnet_vision.serving.uploads.decode_upload` of the same bytes), parses the
multipart form and writes JSON: one at a time, its p50 over the direct p50 is the whole cost of serving a
request; at a concurrency of c the latency is mostly queueing (about c over the rate: Little's law), and the
rates' ratio is the cost.

The index check: ``adds`` concurrent ``POST /faces/add`` (demo faces, ``face=<n>``, under four identities)
interleaved with as many ``/faces/search``, then the service's index (``GET /models``' size, and the file it
saved, loaded) against the same adds done one by one in this process: the same multiset of (identity, vector)
within :data:`VECTOR_ATOL`, no add lost.

Client and service are two processes (no shared GIL), but they share the machine's cores: on a 2-core machine
the client's own work is part of what is measured.
"""
from __future__ import annotations

import asyncio
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import httpx
import numpy as np
import torch

from mnet_vision.benchmarks.timing import number_or_dash
from mnet_vision.faces.gallery import index_faces
from mnet_vision.faces.pipeline import PhotoFaces
from mnet_vision.index.face_index import FaceIndex
from mnet_vision.markdown import markdown_table
from mnet_vision.pretrained.fetch import fetch_package
from mnet_vision.serving.config import ServiceConfig
from mnet_vision.serving.gallery import ServedGallery
from mnet_vision.serving.models import ServedModels
from mnet_vision.serving.uploads import decode_upload

ENDPOINTS = ("detect", "faces/search")
#: The index check's identities, taken in turn by the adds.
IDENTITIES = ("ada", "grace", "alan", "edsger")
#: How far a vector the service stored may lie from the one the serial adds stored (float32, ~0.1 a coordinate).
VECTOR_ATOL = 1e-6
# A 2xx answer differs from the direct call's when a box moves more than this (pixels) or a score or a
# distance more than SCORE_ATOL: the answers are rounded to 0.01 px and 1e-4, and a batch of several photos
# may sum in another order than one photo alone.
BOX_ATOL = 0.05
SCORE_ATOL = 1e-3
#: Direct calls timed per endpoint: enough for a stable median and p99 (``requests`` when fewer).
DIRECT_CALLS = 200
#: One request's own limit (seconds): far beyond any queueing at these concurrencies, so a hang is lost, not waited.
REQUEST_TIMEOUT_S = 120.0
#: How long the service may take to load its models and answer ``/healthz``.
STARTUP_TIMEOUT_S = 300.0
#: How the service is started: what tools/serve.py and the ``mnet-serve`` script run, by this interpreter.
SERVE_COMMAND = ("-c", "from mnet_vision.cli.serve import main; main()")


@dataclass(frozen=True)
class Upload:
    """A demo photo as the client sends it (``data``: its file's bytes) and as the direct calls see it."""

    name: str
    data: bytes
    rgb: np.ndarray
    faces: PhotoFaces


@dataclass(frozen=True)
class Job:
    """One request: ``POST path`` with the upload as the multipart field ``image`` and ``form`` fields."""

    path: str
    upload: Upload
    form: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    """A request's wall time and HTTP status (None: lost, ``error`` says why) and its JSON body when 2xx."""

    seconds: float
    status: int | None
    error: str = ""
    body: Any = None


def demo_uploads(photos: int, models: ServedModels) -> list[Upload]:
    """The first ``photos`` of face-api's six demo photos (1920 px wide), bytes read once, decoded and
    described by ``models``' face pipeline."""
    files = sorted((fetch_package("faceapi") / "demo").glob("sample*.jpg"))
    if not 1 <= photos <= len(files):
        raise ValueError(f"photos={photos!r}: expected 1 to {len(files)} (face-api's demo photos)")
    uploads = []
    for file in files[:photos]:
        data = file.read_bytes()
        rgb = decode_upload(data, file.name, ServiceConfig().max_pixels)
        uploads.append(Upload(file.name, data, rgb, models.faces.describe_photo(rgb, str(file))))
    return uploads


# -- the client ----------------------------------------------------------------------------------------------

async def _send(client: httpx.AsyncClient, job: Job) -> Outcome:
    start = time.perf_counter()
    try:
        response = await client.post(job.path, files={"image": (job.upload.name, job.upload.data, "image/jpeg")},
                                      data=dict(job.form), headers=dict(job.headers))
        body = response.json() if response.is_success else response.text[:300]
    except Exception as err:  # noqa: BLE001 - any failure to get an answer is a lost request, counted
        return Outcome(time.perf_counter() - start, None, f"{type(err).__name__}: {err}")
    return Outcome(time.perf_counter() - start, response.status_code, body=body)


async def _drive(base_url: str, jobs: Sequence[Job], concurrency: int, timeout_s: float) -> tuple[list[Outcome], float]:
    """Every job sent with ``concurrency`` in flight (each worker takes the next job when its answer is in);
    what is unanswered after ``timeout_s`` is cancelled and lost. Returns the outcomes in job order and the
    wall seconds from the first send to the last answer."""
    outcomes: list[Outcome | None] = [None] * len(jobs)
    order = iter(range(len(jobs)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def worker() -> None:
            for i in order:  # one iterator shared by the workers: each job is sent once
                outcomes[i] = await _send(client, jobs[i])

        start = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(jobs)))]
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        wall = time.perf_counter() - start
    unanswered = Outcome(timeout_s, None, f"no answer within the phase's timeout_s={timeout_s:g}")
    return [o if o is not None else unanswered for o in outcomes], wall


def drive(base_url: str, jobs: Sequence[Job], concurrency: int, timeout_s: float) -> tuple[list[Outcome], float]:
    """:func:`_drive` on a new event loop (from synchronous code)."""
    return asyncio.run(_drive(base_url, jobs, concurrency, timeout_s))


def latency_stats(outcomes: Sequence[Outcome], wall_s: float) -> dict[str, float | int]:
    """p50 / p99 / mean ms over the answered requests, answers per second over ``wall_s``, and the counts
    of non-2xx answers, 5xx answers and lost requests."""
    answered = [o for o in outcomes if o.status is not None]
    ms = np.array([o.seconds * 1000 for o in answered]) if answered else np.array([np.nan])
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "req_s": len(answered) / wall_s if wall_s > 0 else float("nan"),
            "non_2xx": sum(1 for o in answered if not 200 <= o.status < 300),
            "5xx": sum(1 for o in answered if o.status >= 500),
            "lost": len(outcomes) - len(answered)}


# -- the service process -------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port of 127.0.0.1 free now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.is_file() else ""
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def running_service(overrides: Sequence[str], log: Path, startup_timeout_s: float = STARTUP_TIMEOUT_S,
                    env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``tools/serve.py <overrides> host=127.0.0.1 port=<free>`` (:data:`SERVE_COMMAND`) as a child process (its
    output to ``log``), yielding its base URL once ``GET /healthz`` answers 200; stopped on leaving (SIGINT,
    uvicorn's graceful shutdown, then killed if it lingers), also on error. A service that exits or does not
    answer within ``startup_timeout_s`` is a RuntimeError quoting the end of its log."""
    port = free_port()
    command = [sys.executable, *SERVE_COMMAND, *overrides, "host=127.0.0.1", f"port={port}"]
    base_url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with status {process.returncode} before answering "
                                   f"/healthz ({' '.join(command)}); its log:\n{_tail(log)}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=5.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"the service did not answer /healthz within {startup_timeout_s:g} s; its log:\n"
                                   f"{_tail(log)}")
            time.sleep(0.2)
        yield base_url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def batcher_items(base_url: str) -> dict[str, tuple[int, int]]:
    """``{batcher: (model calls, items)}`` so far, from ``GET /models``."""
    info = httpx.get(f"{base_url}/models", timeout=30.0).json()
    return {name: (s["calls"], s["items"]) for name, s in info["batching"]["batchers"].items()}


# -- direct calls and answers --------------------------------------------------------------------------------

def _boxes_close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= BOX_ATOL for x, y in zip(a, b))


def same_detections(got: Sequence[Mapping[str, Any]], want: Sequence[Mapping[str, Any]]) -> bool:
    """Whether two detection lists (detections.json entries, best first) agree: labels, boxes, scores."""
    return len(got) == len(want) and all(
        g["label"] == w["label"] and abs(g["score"] - w["score"]) <= SCORE_ATOL
        and _boxes_close(g["box_xyxy"], w["box_xyxy"]) for g, w in zip(got, want))


def same_face_matches(got: Sequence[Mapping[str, Any]], want: Sequence[Mapping[str, Any]], key: str) -> bool:
    """Whether two ``/faces/search`` face lists agree: boxes, labels, and each face's match ids and ``key``
    (``distance`` or ``cosine``) in order."""
    def close(x: float | None, y: float | None) -> bool:
        return (x is None) == (y is None) and (x is None or abs(x - y) <= SCORE_ATOL)

    return len(got) == len(want) and all(
        g["label"] == w["label"] and _boxes_close(g["box"], w["box"]) and close(g[key], w[key])
        and [m["id"] for m in g["matches"]] == [m["id"] for m in w["matches"]]
        and all(close(m[key], n[key]) for m, n in zip(g["matches"], w["matches"])) for g, w in zip(got, want))


def direct_timing(endpoint: str, uploads: Sequence[Upload], models: ServedModels, gallery: ServedGallery,
                  config: ServiceConfig, calls: int) -> tuple[list[float], list[float], dict[str, Any]]:
    """``calls`` direct calls of ``endpoint``'s work, one at a time, cycling over ``uploads``: their seconds,
    the seconds of decoding each upload's bytes, and each photo's answer (what the service should send)."""
    model_s, decode_s, answers = [], [], {}
    for i in range(calls):
        upload = uploads[i % len(uploads)]
        start = time.perf_counter()
        decode_upload(upload.data, upload.name, config.max_pixels)
        decode_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        if endpoint == "detect":
            answer = models.detector.detect([upload.rgb], config.score)[0]
        else:
            answer = gallery.search(models.faces.describe_photo(upload.rgb, upload.name), config.k, config.threshold)
        model_s.append(time.perf_counter() - start)
        answers.setdefault(upload.name, answer)
    return model_s, decode_s, answers


def _differs(endpoint: str, outcome: Outcome, answer: Any, key: str) -> bool:
    if endpoint == "detect":
        return not same_detections(outcome.body["detections"], answer)
    return not same_face_matches(outcome.body["faces"], answer, key)


# -- the index check -----------------------------------------------------------------------------------------

def add_plan(uploads: Sequence[Upload], adds: int) -> list[tuple[Upload, int, str]]:
    """``adds`` additions ``(upload, face number, identity)``: every demo face in turn, the identities in turn."""
    faces = [(u, n) for u in uploads for n in range(len(u.faces.faces))]
    if not faces:
        raise ValueError("the demo photos given hold no face to add")
    return [(*faces[i % len(faces)], IDENTITIES[i % len(IDENTITIES)]) for i in range(adds)]


def serial_adds(start: Path, plan: Sequence[tuple[Upload, int, str]], model: dict[str, Any]) -> FaceIndex:
    """The index file ``start`` with the planned faces added one by one in this process."""
    index = FaceIndex.load(start)
    for upload, number, identity in plan:
        index.add(np.asarray(upload.faces.faces[number].embedding, np.float32)[None], [identity],
                  embedding_model=model)
    return index


def entries_diff(a: FaceIndex, b: FaceIndex) -> tuple[bool, float]:
    """Whether ``a`` and ``b`` hold the same multiset of (identity, vector), vectors within :data:`VECTOR_ATOL`,
    and the largest difference of a matched pair (inf when an identity's counts differ). Each vector of ``a``
    is paired with the nearest unpaired vector of ``b`` of its identity."""
    def by_identity(index: FaceIndex) -> dict[str, np.ndarray]:
        ids, vectors = index.vectors()
        names = np.array([index.entries[i]["identity"] for i in ids])
        return {name: vectors[names == name] for name in sorted(set(names.tolist()))}

    left, right = by_identity(a), by_identity(b)
    if left.keys() != right.keys() or any(len(left[n]) != len(right[n]) for n in left):
        return False, float("inf")
    worst = 0.0
    for name, vectors in left.items():
        free = list(range(len(right[name])))
        for vector in vectors:
            diffs = [float(np.abs(right[name][j] - vector).max()) for j in free]
            best = int(np.argmin(diffs))
            worst = max(worst, diffs[best])
            free.pop(best)
    return worst <= VECTOR_ATOL, worst


def index_check(base_url: str, index_path: Path, start: Path, uploads: Sequence[Upload], adds: int, concurrency: int,
                model: dict[str, Any], timeout_s: float, token: str) -> list[dict[str, Any]]:
    """``adds`` ``/faces/add`` (with the write ``token``) interleaved with as many ``/faces/search`` at
    ``concurrency``; the rows of the adds and the searches, the adds' row with the comparison against
    :func:`serial_adds` of ``start`` (the index file before the adds)."""
    plan = add_plan(uploads, adds)
    jobs = []
    for upload, number, identity in plan:
        jobs.append(Job("/faces/add", upload, {"identity": identity, "face": str(number)},
                        {"Authorization": f"Bearer {token}"}))
        jobs.append(Job("/faces/search", upload))
    outcomes, wall = drive(base_url, jobs, concurrency, timeout_s)
    served_size = httpx.get(f"{base_url}/models", timeout=30.0).json()["index"]["size"]
    saved = FaceIndex.load(index_path)
    expected = serial_adds(start, plan, model)
    same, worst = entries_diff(saved, expected)
    landed = sum(1 for o, j in zip(outcomes, jobs) if j.path == "/faces/add" and o.status is not None
                 and 200 <= o.status < 300 and len(o.body["added"]) == 1)
    check = {"served_size": int(served_size), "saved_size": len(saved), "expected_size": len(expected),
             "adds_landed": landed, "max_vector_diff": worst,
             "same": same and landed == adds and served_size == len(saved) == len(expected)}
    rows = []
    for path, label in (("/faces/add", "faces/add (index check)"), ("/faces/search", "faces/search (during adds)")):
        mine = [o for o, j in zip(outcomes, jobs) if j.path == path]
        rows.append({"endpoint": label, "requests": len(mine), "concurrency": concurrency,
                     **latency_stats(mine, wall), "req_s": float("nan"), "differ": None,
                     **({"index_check": check} if path == "/faces/add" else {})})
    # one wall clock for both kinds: the rate of the mix, on the adds' row
    rows[0]["req_s"] = sum(1 for o in outcomes if o.status is not None) / wall
    return rows


# -- the benchmark -------------------------------------------------------------------------------------------

def load_phase(base_url: str, endpoint: str, jobs: Sequence[Job], concurrency: int,
               timeout_s: float) -> dict[str, Any]:
    """One load phase of ``endpoint`` (:func:`drive`): its outcomes, wall seconds, and the model calls and
    items the endpoint's batcher ran meanwhile."""
    batcher = "detect" if endpoint == "detect" else "faces"
    before = batcher_items(base_url)[batcher]
    outcomes, wall = drive(base_url, jobs, concurrency, timeout_s)
    calls, items = (a - b for a, b in zip(batcher_items(base_url)[batcher], before))
    return {"endpoint": endpoint, "concurrency": concurrency, "outcomes": outcomes, "wall": wall, "calls": calls,
            "items": items}


def phase_row(phase: Mapping[str, Any], direct: Sequence[tuple[list[float], list[float], dict[str, Any]]],
              key: str) -> dict[str, Any]:
    """The row of a :func:`load_phase` beside the direct calls timed before and after the endpoint's phases
    (:func:`direct_timing`'s, ``direct_drift``: the median after over the median before); ``key``: the
    distance's name in a face search answer."""
    (before_s, decode_before, answers), (after_s, decode_after, _) = direct
    model_s, outcomes = before_s + after_s, phase["outcomes"]
    row = {"endpoint": phase["endpoint"], "requests": len(outcomes), "concurrency": phase["concurrency"],
           **latency_stats(outcomes, phase["wall"]),
           "mean_batch": phase["items"] / phase["calls"] if phase["calls"] else float("nan"),
           "direct_ms": statistics.median(model_s) * 1000,
           "direct_p99_ms": float(np.percentile(model_s, 99)) * 1000, "direct_req_s": len(model_s) / sum(model_s),
           "direct_drift": statistics.median(after_s) / statistics.median(before_s),
           "decode_ms": statistics.median(decode_before + decode_after) * 1000,
           "differ": sum(1 for o in outcomes if o.status is not None and 200 <= o.status < 300
                         and _differs(phase["endpoint"], o, answers[o.body["file"]], key))}
    row["p50_ratio"] = row["p50_ms"] / row["direct_ms"]
    row["rate_ratio"] = row["direct_req_s"] / row["req_s"]
    return row


def compare_service(requests: int = 2000, concurrency: int = 16, endpoints: Sequence[str] = ENDPOINTS,
                    photos: int = 6, batch_max_size: int = 8, batch_max_wait_ms: float = 5.0, threads: int = 1,
                    adds: int = 40, timeout_s: float = 1800.0) -> list[dict]:
    """Two rows per endpoint of ``endpoints`` (``detect``, ``faces/search``) against ``tools/serve.py``
    (face-api's detector and face pipeline, a gallery of the demo faces, ``batch_max_size`` /
    ``batch_max_wait_ms``, ``threads`` torch threads), beside the direct calls: ``min(requests, DIRECT_CALLS)``
    uploads of the first ``photos`` demo photos one at a time, then ``requests`` at ``concurrency`` in flight
    (only the latter when ``concurrency`` is 1); then (``adds`` > 0) the index check's two rows. Each load phase stops
    after ``timeout_s`` seconds, what is unanswered then counted lost. Row keys: ``endpoint``, ``requests``,
    ``concurrency``, ``p50_ms``, ``p99_ms``, ``mean_ms``, ``req_s``, ``non_2xx``, ``5xx``, ``lost``,
    ``differ`` (2xx answers unlike the direct call's), ``mean_batch``, ``direct_ms`` / ``direct_p99_ms`` /
    ``direct_req_s`` (the model's work on the decoded photo, timed half before and half after the endpoint's
    load phases), ``direct_drift`` (the after half's median over the before half's), ``decode_ms``,
    ``p50_ratio`` (service p50 / direct p50), ``rate_ratio`` (direct rate / service rate); the adds' row
    ``index_check``."""
    unknown = [e for e in endpoints if e not in ENDPOINTS]
    if unknown:
        raise ValueError(f"endpoints={list(endpoints)!r}: {unknown} not load-tested; expected some of {ENDPOINTS}")
    if requests < 1 or concurrency < 1 or adds < 0:
        raise ValueError(f"requests={requests}, concurrency={concurrency}, adds={adds}: expected requests >= 1, "
                         f"concurrency >= 1, adds >= 0")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    settings = {"threads": threads, "batch_max_size": batch_max_size, "batch_max_wait_ms": batch_max_wait_ms}
    config = ServiceConfig(detector="faceapi_ssd", faces=True, **settings)
    models = ServedModels.load(config)
    uploads = demo_uploads(photos, models)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="serve-benchmark-") as tmp:
        index_path, start = Path(tmp) / "gallery.faceindex", Path(tmp) / "gallery-before-adds.faceindex"
        index_faces([u.faces for u in uploads], [], index_path, models.faces.embedding_model, models.faces.metric)
        gallery = ServedGallery(models.faces, index_path)
        half = max(1, min(requests, DIRECT_CALLS) // 2)
        overrides = ["detector=faceapi_ssd", "faces=true", f"index={index_path}", "writable=true",
                     f"threads={threads}", f"batch.max_size={batch_max_size}", f"batch.max_wait_ms={batch_max_wait_ms}"]
        # writes behind a token, as a service open to others would be (the tool reads it from the environment);
        # faiss (the index) reads OpenMP's thread count: the service's as this process's
        token = secrets.token_hex(16)
        env = {"MNET_SERVE_TOKEN": token, "OMP_NUM_THREADS": str(threads)}
        with running_service(overrides, Path(tmp) / "serve.log", env=env) as url:
            key = "distance" if models.faces.metric == "euclidean" else "cosine"
            for endpoint in endpoints:
                path = f"/{endpoint}"
                warmup, _ = drive(url, [Job(path, u) for u in uploads] * 2, concurrency, timeout_s)
                failed = [o for o in warmup if o.status is None or not 200 <= o.status < 300]
                if failed:
                    raise RuntimeError(f"{path}: {len(failed)} of the {len(warmup)} warm-up requests failed: "
                                       f"{failed[0].status} {failed[0].error or failed[0].body}")
                # the direct calls half before and half after the service's phases (the service idle
                # meanwhile), so that a machine whose load drifts shows it (direct_drift) and both sides see it
                direct = [direct_timing(endpoint, uploads, models, gallery, config, half)]
                # one at a time first (DIRECT_CALLS of them): the cost of serving a request, no queue; then
                # `concurrency` in flight: the throughput, and the latency a client sees behind the queue
                phases = []
                for in_flight, count in [*([(1, min(requests, DIRECT_CALLS))] if concurrency > 1 else []),
                                         (concurrency, requests)]:
                    jobs = [Job(path, uploads[i % len(uploads)]) for i in range(count)]
                    phases.append(load_phase(url, endpoint, jobs, in_flight, timeout_s))
                direct.append(direct_timing(endpoint, uploads, models, gallery, config, half))
                rows += [phase_row(phase, direct, key) for phase in phases]
            if adds:
                shutil.copyfile(index_path, start)  # what the serial adds start from: the searches changed nothing
                rows += index_check(url, index_path, start, uploads, adds, concurrency,
                                    models.faces.embedding_model, timeout_s, token)
    return rows


# -- the report ----------------------------------------------------------------------------------------------

def cpu_line() -> str:
    """The CPU's model name (``lscpu``) and whether it has avx512_vnni (int8 dot products)."""
    name = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
        name = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), name)
        flags = next((line for line in out.splitlines() if line.startswith("Flags")), "")
    except (OSError, subprocess.SubprocessError):
        flags = ""
    vnni = "avx512_vnni" in flags.split()
    return f"{name} ({os.cpu_count()} cores, avx512_vnni {'yes' if vnni else 'no'})"


COLUMNS = ("endpoint", "requests", "concurrency", "p50 ms", "p99 ms", "mean ms", "req/s", "mean batch",
           "direct ms", "direct req/s", "direct after / before", "decode ms", "p50 / direct", "direct rate / rate",
           "non-2xx", "5xx", "lost", "differ")


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line (CPU, threads, batching, load average), the table, and the index check's line."""
    table = []
    for row in rows:
        f = lambda key, fmt="{:.1f}", row=row: number_or_dash(float(row.get(key, float("nan"))), fmt)  # noqa: E731
        table.append([row["endpoint"], str(row["requests"]), str(row["concurrency"]), f("p50_ms"), f("p99_ms"),
                      f("mean_ms"), f("req_s"), f("mean_batch", "{:.2f}"), f("direct_ms"), f("direct_req_s"),
                      f("direct_drift", "{:.2f}"), f("decode_ms"), f("p50_ratio", "{:.2f}x"),
                      f("rate_ratio", "{:.2f}x"), str(row["non_2xx"]), str(row["5xx"]), str(row["lost"]),
                      "–" if row["differ"] is None else str(row["differ"])])
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    header = (f"tools/serve.py on 127.0.0.1 (uvicorn, one process) driven by httpx.AsyncClient in another; "
              f"{cpu_line()}; torch {torch.__version__}, {args['threads']} thread(s) in the service and the direct "
              f"calls; batch_max_size {args['batch_max_size']}, batch_max_wait_ms {args['batch_max_wait_ms']}; "
              f"face-api's first {args['photos']} demo photo(s) (1920 px wide) cycled; direct: one call at a time, "
              f"model only (decode ms apart); load average after the run {load}")
    text = header + "\n" + markdown_table(table, list(COLUMNS), align="l" + "r" * (len(COLUMNS) - 1))
    for row in rows:
        check = row.get("index_check")
        if check:
            verdict = "PASS" if check["same"] else "FAIL"
            text += (f"\n\nindex check {verdict}: {row['requests']} concurrent /faces/add interleaved with as many "
                     f"/faces/search; {check['adds_landed']} of {row['requests']} adds landed; the service's index "
                     f"{check['served_size']} faces, its saved file {check['saved_size']}, the same adds done "
                     f"serially {check['expected_size']}; (identity, vector) multisets "
                     f"{'equal' if check['same'] else 'NOT equal'} (largest vector difference "
                     f"{check['max_vector_diff']:.2g}, tolerance {VECTOR_ATOL:g})")
    return text
