"""Where a tool writes: an output folder checked before the work starts (writable, never among the
inputs) and one drawing name per input that no other input can share."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def check_writable(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Make ``folder`` (and its parents) and prove a file can be written there, raising
    ``PermissionError`` naming it otherwise: a tool finds out before its work, not after."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise PermissionError(f"{what} {folder} is not writable: {err.strerror or err}") from err
    return folder


def prepare_output_dir(out_dir: str | os.PathLike, inputs: Sequence[Path]) -> Path:
    """``out_dir`` made and checked writable, after refusing one that is, or lies inside, a folder
    holding an input: drawings named after the photos would otherwise replace them (``out=`` the
    input folder turned ``photo.png`` into a drawing of itself)."""
    out = Path(out_dir).resolve()
    for folder in sorted({Path(p).resolve().parent for p in inputs}):
        if out == folder or folder in out.parents:
            raise ValueError(f"output folder {out_dir} is {'the' if out == folder else 'inside the'} folder of the "
                             f"input images ({folder}): its drawings could overwrite them; choose another out=")
    return check_writable(out_dir)


def drawing_paths(inputs: Sequence[Path], out_dir: str | os.PathLike, suffix: str = ".png") -> list[Path]:
    """One output file per input: its path below the inputs' common folder, mirrored under
    ``out_dir``, with ``suffix`` appended to the whole name (``photo.jpg`` -> ``photo.jpg.png``), so
    ``photo.jpg`` and ``photo.png``, or ``a/x.jpg`` and ``b/x.jpg``, never share a drawing."""
    if not inputs:
        return []
    resolved = [Path(p).resolve() for p in inputs]
    root = Path(os.path.commonpath([p.parent for p in resolved]))
    return [Path(out_dir) / p.relative_to(root).with_name(p.name + suffix) for p in resolved]


def refuse_overwrite(output: str | os.PathLike, inputs: Sequence[str | os.PathLike], key: str) -> Path:
    """``output`` unless it is one of ``inputs`` (the same file by any path, hard links included),
    which raises ``ValueError`` naming ``key``: ``out=`` the teacher checkpoint would replace the
    checkpoint with its dump, ``picture=`` the query photo the photo with a drawing."""
    output = Path(output)
    for item in inputs:
        item = Path(item)
        same = output.resolve() == item.resolve() or (output.exists() and item.exists() and output.samefile(item))
        if same:
            raise ValueError(f"{key}={output} is an input of this run ({item}); writing it would destroy that "
                             f"input: choose another {key}")
    return output
