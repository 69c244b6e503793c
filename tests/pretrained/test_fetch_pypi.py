"""Pinned Python source distributions into the checksummed cache, with the real pip: an sdist of our
own fetched by pip from a local folder (no index, no network: its setup.py runs, no build dependency
is fetched), other bytes refused by pip before their setup.py runs, an unreachable index named with
pip's own lines and the by-hand advice, a hand-placed sdist used without pip, corrupt tarballs, the
tool, and one real download from the index. Every test but the real download copies the sdist the
default cache holds, or writes its own."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mnet_vision.pretrained.fetch import (
    CACHE_ENV,
    MARKER,
    PACKAGES,
    FetchError,
    PypiSdist,
    fetch_package,
    is_cached,
    package_file,
    tarball_path,
)
from tests.helpers.cli import run_tool
from tests.helpers.pretrained import face_recognition_package, pretrained_tarball, write_tarball

IMAGES = PACKAGES["face_recognition_images"]
STEM = "face_recognition-1.3.0"
PHOTOS = ("biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pip_settings(monkeypatch, links: Path, index: str | None = None) -> None:
    """pip's own settings, as a user would set them: the folder ``links`` (created) its only find-links
    folder, and no index at all (``index=None``) or only ``index``; the user's pip config file and the
    machine's own find-links and extra index left out."""
    links.mkdir(exist_ok=True)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    if index is None:
        monkeypatch.setenv("PIP_NO_INDEX", "1")
        for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
            monkeypatch.delenv(key, raising=False)
    else:
        monkeypatch.delenv("PIP_NO_INDEX", raising=False)
        monkeypatch.setenv("PIP_INDEX_URL", index)
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", index)  # replaces any extra index of the machine's config
        monkeypatch.setenv("PIP_RETRIES", "1")  # one retry: pip says why the connection failed, at once


@pytest.fixture
def placed_cache(tmp_path) -> Path:
    """An empty cache folder holding only face-recognition's sdist, copied from the default cache as if
    placed there by hand."""
    tarball = pretrained_tarball("face_recognition_images")
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(tarball, cache / IMAGES.tarball_name)
    return cache


def own_sdist(links: Path, ran: Path) -> PypiSdist:
    """An sdist of our own, ``mine-1.0.0.tar.gz`` in the folder ``links``, whose setup.py writes the
    file ``ran`` when it runs; and its pin (``ok.txt`` required)."""
    setup = (f"from pathlib import Path\nfrom setuptools import setup\nPath({str(ran)!r}).write_text('ran')\n"
             "setup(name='mine', version='1.0.0')\n")
    pkg_info = b"Metadata-Version: 2.1\nName: mine\nVersion: 1.0.0\n"
    links.mkdir(exist_ok=True)
    tarball = write_tarball(links / "mine-1.0.0.tar.gz", [("mine-1.0.0/setup.py", setup.encode(), None),
                                                          ("mine-1.0.0/PKG-INFO", pkg_info, None),
                                                          ("mine-1.0.0/ok.txt", b"fine", None)])
    return PypiSdist(name="mine", version="1.0.0", sha256=sha256(tarball), license="MIT", required=("ok.txt",))


def assert_whole(folder: Path, cache: Path) -> None:
    """The unpacked face-recognition sdist in ``cache``: every required file, the marker, the tarball,
    no leftovers, and the same photos as the default cache's copy."""
    assert folder == cache / STEM / STEM
    assert all((folder / f).is_file() for f in IMAGES.required)
    assert (cache / STEM / MARKER).read_text().strip() == IMAGES.sha256
    assert sha256(tarball_path("face_recognition_images", cache)) == IMAGES.sha256
    assert not list(cache.glob(".*partial-*"))
    reference = face_recognition_package()
    for photo in PHOTOS:
        relative = f"tests/test_images/{photo}"
        assert (folder / relative).read_bytes() == (reference / relative).read_bytes()


def test_sdist_names_are_what_pip_writes():
    assert (IMAGES.tarball_name, IMAGES.top_folder, IMAGES.pinned) == (
        "face_recognition-1.3.0.tar.gz", STEM, "face-recognition==1.3.0")
    assert PypiSdist("Zope.Interface", "5.0", "0" * 64, "ZPL", ()).tarball_name == "zope_interface-5.0.tar.gz"
    assert PypiSdist("a-_b", "1", "0" * 64, "MIT", ()).top_folder == "a_b-1"  # runs of - _ . are one _
    # one cache folder, tarball and lock per package: two packages sharing them would refetch each other
    names = [p.tarball_name.removesuffix(".tgz").removesuffix(".tar.gz") for p in PACKAGES.values()]
    assert len(set(names)) == len(names)


def test_an_sdist_of_ones_own_is_fetched_by_pip_from_a_local_folder(tmp_path, monkeypatch):
    ran = tmp_path / "setup-py-ran"
    package = own_sdist(tmp_path / "links", ran)
    pip_settings(monkeypatch, tmp_path / "links")  # no index: nothing else can be fetched
    folder = fetch_package(package, cache=tmp_path / "cache")
    assert folder == tmp_path / "cache" / "mine-1.0.0" / "mine-1.0.0" and (folder / "ok.txt").read_text() == "fine"
    assert sha256(tmp_path / "cache" / "mine-1.0.0.tar.gz") == package.sha256
    # pip prepared the sdist's metadata: its setup.py ran here, with this environment's setuptools
    # (build isolation would have had to fetch setuptools, and there is no index)
    assert ran.read_text() == "ran"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["mine-1.0.0", "mine-1.0.0.lock",
                                                                     "mine-1.0.0.tar.gz"]


def test_other_bytes_are_refused_by_pip_before_their_setup_py_runs(tmp_path, monkeypatch):
    ran = tmp_path / "setup-py-ran"
    package = own_sdist(tmp_path / "links", ran)
    pinned_elsewhere = PypiSdist(package.name, package.version, "0" * 64, package.license, package.required)
    pip_settings(monkeypatch, tmp_path / "links")
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as caught:
        fetch_package(pinned_elsewhere, cache=cache)
    message = str(caught.value)
    assert message.startswith("`pip download --no-deps --no-binary :all: mine==1.0.0` failed (exit 1)")
    assert "DO NOT MATCH THE HASHES" in message and package.sha256 in message  # pip's own lines, the bytes' sha
    assert "place the tarball by hand: mine-1.0.0.tar.gz (sha256 " + "0" * 64 in message
    assert not ran.exists()  # pip checked the hash first: nothing of the other bytes ran
    assert [p.name for p in cache.iterdir()] == ["mine-1.0.0.lock"]


def test_unreachable_index_gives_pips_error_and_the_by_hand_advice(tmp_path, monkeypatch):
    pip_settings(monkeypatch, tmp_path / "no-links", index="http://127.0.0.1:9/")  # a closed port: refused at once
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as caught:
        fetch_package("face_recognition_images", cache=cache)
    message = str(caught.value)
    assert message.startswith(f"`pip download --no-deps --no-binary :all: {IMAGES.pinned}` failed (exit 1): "
                              "is the package index reachable")
    assert "Connection refused" in message and "No matching distribution found for face-recognition==1.3.0" in message
    assert "place the tarball by hand" in message and IMAGES.tarball_name in message and IMAGES.sha256 in message
    assert f"cache folder {cache}/" in message and "used without pip" in message
    assert [p.name for p in cache.iterdir()] == [f"{STEM}.lock"]  # nothing fetched, nothing left


def test_hand_placed_sdist_is_used_without_pip(placed_cache, tmp_path, monkeypatch):
    pip_settings(monkeypatch, tmp_path / "no-links", index="http://127.0.0.1:9/")  # pip would fail here
    monkeypatch.setenv(CACHE_ENV, str(placed_cache))
    assert not is_cached("face_recognition_images")
    folder = fetch_package("face_recognition_images")
    assert_whole(folder, placed_cache)
    for photo in PHOTOS:  # real photos, decodable
        with Image.open(package_file("face_recognition_images", f"tests/test_images/{photo}")) as image:
            assert image.format == "JPEG" and min(image.size) >= 300
    assert (folder / "LICENSE").read_text().strip().startswith("MIT License")
    # an unpack that never finished (no marker, a photo gone) and a killed fetch's scratch: redone
    (folder.parent / MARKER).unlink()
    (folder / "tests" / "test_images" / "obama.jpg").unlink()
    (placed_cache / f".{STEM}.partial-killed").mkdir()
    assert fetch_package("face_recognition_images", download=False) == folder
    assert_whole(folder, placed_cache)


def test_corrupt_sdist_without_download_names_the_file(placed_cache):
    tarball = placed_cache / IMAGES.tarball_name
    tarball.write_bytes(tarball.read_bytes()[:100_000])  # truncated, as by an interrupted copy
    got = sha256(tarball)
    with pytest.raises(FetchError) as caught:
        fetch_package("face_recognition_images", cache=placed_cache, download=False)
    message = str(caught.value)
    assert f"{tarball}: sha256 {got} does not match the pinned {IMAGES.sha256}" in message
    assert f"python tools/pretrained.py name=face_recognition_images cache={placed_cache}" in message
    assert "pip download --no-deps --no-binary :all: face-recognition==1.3.0" in message
    assert not tarball.exists() and not (placed_cache / STEM).exists()  # never half-used


def test_a_pinned_file_that_is_no_gzipped_tar_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mine-1.0.0.tar.gz").write_bytes(b"PK\x03\x04 a zip, not a tar.gz")
    package = PypiSdist("mine", "1.0.0", sha256(cache / "mine-1.0.0.tar.gz"), "MIT", ("ok.txt",))
    with pytest.raises(FetchError, match=r"mine-1.0.0.tar.gz: cannot unpack mine==1.0.0 as a gzipped tar"):
        fetch_package(package, cache=cache, download=False)
    assert not (cache / "mine-1.0.0").exists()


def test_an_sdist_without_a_required_file_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    tarball = write_tarball(cache / "mine-1.0.0.tar.gz", [("package/ok.txt", b"npm's layout, not an sdist's", None)])
    package = PypiSdist("mine", "1.0.0", sha256(tarball), "MIT", ("ok.txt",))
    with pytest.raises(FetchError, match=r"lacks 1 required file\(s\) under mine-1.0.0/: \['ok.txt'\]"):
        fetch_package(package, cache=cache, download=False)
    assert not (cache / "mine-1.0.0").exists()


def test_real_pip_download_replaces_a_corrupt_sdist(placed_cache, caplog):
    tarball = placed_cache / IMAGES.tarball_name
    tarball.write_bytes(tarball.read_bytes()[:-1])
    with caplog.at_level(logging.INFO, logger="mnet_vision.pretrained.fetch"):
        try:
            folder = fetch_package("face_recognition_images", cache=placed_cache)
        except FetchError as error:
            message = str(error)
            if message.startswith("`pip download") and ("failed (exit" in message or "did not finish" in message):
                pytest.skip(f"pip cannot reach the package index: {message}")
            raise
    assert "does not match the pinned" in caplog.text and "fetching face-recognition==1.3.0 with pip" in caplog.text
    assert f"fetched {IMAGES.tarball_name} (3.2 MB)" in caplog.text
    assert_whole(folder, placed_cache)


def test_the_tool_fetches_and_lists_the_sdist(placed_cache):
    result = run_tool("pretrained.py", "name=face_recognition_images", f"cache={placed_cache}", "download=false")
    folder = placed_cache / STEM / STEM
    assert f"face_recognition_images: {IMAGES.pinned} (MIT)" in result.stdout and f"folder {folder}" in result.stdout
    assert "| tests/test_images/biden.jpg | 353,723 |" in result.stdout
    listing = run_tool("pretrained.py", f"cache={placed_cache}")
    assert f"| face_recognition_images | {IMAGES.pinned} | MIT | yes | {folder} |" in listing.stdout
    assert f"| faceapi | {PACKAGES['faceapi'].pinned} | MIT | no |" in listing.stdout
