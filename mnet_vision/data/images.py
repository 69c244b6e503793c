"""Reading images from disk as RGB ``uint8`` HWC arrays, with errors that name the file.

PIL rather than ``torchvision.io.decode_image``: PIL raises on truncated files where libjpeg's
decoder in torchvision only warns and returns a partly grey image, which is a silent wrong input.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS
from tqdm import tqdm

log = logging.getLogger(__name__)


class ImageReadError(OSError):
    """An image file that cannot be decoded; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an ``(H, W, 3)`` RGB ``uint8`` array.

    Grayscale, palette and CMYK images are converted to RGB; images with transparency are
    composited over white (so transparent pixels do not come out as arbitrary colours).
    Raises :class:`ImageReadError` for missing, corrupt or truncated files.
    """
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncation and corruption surface here, not in a worker later
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, rgba)
            array = np.asarray(img.convert("RGB"))
    except FileNotFoundError as err:
        raise ImageReadError(path, "file not found") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(path, f"{type(err).__name__}: {err}") from err
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageReadError(path, f"decoded to an empty array of shape {array.shape}")
    return array


def image_files(source: str | Path) -> list[Path]:
    """``source`` itself if it is a file, else the image files in the folder (sorted, not recursive)."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"input {source} is neither an image file nor a folder")
    files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise FileNotFoundError(f"input folder {source} holds no image files ({', '.join(IMG_EXTENSIONS)})")
    return files


def readable_chunks(files: Sequence[Path], size: int, skipped: list[str], desc: str | None = None
                    ) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """The readable images of ``files`` as ``(path, (H, W, 3) uint8)`` lists of up to ``size``, in
    order; each unreadable file is logged and appended to ``skipped`` (a long job never dies on one
    bad image), and the skips are summed up in a warning at the end. A chunk whose files were all
    unreadable is yielded empty. With ``desc``, a progress bar counts the files as each chunk is done."""
    with tqdm(total=len(files), desc=desc, unit="img", disable=desc is None) as bar:
        for start in range(0, len(files), size):
            part = files[start:start + size]
            chunk = []
            for path in part:
                try:
                    chunk.append((path, read_rgb(path)))
                except ImageReadError as err:
                    log.warning("skipping %s", err)
                    skipped.append(str(path))
            yield chunk
            bar.update(len(part))
    if skipped:
        log.warning("skipped %d unreadable image(s): %s", len(skipped), skipped[:5])


def check_images_exist(folder: Path, files: Sequence[str], source: str) -> None:
    """Raise ``FileNotFoundError`` naming ``source`` when any of ``files`` is not in ``folder``.
    Plain names are checked against one listing of the folder (CelebA has 200k of them)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} (for {source}) does not exist")
    listed = set(os.listdir(folder))
    missing = [f for f in files if (f not in listed if "/" not in f else not (folder / f).is_file())]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of the {len(files)} images listed in {source} are missing from "
                                f"{folder} (first: {missing[:5]})")
