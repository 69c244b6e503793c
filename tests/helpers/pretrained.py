"""The pinned pretrained packages for tests: fetched once per process into the default cache
(``$MNET_VISION_CACHE`` or ``~/.cache/mnet_vision``, so repeated runs and CI reuse it), and the
test skipped, with the reason, where npm is missing or the registry cannot be reached."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

from mnet_vision.pretrained.fetch import FetchError, fetch_package, tarball_path


@functools.cache
def _fetched(name: str) -> tuple[Path | None, str]:
    """``(unpacked folder, "")``, or ``(None, why)`` when it cannot be fetched: kept, so a process
    without npm or network tries once, not once per test."""
    try:
        return fetch_package(name), ""
    except FetchError as error:
        return None, str(error)


def pretrained_package(name: str) -> Path:
    """The unpacked folder of the pinned package ``name`` in the default cache; skips the calling
    test, with the fetch's error as the reason, when it cannot be fetched."""
    folder, why = _fetched(name)
    if folder is None:
        pytest.skip(f"pretrained package {name!r} unavailable (npm missing or the registry unreachable): {why}")
    return folder


def faceapi_package() -> Path:
    """The unpacked ``@vladmandic/face-api`` folder (``model/``, ``demo/sample1.jpg`` ...), or a skip."""
    return pretrained_package("faceapi")


def faceapi_tarball() -> Path:
    """The verified face-api tarball in the default cache (fetched if need be), or a skip."""
    folder = faceapi_package()
    tarball = tarball_path("faceapi", cache=folder.parents[1])
    if not tarball.is_file():
        pytest.skip(f"the cache holds the unpacked {folder} but not its tarball {tarball} (deleted by hand?): "
                    f"remove {folder.parent} and run `python tools/pretrained.py name=faceapi` to fetch both")
    return tarball
