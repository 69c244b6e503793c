"""Reading the text input files (CSV photo lists, attribute and partition lists, LFW pairs, gallery
lists, COCO JSON, index metadata) under one set of rules, so every reader treats encodings alike,
and writing JSON atomically:

- UTF-8, with or without the byte-order mark that spreadsheet programs and Windows Notepad write
  (left in, it would glue ``\\ufeff`` to the first column name or path);
- a byte that is not UTF-8 is a ``ValueError`` naming the file, the line, the column and the byte
  offset, not a bare ``UnicodeDecodeError`` that names none of them;
- line numbers count ``\\n``, ``\\r\\n`` or ``\\r`` line ends, as editors show them (``str.splitlines``
  also splits on form feeds and Unicode separators, which would shift every later line number).
"""
from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path
from typing import Any

from mnet_vision.atomic import atomic_write_text


def read_text(path: str | Path, what: str = "file") -> str:
    """The text of ``path`` decoded as UTF-8 (a leading byte-order mark dropped), line ends as
    they are. A missing file raises ``FileNotFoundError`` naming ``what`` and the file; a byte
    that is not UTF-8, ``ValueError`` naming the file, line, column and byte offset."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{what} {path} does not exist") from err
    # Strip the BOM ourselves rather than decode with "utf-8-sig": that codec reports error
    # offsets relative to the text after the BOM, 3 bytes short of the offset in the file.
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = start + err.start
        line_start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
        line = data.count(b"\n", 0, offset) + data.count(b"\r", 0, offset) - data.count(b"\r\n", 0, offset) + 1
        raise ValueError(f"{path}, line {line}, column {offset - line_start + 1} (byte offset {offset}): byte "
                         f"{data[offset:offset + 1]!r} is not UTF-8 ({err.reason}); save the {what} as UTF-8") from None


def read_lines(path: str | Path, what: str = "file") -> list[str]:
    """The lines of :func:`read_text`, without their line ends; item ``i`` is line ``i + 1``."""
    lines = read_text(path, what).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":  # the final line end closes the last line; it does not open another
        lines.pop()
    return lines


def read_csv_rows(path: str | Path, what: str = "CSV file") -> list[tuple[int, list[str]]]:
    """``(line number, fields)`` of every row of a CSV file read by :func:`read_text`, blank lines
    included (as empty rows). The number is the line the row starts on, which stays right across
    blank lines and quoted fields that span lines. A row the csv module refuses (a field over its
    size limit) raises ``ValueError`` naming the file and line."""
    reader = csv.reader(io.StringIO(read_text(path, what), newline=""))
    rows, line = [], 1
    try:
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as err:
        raise ValueError(f"{path}, line {line}: {err}") from None
    return rows


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """Parse the JSON file ``path`` read by :func:`read_text`; malformed JSON raises ``ValueError``
    naming the file, line and column."""
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from err


def write_json(path: str | Path, data: Any, *, indent: int = 1, sort_keys: bool = False) -> Path:
    """Write ``data`` as JSON through a temporary file renamed into place (never a half-written file);
    ``indent`` and ``sort_keys`` as in :func:`json.dumps`."""
    # dumped before the file is opened: unserialisable data leaves nothing behind
    text = json.dumps(data, indent=indent, sort_keys=sort_keys)
    return atomic_write_text(path, text)
