import inspect
import subprocess

import pytest
import torch
from lightning.pytorch import Trainer

from mnet_vision.config import compose
from mnet_vision.data.synthetic.shapes import make_shapes_dataset
from mnet_vision.training import build_trainer, train
from tests.helpers.cli import run_tool
from tests.helpers.configs import (
    TINY_IMAGE,
    TINY_SPLITS,
    tiny_attribute_overrides,
    tiny_detection_overrides,
    tiny_geo_cell_counts,
    tiny_geo_overrides,
    tiny_identity_overrides,
)

# Tiny tensors: one thread is faster and does not oversubscribe the 2 CI cores while subprocess
# tests (the tools, DDP) run their own threads.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    # and one thread again: a benchmark under test sets its own (compare_deployments threads=2) and keeps
    # it, and a later PyTorch-vs-ONNX check at 1e-4 then depends on which tests ran before it
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A tiny synthetic shapes set (10 classes), generated once per test session."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    return make_shapes_dataset(root, splits=TINY_SPLITS, image_size=TINY_IMAGE)


@pytest.fixture(scope="session")
def detection_run(tmp_path_factory):
    """One seconds-long run of the default detection job (SSD) on a tiny synthetic COCO set:
    its metrics dict (``run_dir``, ``best_checkpoint``, ``test/AP`` ...); data under ``<run>/../data``."""
    root = tmp_path_factory.mktemp("det")
    return train(compose(tiny_detection_overrides(root / "data")), run_dir=root / "run")


@pytest.fixture(scope="session")
def embedding_run(tmp_path_factory):
    """One seconds-long triplet run (task=facenet_triplet) on a tiny synthetic identity set: its
    metrics dict (``run_dir``, ``best_checkpoint`` ...); data under ``<run>/../data``."""
    root = tmp_path_factory.mktemp("faces")
    return train(compose(tiny_identity_overrides(root / "data")), run_dir=root / "run")


@pytest.fixture(scope="session")
def attribute_run(tmp_path_factory):
    """One seconds-long run of task=attributes on a tiny synthetic attribute set: its metrics dict
    (``run_dir``, ``best_checkpoint``, ``test/mean_ap`` ...); data under ``<run>/../data``."""
    root = tmp_path_factory.mktemp("attributes")
    return train(compose(tiny_attribute_overrides(root / "data")), run_dir=root / "run")


@pytest.fixture(scope="session")
def geo_run(tmp_path_factory):
    """One seconds-long PlaNet run (task=planet, two partitions) on a tiny synthetic geotagged set:
    its metrics dict (``run_dir``, ``best_checkpoint`` ...); data under ``<run>/../data``."""
    root = tmp_path_factory.mktemp("geo")
    counts = tiny_geo_cell_counts(root / "data")
    return train(compose(tiny_geo_overrides(root / "data", counts)), run_dir=root / "run")



# Markers by rule (declared in pyproject.toml, described in docs/design.md's Tests section), so test
# files carry no decorators: `pytest -m "not slow"` is the fast subset.
# Session runs a test may take by name through request.getfixturevalue (a parameter, not an argument).
TRAINING_FIXTURES = {"detection_run", "embedding_run", "attribute_run", "geo_run"}
# What makes a test slow when it or one of its fixtures names it: a tool in a subprocess (seconds of
# imports per process) or a Lightning fit.
SLOW_GLOBALS = (run_tool, subprocess, train, build_trainer, Trainer)
DDP_SOURCE = ("trainer=ddp", "devices=2")
# Slow without any of the above (over 2 s each under `pytest --durations=0` on the 2-core machine):
# hand-written optimiser loops and the detector benchmark's timed rounds.
MEASURED_SLOW = {
    "tests/tasks/test_detection.py::test_detector_learns_its_training_images",
    "tests/benchmarks/test_detection.py::test_detection_benchmark_rows_and_table",
    # a real npm pack of the 12.7 MB face-api tarball (2 s or more: the network's time)
    "tests/pretrained/test_fetch.py::test_real_npm_pack_into_an_empty_cache",
    "tests/pretrained/test_fetch.py::test_corrupt_tarball_is_deleted_and_fetched_again",
    # a real pip download of face-recognition's 3.2 MB sdist from the index (the network's time)
    "tests/pretrained/test_fetch_pypi.py::test_real_pip_download_replaces_a_corrupt_sdist",
    # over 2 s on an idle 2-core machine: the deploy benchmark's tiny run (6 s: exports, INT8, timing),
    # the face detector benchmark's two timed paths, the face detector's exports (~3 s each)
    "tests/benchmarks/test_deploy.py::test_tiny_run_has_every_runtime_the_ratios_sizes_and_verdict",
    "tests/benchmarks/test_face_detector.py::test_our_two_paths_are_timed_and_reported",
    "tests/inference/test_export.py::test_pretrained_face_detector_with_nms_in_graph",
    "tests/inference/test_onnx_backend.py::test_the_pretrained_face_detector_through_onnx_finds_the_pytorch_faces",
    # face-api's pipeline over the six demo photos (7 s, once per module, for the first of these)
    "tests/faces/test_gallery.py::test_real_photos_indexed_searched_and_clustered",
    "tests/faces/test_gallery.py::test_real_refusals_come_before_the_work",
    # the six demo photos through face-api's pipeline with its attribute nets (tests/faces/conftest.py's
    # session fixture demo_faces, ~5 s), compared with face-api's own outputs
    "tests/faces/test_pipeline.py::test_the_demo_photos_end_to_end_equal_faceapi",
    # face-api's detector exported to ONNX (TorchScript exporter, ~8 s) and run on a demo photo
    "tests/faces/test_pipeline.py::test_an_onnx_detector_gives_the_pytorch_detectors_faces",
    # every face net and the detector in ONNX Runtime on two demo photos, against the PyTorch path (~5 s)
    "tests/faces/test_pipeline.py::test_every_net_in_onnx_runtime_gives_the_pytorch_pipelines_faces",
    # the faces benchmark on one demo photo: face-api's detector, landmark and descriptor nets loaded (~3 s)
    "tests/benchmarks/test_faces.py::test_one_photo_gives_every_row_of_the_table",
    # two demo photos through face-api's pipeline and 2 x 3 augmented views written (~4 s)
    "tests/faces/test_attribute_crops.py::test_the_set_of_real_faces_is_read_by_the_attribute_data_module",
    # the service's face index under concurrent adds and searches, then the same adds serially (~4 s)
    "tests/serving/test_security.py::test_concurrent_adds_and_searches_end_as_the_same_adds_done_serially",
    # the benchmarks of issue 18 start the service / the builds as processes from inside the benchmark module
    "tests/benchmarks/test_serve.py::test_a_tiny_run_against_the_service_process_has_every_row_and_column",
    "tests/benchmarks/test_shard_index.py::test_a_tiny_run_has_the_exact_peer_every_row_and_leaves_no_shards",
}


def _globals_used(function, seen: set) -> set:
    """The ids of the module globals ``function`` names, following the functions of its own module it
    calls, so a helper that runs a tool counts for its callers."""
    namespace, found = function.__globals__, set()
    codes = [function.__code__]
    while codes:
        code = codes.pop()
        codes.extend(c for c in code.co_consts if inspect.iscode(c))  # nested functions and lambdas
        for name in code.co_names:
            value = namespace.get(name)
            if value is None or id(value) in seen:
                continue
            seen.add(id(value))
            found.add(id(value))
            if inspect.isfunction(value) and value.__module__ == function.__module__:
                found |= _globals_used(value, seen)
    return found


def _runs_slow_code(item) -> bool:
    """Whether the test, or a fixture it requests, names one of SLOW_GLOBALS."""
    slow = {id(value) for value in SLOW_GLOBALS}
    functions = [item.function] + [defs[-1].func for defs in item._fixtureinfo.name2fixturedefs.values()]
    return any(_globals_used(function, set()) & slow for function in functions)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        if "tests/tools/" in item.path.as_posix():
            item.add_marker(pytest.mark.cli)
        source = inspect.getsource(item.function)
        if "ddp" in item.name.lower() or any(text in source for text in DDP_SOURCE):
            item.add_marker(pytest.mark.ddp)
            item.add_marker(pytest.mark.slow)
        params = getattr(item, "callspec", None)
        requested = set(item.fixturenames) | {v for v in (params.params.values() if params else ())
                                              if isinstance(v, str)}
        if (requested & TRAINING_FIXTURES or _runs_slow_code(item)
                or item.nodeid.split("[")[0] in MEASURED_SLOW):
            item.add_marker(pytest.mark.slow)
