"""Session fixtures of the serving room: the served models loaded ONCE per test session, and a factory of
test clients over them (every app its own face index, in memory unless ``index=`` is given).

For the other serving tests (the page's, the load test's):

- ``faceapi_models``: a :class:`~mnet_vision.serving.models.ServedModels` with face-api's detector as
  ``/detect``'s model and face-api's pipeline for ``/faces/*`` (one detector load shared by both); skipped,
  with the reason, where the face-api package cannot be fetched.
- ``tiny_detector_models``: the tiny trained detection checkpoint (``detection_run``) as ``/detect``'s model.
- ``checkpoint_models``: the tiny trained checkpoints of tests/conftest.py (``detection_run``,
  ``embedding_run``, ``geo_run``) as ``/detect``, ``/embed`` and ``/geolocate``'s models.
- ``serve``: ``serve(models, **config_keys)`` -> a started ``fastapi.testclient.TestClient`` over
  ``create_app(ServiceConfig(**config_keys), models)`` (its lifespan run: batchers opened, and drained and
  closed at the test's end).
- ``demo_photo``: ``demo_photo("sample1")`` -> the path of one of face-api's six demo photos.
- ``one_face_photos``: ``{"sample1": JPEG bytes, ...}``: a crop of each demo photo around its largest face
  that holds that face alone (what ``/faces/add`` adds without ``largest=true``); ``two_face_photo``: two of
  them side by side (JPEG bytes).
- helpers: ``upload(bytes_or_path, name, mime)`` (a request's ``files=``), ``face_boxes(pipeline, rgb)``
  (the boxes of the faces the pipeline describes, from its detector alone), ``jpeg_bytes(rgb)``.
"""
from __future__ import annotations

import io
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mnet_vision.faces.pipeline import FacePipeline
from mnet_vision.images import decode_rgb, read_rgb
from mnet_vision.inference.detect import Detector
from mnet_vision.inference.embed import Embedder
from mnet_vision.inference.geolocate import Geolocator
from mnet_vision.pretrained.models import load_pretrained
from mnet_vision.serving.app import create_app
from mnet_vision.serving.config import ServiceConfig
from mnet_vision.serving.models import ServedModels
from tests.helpers.pretrained import faceapi_package

DEMO_PHOTOS = tuple(f"sample{i}" for i in range(1, 7))


@pytest.fixture(scope="session")
def faceapi_models() -> ServedModels:
    """face-api's detector for /detect and its pipeline (detector shared) for /faces/*."""
    faceapi_package()
    detector = load_pretrained("faceapi_ssd")
    return ServedModels(detector=Detector(detector), faces=FacePipeline(detector=detector))


@pytest.fixture(scope="session")
def tiny_detector_models(detection_run) -> ServedModels:
    """The tiny trained detection checkpoint as /detect's model, alone."""
    return ServedModels(detector=Detector(detection_run["best_checkpoint"]))


@pytest.fixture(scope="session")
def checkpoint_models(tiny_detector_models, embedding_run, geo_run) -> ServedModels:
    """The tiny trained detection, embedding and geolocation checkpoints as the service's models."""
    return ServedModels(detector=tiny_detector_models.detector,
                        embedder=Embedder(embedding_run["best_checkpoint"]),
                        geolocator=Geolocator(geo_run["best_checkpoint"]),
                        geolocator_source=str(geo_run["best_checkpoint"]))


@pytest.fixture
def serve():
    """``serve(models, **config_keys)`` -> a started TestClient of the app (closed at the test's end)."""
    with ExitStack() as stack:
        def start(models: ServedModels, **keys) -> TestClient:
            return stack.enter_context(TestClient(create_app(ServiceConfig(**keys), models)))

        yield start


@pytest.fixture(scope="session")
def demo_photo():
    """``demo_photo(name)``: the path of face-api's demo photo ``name`` (``sample1`` ... ``sample6``)."""
    demo = faceapi_package() / "demo"
    return lambda name: demo / f"{name}.jpg"


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def face_boxes(pipeline: FacePipeline, rgb: np.ndarray) -> list[tuple[float, ...]]:
    """The boxes of the faces ``pipeline`` describes in ``rgb`` (its detections of at least ``min_face``),
    from its detector alone: a tenth of the whole pipeline's time."""
    boxes, _ = pipeline.detect(rgb)
    return [tuple(b) for b in boxes if min(b[2] - b[0], b[3] - b[1]) >= pipeline.min_face]


@pytest.fixture(scope="session")
def one_face_photos(faceapi_models, demo_photo) -> dict[str, bytes]:
    """Each demo photo cut around its largest face (the face's box plus a quarter of it on each side), kept
    where the pipeline finds exactly that one face in the cut."""
    pipeline, crops = faceapi_models.faces, {}
    for name in DEMO_PHOTOS:
        rgb = read_rgb(demo_photo(name))
        x1, y1, x2, y2 = max(face_boxes(pipeline, rgb), key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        mx, my = (x2 - x1) / 4, (y2 - y1) / 4
        crop = np.ascontiguousarray(rgb[max(int(y1 - my), 0):int(y2 + my), max(int(x1 - mx), 0):int(x2 + mx)])
        data = jpeg_bytes(crop)
        if len(face_boxes(pipeline, decode_rgb(data, name))) == 1:
            crops[name] = data
    assert len(crops) >= 4, f"only {sorted(crops)} of the demo photos cut to one face"
    return crops


@pytest.fixture(scope="session")
def two_face_photo(one_face_photos) -> bytes:
    """Two of :func:`one_face_photos` side by side (the shorter padded below with grey): a small photo of two
    faces, a fraction of a whole demo photo's time through the pipeline."""
    first, second = (decode_rgb(one_face_photos[n], n) for n in sorted(one_face_photos)[:2])
    height = max(first.shape[0], second.shape[0])
    padded = [np.pad(a, ((0, height - a.shape[0]), (0, 0), (0, 0)), constant_values=128) for a in (first, second)]
    return jpeg_bytes(np.concatenate(padded, axis=1))


def upload(data: bytes | Path, name: str = "photo.jpg", mime: str = "image/jpeg") -> dict:
    """The ``files=`` of a request uploading ``data`` (bytes, or a file's) as the ``image`` field."""
    return {"image": (name, data.read_bytes() if isinstance(data, Path) else data, mime)}
