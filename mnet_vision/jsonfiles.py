"""Reading JSON input files with errors that name the file and the place."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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
