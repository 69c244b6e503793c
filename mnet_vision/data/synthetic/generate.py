"""Writing a synthetic set once: into a temporary folder renamed into place, with a marker of the
parameters it was made with, so a set is never half-written, silently overwritten or mixed with
one of other parameters."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "synthetic.json"


def generate_once(root: str | Path, params: dict, write: Callable[[Path], int]) -> Path:
    """Run ``write(folder)`` into a temporary folder renamed to ``root``, unless ``root`` already
    holds a set made with ``params``.

    The finished set carries a ``synthetic.json`` marker with its parameters; a folder with other
    parameters is an error (it is never silently overwritten), and an interrupted run leaves no
    half-written set.
    """
    root = Path(root)
    marker = root / MARKER
    if marker.exists():
        found = json.loads(marker.read_text())
        if found != params:
            raise ValueError(f"{root} holds a synthetic set made with {found}, not {params}; "
                             f"delete it or point data.root elsewhere")
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists, is not empty and has no {MARKER}; refusing to write a synthetic set there")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        count = write(tmp)
        (tmp / MARKER).write_text(json.dumps(params, indent=1))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote synthetic %s set to %s (%d images)", params["kind"], root, count)
    return root
