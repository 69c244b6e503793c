"""face-api's detector and face nets exported to ONNX once per test process (the TorchScript exporter: ~1 s a
face net, ~8 s the detector), shared read-only by the tests of the exporter, the runtime and the face
pipeline; the calling test is skipped, with the reason, where the face-api package cannot be fetched."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from mnet_vision.inference.export import ExportResult, export_onnx
from mnet_vision.pretrained.models import load_pretrained
from tests.helpers.pretrained import faceapi_package

FACE_NETS = ("faceapi_landmarks68", "faceapi_descriptor", "faceapi_expression", "faceapi_age_gender")


@functools.cache
def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mnet-vision-faceapi-onnx-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@functools.cache
def _exported(name: str) -> ExportResult:
    # the detector's logits (magnitude ~10) differ by ~1e-4 from PyTorch's under 2 threads: 1e-3 still catches a
    # wrong graph; the face nets pass the default 1e-4 (measured 3e-7 .. 4e-6)
    atol = 1e-3 if name == "faceapi_ssd" else 1e-4
    return export_onnx(load_pretrained(name, fast=False), _folder() / f"{name}.onnx", dynamo=False, check_atol=atol)


def faceapi_onnx(name: str) -> ExportResult:
    """The export of the pretrained model ``name`` (``faceapi_ssd`` or one of :data:`FACE_NETS`), made on first
    use; a skip where face-api cannot be fetched. Read-only: tests must not write the file."""
    faceapi_package()
    return _exported(name)
