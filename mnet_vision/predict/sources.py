"""The photos of a prediction input, in one fixed order, and the chunks a run is cut into.

Three kinds of input: a folder tree (every image file below it, recursively, sorted by its path
relative to the folder), a list (``.txt``: one path a line; ``.csv``: one path a row, or the
``path`` column when the first row is a header naming it), and a COCO json (its ``images``'
``file_name``, in the file's order). Relative paths are read below ``images`` (default: the list's
or the json's folder). The order depends on the input alone, so a rerun cuts the same chunks and a
finished chunk can be recognised by its number.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnet_vision.images import IMG_EXTENSIONS
from mnet_vision.textfiles import read_csv_rows, read_json, read_lines

log = logging.getLogger(__name__)

LIST_SUFFIXES = (".txt", ".csv")
COCO_SUFFIX = ".json"


@dataclass(frozen=True)
class Photos:
    """``paths`` of an input in prediction order; ``duplicates``: listed paths left out because an
    earlier line named the same file (each photo is predicted once)."""

    paths: list[Path]
    source: str
    duplicates: int = 0


def folder_photos(folder: Path) -> list[Path]:
    """Every image file below ``folder`` (any depth), sorted by its relative path."""
    found = [p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def list_entries(path: Path) -> list[str]:
    """The photo paths a ``.txt`` (one a line, blank lines ignored) or ``.csv`` list names."""
    if path.suffix.lower() == ".txt":
        return [line.strip() for line in read_lines(path, "photo list") if line.strip()]
    rows = [(line, row) for line, row in read_csv_rows(path, "photo list") if any(f.strip() for f in row)]
    if not rows:
        return []
    header = [f.strip() for f in rows[0][1]]
    if "path" in header:
        column = header.index("path")
        entries = []
        for line, row in rows[1:]:
            if column >= len(row) or not row[column].strip():
                raise ValueError(f"{path}, line {line}: no value in the 'path' column (column {column + 1})")
            entries.append(row[column].strip())
        return entries
    wide = next(((line, row) for line, row in rows if len(row) != 1), None)
    if wide is not None:
        raise ValueError(f"{path}, line {wide[0]}: {len(wide[1])} columns but no header row naming a 'path' column; "
                         f"give one path a row, or a header with a 'path' column")
    return [row[0].strip() for _, row in rows]


def coco_entries(path: Path) -> list[str]:
    """The ``file_name`` of each entry of a COCO json's ``images``, in the file's order."""
    data = read_json(path, "COCO json")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise ValueError(f"{path}: expected a COCO json with an 'images' list, got "
                         f"{'no images key' if isinstance(data, dict) else type(data).__name__}")
    names = []
    for i, image in enumerate(images):
        name = image.get("file_name") if isinstance(image, dict) else None
        if not isinstance(name, str) or not name:
            raise ValueError(f"{path}: images[{i}] has no file_name string (got {image!r:.80})")
        names.append(name)
    return names


def _unique(paths: Sequence[Path], source: str) -> tuple[list[Path], int]:
    seen, kept = set(), []
    for p in paths:
        if p not in seen:
            seen.add(p)
            kept.append(p)
    duplicates = len(paths) - len(kept)
    if duplicates:
        log.warning("%s names %d photo(s) more than once; each is predicted once (first listing kept)",
                    source, duplicates)
    return kept, duplicates


def photo_paths(source: str | Path, images: str | Path | None = None) -> Photos:
    """The photos of ``source`` (a folder, a ``.txt``/``.csv`` list, a COCO ``.json``, or one image
    file) in prediction order; relative list entries are read below ``images`` (default: the
    list's folder). A missing input, or one naming no photo, raises ``FileNotFoundError``; a file of
    another kind, ``ValueError`` naming what is accepted."""
    source = Path(source)
    if source.is_dir():
        if images is not None:
            raise ValueError(f"images={images} applies to a list or a COCO json, not to the folder input {source}")
        paths = folder_photos(source)
        if not paths:
            raise FileNotFoundError(f"input folder {source} holds no image files ({', '.join(IMG_EXTENSIONS)}), "
                                    f"at any depth")
        return Photos(paths, str(source))
    if not source.is_file():
        raise FileNotFoundError(f"input {source} is neither a folder, a photo list nor a COCO json")
    suffix = source.suffix.lower()
    if suffix in IMG_EXTENSIONS:
        return Photos([source], str(source))
    if suffix in LIST_SUFFIXES:
        entries = list_entries(source)
    elif suffix == COCO_SUFFIX:
        entries = coco_entries(source)
    else:
        raise ValueError(f"input {source}: expected a folder, a photo list ({', '.join(LIST_SUFFIXES)}), a COCO "
                         f"json ({COCO_SUFFIX}) or an image file, not a {suffix or 'suffixless'} file")
    if not entries:
        raise FileNotFoundError(f"input {source} names no photos")
    root = Path(images) if images is not None else source.parent
    paths, duplicates = _unique([root / e for e in entries], str(source))
    return Photos(paths, str(source), duplicates)


def chunked(paths: Sequence[Path], chunk_size: int) -> list[list[Path]]:
    """``paths`` cut into chunks of ``chunk_size`` (the last one shorter), numbered by position."""
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r}: expected a whole number of photos >= 1")
    return [list(paths[i:i + chunk_size]) for i in range(0, len(paths), chunk_size)]
