"""The text-file rules every reader shares: UTF-8 with or without a BOM, bad bytes named by line."""
import pytest

from mnet_vision.textfiles import read_csv_rows, read_json, read_lines, read_text

BOM = b"\xef\xbb\xbf"


def test_bom_is_dropped_and_line_ends_are_any(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(BOM + b"one\r\ntwo\rthree\n\x0cfour\n")
    assert read_text(path) == "one\r\ntwo\rthree\n\x0cfour\n"
    assert read_lines(path) == ["one", "two", "three", "\x0cfour"]  # a form feed is no line end


@pytest.mark.parametrize("data, where", [
    (b"ok\nbad \xff here\n", "line 2, column 5 (byte offset 7)"),
    (BOM + b"ok\r\nbad \xff", "line 2, column 5 (byte offset 11)"),  # offsets count the BOM and CR LF
    (b"caf\xe9\n", "line 1, column 4 (byte offset 3)"),
])
def test_non_utf8_byte_names_file_line_and_offset(tmp_path, data, where):
    path = tmp_path / "list.txt"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"list\.txt, {where.replace('(', '[(]').replace(')', '[)]')}: byte b'\\x"):
        read_text(path, "gallery list")
    with pytest.raises(ValueError, match="save the gallery list as UTF-8"):
        read_lines(path, "gallery list")


def test_csv_rows_carry_their_start_line(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(BOM + b'path,lat\r\n"two\nlines",1\r\n\r\nc,3\n')
    assert read_csv_rows(path) == [(1, ["path", "lat"]), (2, ["two\nlines", "1"]), (4, []), (5, ["c", "3"])]
    path.write_bytes(b"path,lat\nx,1\n" + b"y" * 200_000 + b",2\n")  # over csv's field size limit
    with pytest.raises(ValueError, match=r"a\.csv, line 3: field larger than field limit"):
        read_csv_rows(path)


def test_json_and_missing_files(tmp_path):
    path = tmp_path / "a.json"
    path.write_bytes(BOM + b'{"a": 1}')
    assert read_json(path) == {"a": 1}
    path.write_bytes(b'{"a":\n }')
    with pytest.raises(ValueError, match=r"a\.json: malformed JSON at line 2"):
        read_json(path)
    with pytest.raises(FileNotFoundError, match="pairs file .*nothing.txt does not exist"):
        read_lines(tmp_path / "nothing.txt", "pairs file")


def test_reads_and_names_errors(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": [1, 2]}')
    assert read_json(tmp_path / "ok.json", "thing") == {"a": [1, 2]}
    (tmp_path / "bad.json").write_text('{\n  "a": [1, 2,]\n}')
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at line 2 column"):
        read_json(tmp_path / "bad.json", "thing")
    with pytest.raises(FileNotFoundError, match=r"thing .*missing.json does not exist"):
        read_json(tmp_path / "missing.json", "thing")
