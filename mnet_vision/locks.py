"""An exclusive ``fcntl.flock`` on a lock file, waited for with a deadline: what the cache's
fetches and the face index's writers share. The lock file is never removed: removing a flock file
while another process waits on it would let a third one lock a new file."""
from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


@contextmanager
def exclusive_flock(lock: str | os.PathLike, timeout: float, timeout_error: Callable[[int], BaseException],
                    waiting: str, poll: float = 0.05) -> Iterator[int]:
    """Hold an exclusive flock on ``lock`` (created if need be) for the block; yields its file
    descriptor. Polls every ``poll`` s; after ``timeout`` s raises ``timeout_error(fd)`` (the caller
    names what waits and for whom; ``fd`` lets it read what the holder wrote there). ``waiting`` is
    logged (INFO) once, when another process holds the lock."""
    fd = os.open(Path(lock), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, logged = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise timeout_error(fd) from None
                if not logged:
                    log.info("%s (lock %s)", waiting, lock)
                    logged = True
                time.sleep(poll)
        yield fd
    finally:
        os.close(fd)  # releases the flock
