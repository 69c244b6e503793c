"""Writing a file atomically: into a temporary file in the same folder, then renamed into place,
so a crash mid-write never leaves a truncated file where the previous good one was.

The temporary is ``.<name>.tmp-<pid>-<random>`` beside the target. A writer killed before its
rename (SIGKILL, power loss) cannot remove it, so every write first removes the temporaries of
the same target whose writer is gone (see :func:`remove_orphan_temporaries`).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# A temporary whose pid is alive is a concurrent writer's, unless nothing touched it for this long:
# then its pid has been reused (a writer stalls seconds, not a day, between writing and renaming).
ORPHAN_AGE_S = 24 * 3600


def _temporary_pattern(path: Path) -> re.Pattern[str]:
    # The pid, then an optional random part (temporaries written before it was added had none).
    return re.compile(rf"\.{re.escape(path.name)}\.tmp-(\d+)(?:-[0-9a-f]+)?")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing the same file
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def remove_orphan_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries that :func:`atomic_write` left beside ``path`` in writes that were
    killed: those whose writer's pid is no longer alive, or that nobody touched for
    :data:`ORPHAN_AGE_S`. A live writer's temporary (another process or thread saving the same
    file right now) is kept. Returns the removed files.

    Pids are only meaningful on this machine: a folder shared by several hosts needs writers that
    do not overlap (the face index's writer lock, for instance) for this to be safe.
    """
    path = Path(path)
    pattern, removed = _temporary_pattern(path), []
    try:
        candidates = list(path.parent.iterdir())
    except FileNotFoundError:
        return removed
    now = time.time()
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if not match:
            continue
        try:
            old = now - candidate.stat().st_mtime > ORPHAN_AGE_S
            if old or not _pid_alive(int(match.group(1))):
                candidate.unlink()
                removed.append(candidate)
        except FileNotFoundError:
            continue  # its writer renamed it, or another cleaner got there first
    if removed:
        log.info("removed %d temporary file(s) of killed writes of %s: %s", len(removed), path,
                 ", ".join(p.name for p in removed))
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not every platform opens folders
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path`` (folders made as needed), then
    ``os.replace`` it onto ``path``; the temporary file is removed if ``write`` fails, and the
    temporaries of earlier killed writes of ``path`` are removed first.

    The data is flushed to disk (fsync) before the rename and the rename after it, so a power
    loss, too, leaves either the old file or the new one, never an empty or partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphan_temporaries(path)
    # The random part: two threads of one process (one pid) writing the same file at once must not
    # share a temporary.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding))
