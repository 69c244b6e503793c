"""Session fixtures of the faces room: face-api's pipeline loaded once, and the six demo photos run through
it once per test session (skipped, with the reason, where the face-api package cannot be fetched)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mnet_vision.faces.pipeline import FacePipeline, PhotoFaces
from tests.helpers.pretrained import faceapi_package

DEMO_PHOTOS = tuple(f"sample{i}" for i in range(1, 7))


@pytest.fixture(scope="session")
def faceapi_pipeline() -> FacePipeline:
    """``FacePipeline(attributes=True)``: face-api's detector, landmarks, descriptor, age/gender, expressions."""
    faceapi_package()
    return FacePipeline(attributes=True)


@pytest.fixture(scope="session")
def demo_faces(faceapi_pipeline) -> dict[str, PhotoFaces]:
    """``{"sample1": PhotoFaces, ...}``: the package's six demo photos through :func:`faceapi_pipeline`."""
    demo = faceapi_package() / "demo"
    photos, unreadable = faceapi_pipeline.run_files([demo / f"{name}.jpg" for name in DEMO_PHOTOS], progress=False)
    assert unreadable == []
    return {Path(p.photo).stem: p for p in photos}
