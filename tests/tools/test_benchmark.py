"""tools/benchmark.py: the dispatch over mnet_vision.benchmarks.suite, its keys and errors."""
import pytest

from mnet_vision.benchmarks.suite import BENCHMARKS, describe, run
from tests.helpers.cli import run_tool


def test_benchmark_tool_prints_the_header_and_table():
    out = run_tool("benchmark.py", "name=index", "sizes=[1000]", "queries=20", "threads=1", "repeats=1")
    header, *table = out.stdout.splitlines()
    assert header.startswith("faiss ") and "1 threads" in header
    assert table[0].startswith("| N | index |") and sum(line.startswith("| 1,000 |") for line in table) > 5


def test_every_benchmark_lists_its_keys_with_the_library_defaults():
    assert set(BENCHMARKS) == {"classification", "detection", "face_detector", "faces", "index", "embedding",
                               "attributes", "geo", "deploy", "serve", "shard_index"}
    assert "repeats=40" in describe("classification") and "sizes=[10000,100000,1000000]" in describe("index")
    assert describe("geo").count("repeats=") == 2  # each part has its own default


def test_unknown_keys_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match="benchmark index takes no sizez; its keys: sizes="):
        run("index", {"sizez": [1000]})
    with pytest.raises(ValueError, match="unknown benchmark"):
        run("speed")
