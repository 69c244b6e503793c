"""The service's load test: a tiny run against the real service process (every row and column, the counts, no
5xx, no lost request, answers equal to the direct calls', the index check passing); and that its checks can
fail: a client that gets no answer counts the request lost, a moved or missing vector fails the index check."""
import asyncio
import inspect
import math
import socket
import threading

import numpy as np
import pytest

from mnet_vision.benchmarks import serve
from mnet_vision.index.face_index import FaceIndex
from tests.helpers.pretrained import faceapi_package

# the least that still batches (2 in flight) and interleaves adds with searches: the two processes' start is most of it
TINY = {"requests": 4, "concurrency": 2, "photos": 1, "adds": 2, "threads": 1, "timeout_s": 300.0}


def test_a_tiny_run_against_the_service_process_has_every_row_and_column():
    faceapi_package()  # skips, with the reason, where the package cannot be fetched
    rows = serve.compare_service(**TINY)
    args = inspect.signature(serve.compare_service).bind(**TINY)
    args.apply_defaults()
    assert [(row["endpoint"], row["concurrency"]) for row in rows] == [
        ("detect", 1), ("detect", 2), ("faces/search", 1), ("faces/search", 2), ("faces/add (index check)", 2),
        ("faces/search (during adds)", 2)]
    for row in rows[:4]:
        assert row["requests"] == 4
        assert row["non_2xx"] == row["5xx"] == row["lost"] == row["differ"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"] and row["req_s"] > 0 and 1 <= row["mean_batch"] <= row["concurrency"]
        assert row["direct_ms"] > 0 and row["decode_ms"] > 0 and row["direct_drift"] > 0
        assert math.isclose(row["p50_ratio"], row["p50_ms"] / row["direct_ms"])
        assert math.isclose(row["rate_ratio"], row["direct_req_s"] / row["req_s"])
    adds, searches = rows[4:]
    assert adds["requests"] == searches["requests"] == 2
    assert adds["non_2xx"] + adds["lost"] + searches["non_2xx"] + searches["lost"] == 0
    # sample1's three faces indexed first, then two adds
    assert adds["index_check"] == {"served_size": 5, "saved_size": 5, "expected_size": 5, "adds_landed": 2,
                                   "max_vector_diff": pytest.approx(0.0, abs=serve.VECTOR_ATOL), "same": True}
    text = serve.report(rows, args.arguments)
    lines = text.splitlines()
    assert "avx512_vnni" in lines[0] and "1 thread(s)" in lines[0] and "batch_max_size 8" in lines[0]
    assert lines[1] == "| " + " | ".join(serve.COLUMNS) + " |" and len(lines) == 3 + len(rows) + 2
    assert lines[-1].startswith("index check PASS: 2 concurrent /faces/add")


def _index(vectors: np.ndarray, identities: list[str]) -> FaceIndex:
    index = FaceIndex.create(vectors.shape[1], "IDMap2,Flat", metric="euclidean")
    index.add(vectors, identities)
    return index


def test_the_index_check_fails_on_a_moved_a_renamed_or_a_missing_vector():
    rng = np.random.default_rng(0)
    vectors = rng.normal(0, 0.1, (6, 128)).astype(np.float32)
    names = ["ada", "ada", "alan", "alan", "grace", "grace"]
    order = [3, 0, 5, 1, 4, 2]  # the same entries added in another order: the same multiset
    assert serve.entries_diff(_index(vectors, names), _index(vectors[order], [names[i] for i in order])) == (True, 0)
    moved = vectors.copy()
    moved[2, 7] += 1e-5
    same, worst = serve.entries_diff(_index(vectors, names), _index(moved, names))
    assert not same and worst == pytest.approx(1e-5, rel=1e-2)
    assert serve.entries_diff(_index(vectors, names), _index(vectors, names[:5] + ["ada"]))[0] is False
    assert serve.entries_diff(_index(vectors, names), _index(vectors[:5], names[:5])) == (False, math.inf)


def test_a_request_without_an_answer_is_lost_and_the_phase_stops_by_itself():
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, reads, never answers
    held = []
    threading.Thread(target=lambda: held.extend(listener.accept() for _ in range(2)), daemon=True).start()
    job = serve.Job("/detect", serve.Upload("a.jpg", b"not sent anywhere useful", np.zeros((1, 1, 3), np.uint8),
                                            None))
    try:
        outcomes, wall = asyncio.run(serve._drive(f"http://127.0.0.1:{listener.getsockname()[1]}", [job, job], 2,
                                                  timeout_s=0.5))
    finally:
        listener.close()
    assert wall < 5 and all(o.status is None and "timeout_s=0.5" in o.error for o in outcomes)
    stats = serve.latency_stats(outcomes, wall)
    assert stats["lost"] == 2 and stats["non_2xx"] == stats["5xx"] == 0 and math.isnan(stats["p50_ms"])


def test_latency_stats_count_non_2xx_5xx_and_lost_apart():
    outcomes = [serve.Outcome(0.010, 200), serve.Outcome(0.020, 200), serve.Outcome(0.030, 422),
                serve.Outcome(0.040, 503), serve.Outcome(0.5, None, "ConnectError")]
    stats = serve.latency_stats(outcomes, wall_s=2.0)
    assert (stats["non_2xx"], stats["5xx"], stats["lost"]) == (2, 1, 1)
    assert stats["p50_ms"] == pytest.approx(25.0) and stats["mean_ms"] == pytest.approx(25.0)
    assert stats["req_s"] == pytest.approx(2.0)  # 4 answers in 2 s; the lost one is no answer
