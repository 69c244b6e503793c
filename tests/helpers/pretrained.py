"""The pinned pretrained packages for tests: fetched once per process into the default cache
(``$MNET_VISION_CACHE`` or ``~/.cache/mnet_vision``, so repeated runs and CI reuse it), and the
test skipped, with the reason, where npm or pip is missing or the registry cannot be reached."""
from __future__ import annotations

import functools
import io
import tarfile
from pathlib import Path

import pytest

from mnet_vision.pretrained.fetch import FetchError, fetch_package, tarball_path


@functools.cache
def _fetched(name: str) -> tuple[Path | None, str]:
    """``(unpacked folder, "")``, or ``(None, why)`` when it cannot be fetched: kept, so a process
    without npm, pip or network tries once, not once per test."""
    try:
        return fetch_package(name), ""
    except FetchError as error:
        return None, str(error)


def pretrained_package(name: str) -> Path:
    """The unpacked folder of the pinned package ``name`` in the default cache; skips the calling
    test, with the fetch's error as the reason, when it cannot be fetched."""
    folder, why = _fetched(name)
    if folder is None:
        pytest.skip(f"pretrained package {name!r} unavailable (its fetcher missing or the registry unreachable): {why}")
    return folder


def faceapi_package() -> Path:
    """The unpacked ``@vladmandic/face-api`` folder (``model/``, ``demo/sample1.jpg`` ...), or a skip."""
    return pretrained_package("faceapi")


def face_recognition_package() -> Path:
    """The unpacked ``face-recognition`` 1.3.0 sdist (``tests/test_images/biden.jpg`` ...), or a skip."""
    return pretrained_package("face_recognition_images")


def pretrained_tarball(name: str) -> Path:
    """The verified tarball of the pinned package ``name`` in the default cache (fetched if need be), or a skip."""
    folder = pretrained_package(name)
    tarball = tarball_path(name, cache=folder.parents[1])
    if not tarball.is_file():
        pytest.skip(f"the cache holds the unpacked {folder} but not its tarball {tarball} (deleted by hand?): "
                    f"remove {folder.parent} and run `python tools/pretrained.py name={name}` to fetch both")
    return tarball


def faceapi_tarball() -> Path:
    """The verified face-api tarball in the default cache (fetched if need be), or a skip."""
    return pretrained_tarball("faceapi")


def write_tarball(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> Path:
    """A gzipped tar at ``path`` of ``(name, file bytes, link target)`` members (a symlink where the
    target is given); returns ``path``."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path
