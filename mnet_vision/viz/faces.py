"""Face pictures: photos with their faces boxed and labelled, and contact sheets of face thumbnails
(a query face beside its matches, the members of a cluster).

Plain arrays and strings in, PNGs out: what the faces are (the pipeline, the index) is the caller's.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnet_vision.viz.detection import PALETTE, save_detections_picture
from mnet_vision.viz.figure import pyplot, save_figure

#: The frame and box colour of a face nobody in the gallery matched.
UNKNOWN_COLOUR = "#bab0ac"
# Colours of named people and clusters: the palette less its grey, which means "unknown".
PERSON_COLOURS = [c for c in PALETTE if c != UNKNOWN_COLOUR]


def person_colour(name: str | None) -> str:
    """A stable colour for a person or cluster label (the same name, the same colour in every picture
    and every run: crc32, not Python's salted ``hash``); :data:`UNKNOWN_COLOUR` for None / ``unknown``."""
    if name is None or name == "unknown":
        return UNKNOWN_COLOUR
    return PERSON_COLOURS[zlib.crc32(name.encode()) % len(PERSON_COLOURS)]


def face_thumbnail(rgb: np.ndarray, box: Sequence[float], size: int = 96, margin: float = 0.2) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 square around the ``(x1, y1, x2, y2)`` pixel ``box`` of an ``(H, W, 3)``
    uint8 photo: the box's longer side plus ``margin`` of it on each side, centred on the box, black where
    it leaves the photo (a face at the border is padded, never an error)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"face_thumbnail expects an (H, W, 3) photo, got shape {rgb.shape}")
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * (1 + 2 * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(1, int(round(side)))
    square = np.zeros((n, n, 3), np.uint8)
    h, w = rgb.shape[:2]
    sx0, sy0, sx1, sy1 = max(left, 0), max(top, 0), min(left + n, w), min(top + n, h)
    if sx1 > sx0 and sy1 > sy0:
        square[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = rgb[sy0:sy1, sx0:sx1]
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR))


def save_labelled_photo(rgb: np.ndarray, boxes: Sequence[Sequence[float]], captions: Sequence[str],
                        colours: Sequence[str], path: str | Path) -> Path:
    """Draw an ``(H, W, 3)`` uint8 photo with each face's ``(x1, y1, x2, y2)`` pixel box in its colour
    under its caption (e.g. ``2: alice 0.41``, the colour of the person it was matched to), as a PNG."""
    if not (len(boxes) == len(captions) == len(colours)):
        raise ValueError(f"{len(boxes)} boxes but {len(captions)} captions and {len(colours)} colours")
    image = torch.from_numpy(np.array(rgb, np.uint8)).permute(2, 0, 1)  # a copy: photos may be read-only arrays
    box_tensor = torch.tensor([list(map(float, b)) for b in boxes], dtype=torch.float32).reshape(-1, 4)
    count = len(boxes)
    return save_detections_picture(image, box_tensor, torch.zeros(count, dtype=torch.int64), torch.zeros(count),
                                   ["face"], path, colors=list(colours), captions=list(captions))


@dataclass(frozen=True)
class FaceCell:
    """One thumbnail of a contact sheet: an ``(h, w, 3)`` uint8 image (None: an empty cell, e.g. a photo
    moved since it was indexed), its caption and its frame colour."""

    image: np.ndarray | None
    caption: str
    colour: str = "black"


def save_face_sheet(rows: Sequence[Sequence[FaceCell]], path: str | Path, title: str | None = None,
                    max_columns: int = 8) -> Path:
    """Draw a contact sheet as a PNG: each row of cells on its own line (a row longer than ``max_columns``
    wraps onto the next lines), each thumbnail framed in its colour under its caption."""
    lines: list[Sequence[FaceCell]] = []
    for row in rows:
        lines += [row[i:i + max_columns] for i in range(0, max(len(row), 1), max_columns)]
    if not lines:
        raise ValueError(f"no faces to draw in {path}")
    cols = max(len(line) for line in lines) or 1
    plt = pyplot()
    fig, axes = plt.subplots(len(lines), cols, figsize=(1.6 * cols, 1.9 * len(lines) + (0.4 if title else 0)),
                             squeeze=False)
    for ax_row, line in zip(axes, lines):
        for ax in ax_row:
            ax.axis("off")
        for ax, cell in zip(ax_row, line):
            ax.axis("on")
            if cell.image is not None:
                ax.imshow(cell.image)
            ax.set_title(cell.caption, fontsize=7, color=cell.colour if cell.colour != UNKNOWN_COLOUR else "dimgrey")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor(cell.colour)
                spine.set_linewidth(3)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, "face sheet")

