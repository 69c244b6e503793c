"""Reading JSON input files with errors that name the file and the place."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mnet_vision.atomic import atomic_write


def read_json(path: str | Path, what: str) -> Any:
    """Parse ``path``; a missing file or malformed JSON raises naming ``what`` and the file
    (and the line and column of the syntax error)."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{what} {path} does not exist") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON at line {err.lineno} column {err.colno}: {err.msg}") from err


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as JSON through a temporary file renamed into place (never a half-written file)."""
    text = json.dumps(data, indent=1)  # before opening the file: unserialisable data leaves nothing behind
    return atomic_write(path, lambda tmp: tmp.write_text(text))
