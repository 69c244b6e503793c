"""Pinned packages into the checksummed cache, with the real npm and tarfile: a hand-placed tarball
used without npm, a real ``npm pack`` into an empty cache, corrupt tarballs and interrupted unpacks
redone, npm missing or the registry unreachable named with the by-hand advice, unsafe tarballs
refused, and the tool. Every test but the real download (and the corrupt tarball fetched again)
copies the tarball the default cache already holds."""
from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from pathlib import Path

import pytest

from mnet_vision.pretrained.fetch import (
    CACHE_ENV,
    MARKER,
    PACKAGES,
    FetchError,
    NpmPackage,
    cache_dir,
    fetch_package,
    is_cached,
    package_file,
    tarball_path,
)
from tests.helpers.cli import run_tool
from tests.helpers.pretrained import faceapi_package, faceapi_tarball, write_tarball

FACEAPI = PACKAGES["faceapi"]
STEM = "vladmandic-face-api-1.7.15"
# a registry on a closed local port, failing at once: npm's own settings, as a user would set them
UNREACHABLE = {"npm_config_registry": "http://127.0.0.1:9/", "npm_config_fetch_retries": "0",
               "npm_config_fetch_timeout": "2000"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def placed_cache(tmp_path) -> Path:
    """An empty cache folder holding only the face-api tarball, copied from the default cache as if
    placed there by hand."""
    tarball = faceapi_tarball()
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(tarball, cache / FACEAPI.tarball_name)
    return cache


@pytest.fixture
def no_npm(tmp_path, monkeypatch) -> None:
    """PATH holds only an empty folder: no npm (nor anything else) can run."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def npm_unavailable(error: FetchError) -> bool:
    """Whether ``error`` says npm is missing or could not reach the registry (a reason to skip a test
    that needs the network), rather than anything this module got wrong."""
    message = str(error)
    return message.startswith("npm is not on PATH") or (message.startswith("`npm pack")
                                                        and ("failed (exit" in message or "did not finish" in message))


def fetch_or_skip(**kwargs) -> Path:
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH (Debian: apt install nodejs npm)")
    try:
        return fetch_package("faceapi", **kwargs)
    except FetchError as error:
        if npm_unavailable(error):
            pytest.skip(f"npm cannot reach the package registry: {error}")
        raise


def assert_whole(folder: Path, cache: Path) -> None:
    """The unpacked face-api in ``cache``: every required file, the marker, the tarball, no leftovers,
    and the same bytes as the default cache's copy."""
    assert folder == cache / STEM / "package"
    assert all((folder / f).is_file() for f in FACEAPI.required)
    assert (cache / STEM / MARKER).read_text().strip() == FACEAPI.sha256
    assert sha256(tarball_path("faceapi", cache)) == FACEAPI.sha256
    assert not list(cache.glob(".*partial-*"))
    reference = faceapi_package()
    for relative in ("model/ssd_mobilenetv1_model.bin", "demo/sample6.jpg"):
        assert (folder / relative).read_bytes() == (reference / relative).read_bytes()


def test_tarball_names_are_what_npm_pack_writes():
    assert FACEAPI.tarball_name == "vladmandic-face-api-1.7.15.tgz"
    assert NpmPackage("jpeg-js", "0.4.4", "0" * 64, "BSD-3-Clause", ()).tarball_name == "jpeg-js-0.4.4.tgz"
    assert {"model/ssd_mobilenetv1_model-weights_manifest.json", "model/ssd_mobilenetv1_model.bin",
            "demo/sample1.jpg", "demo/sample6.jpg", "LICENSE"} <= set(FACEAPI.required)


def test_cache_dir_from_env_then_xdg_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "mnet_vision"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "mnet_vision"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.setenv(CACHE_ENV, "")  # set but empty: as if unset
    assert cache_dir() == tmp_path / "xdg" / "mnet_vision"


def test_the_default_cache_holds_the_verified_package():
    folder = faceapi_package()
    assert (folder.parent / MARKER).read_text().strip() == FACEAPI.sha256
    assert sha256(faceapi_tarball()) == FACEAPI.sha256
    assert (folder / "LICENSE").read_text().startswith("MIT License")


def test_hand_placed_tarball_is_used_without_npm(placed_cache, no_npm, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(placed_cache))  # the cache from the environment, as a user sets it
    assert not is_cached("faceapi")
    folder = fetch_package("faceapi")
    assert_whole(folder, placed_cache)
    assert is_cached("faceapi")
    # complete: returned at once, even with download=False and the tarball gone
    (placed_cache / FACEAPI.tarball_name).unlink()
    assert fetch_package("faceapi", download=False) == folder
    sample = package_file("faceapi", "demo/sample1.jpg", download=False)
    assert sample == folder / "demo" / "sample1.jpg" and sample.read_bytes()[:2] == b"\xff\xd8"  # a JPEG


def test_package_file_names_what_is_not_there(placed_cache, no_npm):
    with pytest.raises(FetchError, match=r"has no file demo/sample9.jpg .*'sample1.jpg'"):
        package_file("faceapi", "demo/sample9.jpg", cache=placed_cache)
    with pytest.raises(FetchError, match="relative to the package folder"):
        package_file("faceapi", "../vladmandic-face-api-1.7.15.tgz", cache=placed_cache)


def test_real_npm_pack_into_an_empty_cache(tmp_path):
    faceapi_package()  # a process without npm or network skips here, with npm's message
    cache = tmp_path / "cache"
    folder = fetch_or_skip(cache=cache)
    assert_whole(folder, cache)


def test_corrupt_tarball_is_deleted_and_fetched_again(placed_cache, caplog):
    tarball = placed_cache / FACEAPI.tarball_name
    tarball.write_bytes(tarball.read_bytes()[:1_000_000])  # truncated, as by an interrupted copy
    with caplog.at_level(logging.WARNING, logger="mnet_vision.pretrained.fetch"):
        folder = fetch_or_skip(cache=placed_cache)
    assert f"{tarball}: sha256 " in caplog.text and "does not match the pinned" in caplog.text
    assert_whole(folder, placed_cache)


def test_corrupt_tarball_without_download_names_the_file(placed_cache):
    tarball = placed_cache / FACEAPI.tarball_name
    tarball.write_bytes(tarball.read_bytes()[:-1])
    got = sha256(tarball)
    with pytest.raises(FetchError) as caught:
        fetch_package("faceapi", cache=placed_cache, download=False)
    message = str(caught.value)
    assert f"{tarball}: sha256 {got} does not match the pinned {FACEAPI.sha256}" in message
    assert f"python tools/pretrained.py name=faceapi cache={placed_cache}" in message
    assert not tarball.exists() and not (placed_cache / STEM).exists()  # never half-used


def test_interrupted_unpack_is_redone(placed_cache, no_npm):
    folder = fetch_package("faceapi", cache=placed_cache)
    # a folder without its marker (an unpack that never finished), with a stray file and one missing
    (folder.parent / MARKER).unlink()
    (folder / "model" / "ssd_mobilenetv1_model.bin").unlink()
    (folder / "stray.txt").write_text("left over")
    # and the scratch folder of a fetch killed mid-way
    partial = placed_cache / f".{STEM}.partial-killed"
    (partial / "package").mkdir(parents=True)
    assert fetch_package("faceapi", cache=placed_cache, download=False) == folder
    assert_whole(folder, placed_cache)
    assert not (folder / "stray.txt").exists() and not partial.exists()


def test_marker_of_another_pin_or_missing_file_is_redone(placed_cache, no_npm):
    folder = fetch_package("faceapi", cache=placed_cache)
    (folder.parent / MARKER).write_text("f" * 64 + "\n")  # another tarball's sha256
    assert not is_cached("faceapi", placed_cache)
    assert fetch_package("faceapi", cache=placed_cache, download=False) == folder
    (folder / "demo" / "sample3.jpg").unlink()  # marker right, a required file gone
    assert not is_cached("faceapi", placed_cache)
    fetch_package("faceapi", cache=placed_cache, download=False)
    assert_whole(folder, placed_cache)


def test_npm_missing_names_the_tarball_its_sha_and_the_cache(tmp_path, no_npm):
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as caught:
        fetch_package("faceapi", cache=cache)
    message = str(caught.value)
    assert message.startswith("npm is not on PATH")
    assert "apt install nodejs npm" in message
    assert FACEAPI.tarball_name in message and FACEAPI.sha256 in message and f"cache folder {cache}/" in message
    assert [p.name for p in cache.iterdir()] == [f"{STEM}.lock"]


def test_unreachable_registry_gives_npms_error_and_the_by_hand_advice(tmp_path, monkeypatch):
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH (Debian: apt install nodejs npm)")
    for key, value in UNREACHABLE.items():
        monkeypatch.setenv(key, value)
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as caught:
        fetch_package("faceapi", cache=cache)
    message = str(caught.value)
    assert message.startswith(f"`npm pack {FACEAPI.pinned}` failed (exit ")
    assert "npm error" in message and "ECONNREFUSED" in message  # npm's own lines
    assert "place the tarball by hand" in message and FACEAPI.tarball_name in message and FACEAPI.sha256 in message
    assert [p.name for p in cache.iterdir()] == [f"{STEM}.lock"]  # nothing fetched, nothing left


def test_nothing_cached_without_download_names_the_tool(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(FetchError) as caught:
        fetch_package("faceapi", cache=cache, download=False)
    message = str(caught.value)
    assert f"not in the cache {cache} (no {FACEAPI.tarball_name})" in message
    assert f"python tools/pretrained.py name=faceapi cache={cache}" in message and "mnet-pretrained" in message
    assert FACEAPI.sha256 in message


def test_unknown_name_lists_the_packages(tmp_path):
    expected = r"unknown pretrained package 'facenet': expected one of \['face_recognition_images', 'faceapi'\]"
    with pytest.raises(FetchError, match=expected):
        fetch_package("facenet", cache=tmp_path)


def make_tarball(path: Path, members: list[tuple[str, bytes | None, str | None]]) -> NpmPackage:
    """A gzipped tar at ``path`` of ``(name, file bytes, link target)`` members, and the pin of it
    (its sha256; ``package/ok.txt`` required)."""
    write_tarball(path, members)
    return NpmPackage(spec="@test/" + path.name.split("-")[1], version="1.0.0", sha256=sha256(path),
                      license="MIT", required=("ok.txt",))


def test_a_package_of_ones_own_is_fetched_from_its_tarball(tmp_path, no_npm):
    cache = tmp_path / "cache"
    cache.mkdir()
    package = make_tarball(cache / "test-mine-1.0.0.tgz", [("package/ok.txt", b"fine", None),
                                                           ("package/sub/link", None, "../ok.txt")])
    folder = fetch_package(package, cache=cache, download=False)
    assert folder == cache / "test-mine-1.0.0" / "package"
    assert (folder / "ok.txt").read_text() == "fine" and (folder / "sub" / "link").read_text() == "fine"
    assert package_file(package, "sub/link", cache=cache).resolve() == (folder / "ok.txt").resolve()


@pytest.mark.parametrize("member", ["../evil", "package/../../evil", "package/link-abs", "package/link-up"])
def test_unsafe_tarball_is_refused_and_nothing_written(tmp_path, no_npm, member):
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    outside.mkdir()
    # a member written above the folder, or a link out of it and a file written through the link
    bad = {"package/link-abs": [(member, None, str(outside)), (f"{member}/evil", b"evil", None)],
           "package/link-up": [(member, None, "../../outside"), (f"{member}/evil", b"evil", None)]
           }.get(member, [(member, b"evil", None)])
    package = make_tarball(cache / "test-evil-1.0.0.tgz", [("package/ok.txt", b"fine", None), *bad])
    with pytest.raises(FetchError, match=rf"test-evil-1.0.0.tgz: refused to unpack @test/evil@1.0.0: unsafe "
                                         rf"member '{member}'"):
        fetch_package(package, cache=cache, download=False)
    assert not list(outside.iterdir()) and not (tmp_path / "evil").exists()
    assert sorted(p.name for p in cache.iterdir()) == ["test-evil-1.0.0.lock", "test-evil-1.0.0.tgz"]


def test_absolute_member_names_stay_inside_the_package(tmp_path, no_npm):
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    cache.mkdir()
    outside.mkdir()
    package = make_tarball(cache / "test-abs-1.0.0.tgz", [("package/ok.txt", b"fine", None),
                                                          (f"{outside}/evil", b"evil", None)])
    fetch_package(package, cache=cache, download=False)
    assert not list(outside.iterdir())  # tarfile's data filter strips the leading "/": written inside
    assert (cache / "test-abs-1.0.0" / str(outside).lstrip("/") / "evil").read_bytes() == b"evil"


def test_a_tarball_without_a_required_file_is_refused(tmp_path, no_npm):
    cache = tmp_path / "cache"
    cache.mkdir()
    package = make_tarball(cache / "test-short-1.0.0.tgz", [("package/other.txt", b"x", None)])
    with pytest.raises(FetchError, match=r"lacks 1 required file\(s\) under package/: \['ok.txt'\]"):
        fetch_package(package, cache=cache, download=False)
    assert not (cache / "test-short-1.0.0").exists()


def test_concurrent_fetches_unpack_once(placed_cache, no_npm, caplog):
    results, errors = [], []

    def fetch():
        try:
            results.append(fetch_package("faceapi", cache=placed_cache, download=False))
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    with caplog.at_level(logging.INFO, logger="mnet_vision.pretrained.fetch"):
        threads = [threading.Thread(target=fetch) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors and len(results) == 3 and len(set(results)) == 1
    assert caplog.text.count("unpacking ") == 1  # the others waited, then found it complete
    assert_whole(results[0], placed_cache)


def test_the_tool_fetches_and_prints_the_folder(placed_cache):
    result = run_tool("pretrained.py", "name=faceapi", f"cache={placed_cache}", "download=false")
    folder = placed_cache / STEM / "package"
    assert f"folder {folder}" in result.stdout
    assert f"faceapi: {FACEAPI.pinned} (MIT)" in result.stdout and FACEAPI.sha256 in result.stdout
    assert "| model/ssd_mobilenetv1_model.bin | 5,616,957 |" in result.stdout
    assert f"unpacking {FACEAPI.tarball_name}" in result.stderr  # the progress lines, on stderr
    listing = run_tool("pretrained.py", f"cache={placed_cache}")
    assert f"| faceapi | {FACEAPI.pinned} | MIT | yes | {folder} |" in listing.stdout


def test_a_cache_that_cannot_be_a_folder_is_named(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(FetchError, match=rf"cannot create the cache folder {tmp_path}/file/cache .*{CACHE_ENV}"):
        fetch_package("faceapi", cache=tmp_path / "file" / "cache")
