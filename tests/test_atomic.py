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
