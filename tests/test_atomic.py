import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mnet_vision.atomic import atomic_write


def test_a_failed_write_keeps_the_previous_file_and_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "sub" / "f.txt", lambda tmp: tmp.write_text("good"))
    assert path.read_text() == "good"

    def crash(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_text() == "good"
    assert [p.name for p in path.parent.iterdir()] == ["f.txt"]


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_orphan_temporaries_of_dead_writers_are_removed_at_the_next_write(tmp_path):
    """Temporaries left by killed writers go at the next write to the same file; those of live
    writers (a concurrent save) and of other files stay, unless a day old."""
    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        orphans = [f".f.txt.tmp-{dead}", f".f.txt.tmp-{dead}-0a1b2c3d"]
        kept = [f".f.txt.tmp-{live.pid}", f".f.txt.tmp-{os.getpid()}-deadbeef", f".g.txt.tmp-{dead}",
                f".f.txt.tmp-{dead}.bak"]
        stale = tmp_path / f".f.txt.tmp-{live.pid}-00ff"  # a live pid, but untouched for two days
        for name in orphans + kept:
            (tmp_path / name).write_text("half")
        stale.write_text("half")
        two_days_ago = time.time() - 2 * 86400
        os.utime(stale, (two_days_ago, two_days_ago))
        atomic_write(tmp_path / "f.txt", lambda tmp: tmp.write_text("good"))
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + ["f.txt"])
    finally:
        live.kill()
        live.wait()


def test_a_killed_write_leaves_a_temporary_that_the_next_write_clears(tmp_path):
    target = tmp_path / "f.txt"
    atomic_write(target, lambda tmp: tmp.write_text("good"))
    code = ("import os, sys; from mnet_vision.atomic import atomic_write\n"
            "def die(tmp):\n    tmp.write_text('half')\n    os._exit(9)\n"
            "atomic_write(sys.argv[1], die)")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    assert subprocess.run([sys.executable, "-c", code, str(target)], env=env).returncode == 9
    assert len(list(tmp_path.iterdir())) == 2 and target.read_text() == "good"  # the orphan, the old file
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"] and target.read_text() == "new"


def test_concurrent_writes_of_one_file_in_one_process_use_their_own_temporaries(tmp_path):
    """Two threads saving the same file: each has its own temporary (the pid alone is shared)."""
    target, started = tmp_path / "f.txt", threading.Barrier(2)

    errors = []

    def write(text):
        def fill(tmp):
            tmp.write_text(text)
            started.wait(timeout=10)  # both temporaries exist at once
            assert tmp.read_text() == text, "the other thread wrote into this temporary"
        try:
            atomic_write(target, fill)
        except Exception as err:  # noqa: BLE001  (reported below: a thread's exception is lost otherwise)
            errors.append(err)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert target.read_text() in ("a", "b") and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_text_and_bytes_helpers(tmp_path):
    from mnet_vision.atomic import atomic_write_bytes, atomic_write_text

    assert atomic_write_text(tmp_path / "a.txt", "x").read_text() == "x"
    assert atomic_write_bytes(tmp_path / "b.bin", b"\0\1").read_bytes() == b"\0\1"
