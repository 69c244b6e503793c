"""Fixtures of the inference tests: the session training runs' ONNX exports, each made once."""
from pathlib import Path

import pytest

from mnet_vision.inference.load import load_model


@pytest.fixture(scope="session")
def run_export(tmp_path_factory):
    """``run_export(run)``: the ONNX export of a session training run's best checkpoint (``run`` is the
    run fixture's metrics dict: ``detection_run`` ...), at ``<tmp>/model.onnx``; made once per session by
    the TorchScript exporter (seconds, where dynamo takes tens of them on 2 cores; test_export.py tests
    dynamo's) and checked by export_onnx against PyTorch. Tests share the file: read it, never change it."""
    # onnx/onnxruntime are the deploy extra: imported here, not at collection, so that the suite's other
    # tests collect without them (the modules that use this importorskip onnxruntime)
    from mnet_vision.inference.export import export_onnx

    exports: dict[str, Path] = {}

    def export(run: dict) -> Path:
        ckpt = str(run["best_checkpoint"])
        if ckpt not in exports:
            loaded = load_model(ckpt, fast=False)
            loaded.model.requires_grad_(False)
            exports[ckpt] = export_onnx(loaded, tmp_path_factory.mktemp("export") / "model.onnx", dynamo=False).path
        return exports[ckpt]

    return export
