import pytest

from mnet_vision.jsonfiles import read_json


def test_reads_and_names_errors(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert read_json(tmp_path / "ok.json", "thing") == {"a": [1, 2]}
    (tmp_path / "bad.json").write_text('{\n  "a": [1, 2,]\n}')
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at line 2 column"):
        read_json(tmp_path / "bad.json", "thing")
    with pytest.raises(FileNotFoundError, match=r"thing .*missing.json does not exist"):
        read_json(tmp_path / "missing.json", "thing")
