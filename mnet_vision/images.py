"""Reading images from disk as RGB ``uint8`` HWC arrays, with errors that name the file.

PIL rather than ``torchvision.io.decode_image``: PIL raises on truncated files where libjpeg's
decoder in torchvision only warns and returns a partly grey image, which is a silent wrong input.

:func:`read_rgb` is the one place every reader (the datasets through
:func:`mnet_vision.data.skipping.read_or_skip`, detect / embed / geolocate / build_index through
:func:`readable_chunks`) decodes an image, so its checks hold on every path:

- **Pixel limit.** An image of more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`, 64
  megapixels) is refused from its header, before any pixel is decoded: a 438 KB PNG can declare
  20000x20000 pixels (1.2 GB as RGB), and a 10000x10000 photo would take the process from 1 to
  5 GB. Readers and DataModules take ``max_pixels`` (``data.max_pixels``; ``None`` for no limit
  of ours). PIL's own decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``, 2 x 89 megapixels)
  still applies above that, and its error is reported the same way.
- **Bit depth.** 16-bit greyscale (PIL modes ``I;16*``, and ``I`` as 16-bit PPM/PGM decode) is
  scaled to 8 bits by its high byte; PIL's own ``convert`` would clip 0..65535 to 255, turning a
  gradient into near white. ``I`` values outside 0..65535 and 32-bit float images (``F``) have no
  defined 8-bit scale and are refused rather than guessed.
- **EXIF orientation.** A photo whose EXIF ``Orientation`` tag says it was taken rotated or mirrored
  (phones store the sensor's pixels and the tag) is turned upright (``PIL.ImageOps.exif_transpose``)
  before anything else sees it, so boxes, landmarks and crops are in the upright picture people see.
"""
from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

log = logging.getLogger(__name__)

# torchvision.datasets.folder.IMG_EXTENSIONS, kept here so that reading images needs no torchvision
# (mnet_vision.deploy runs exported models without torch); tests/test_images.py keeps them equal.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageReadError(OSError):
    """An image file that cannot be decoded; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"cannot read image {path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ImageTooLargeError(ImageReadError):
    """An image of more pixels than the limit (ours, ``max_pixels``, or PIL's bomb guard), refused
    from its header before any pixel is decoded (the service answers 413)."""


class NotAnImageError(ImageReadError):
    """Bytes no image decoder recognises (a text file, a PDF ...), as opposed to an image that is
    corrupt or truncated (the service answers 415, not 422)."""


# The default pixel limit of read_rgb: 64 megapixels is above every photo a phone or DSLR takes
# (a 50 MP sensor included) and bounds one decoded RGB image at 192 MB, so a DataLoader worker or
# a detect run stays near its usual memory whatever the folder holds.
MAX_PIXELS = 64_000_000

# PIL's 16-bit greyscale modes (little, big and native endian): scaled by their high byte.
_GREY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def checked_max_pixels(max_pixels: Any) -> int | None:
    """``max_pixels`` as an ``int`` >= 1 or ``None`` (no limit); anything else (a string from a
    config, a bool, 0) raises ``ValueError`` now, rather than a ``TypeError`` at the first image."""
    if max_pixels is None:
        return None
    if (isinstance(max_pixels, (int, float)) and not isinstance(max_pixels, bool) and max_pixels >= 1
            and float(max_pixels).is_integer()):
        return int(max_pixels)
    raise ValueError(f"max_pixels={max_pixels!r} is not valid: expected a whole number of pixels >= 1, or None "
                     f"for no limit (default {MAX_PIXELS})")


def _check_pixels(path: str | Path, size: tuple[int, int], max_pixels: int | None) -> None:
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(path, f"{width}x{height} pixels ({width * height / 1e6:.1f} megapixels) exceed the "
                                   f"limit max_pixels={max_pixels} ({max_pixels / 1e6:g} megapixels): a decompression "
                                   f"bomb or an image too large to decode safely; raise max_pixels (data.max_pixels) "
                                   f"to read it")


def _grey16_to_rgb(path: str | Path, img: Image.Image) -> np.ndarray:
    """16-bit greyscale (``I;16*``, or ``I`` holding 0..65535 as 16-bit PGM/PPM decode) to RGB
    ``uint8`` by the high byte, as PIL itself reduces 16-bit RGB PNGs; PIL's ``convert`` would
    clip every value above 255 to white instead."""
    values = np.asarray(img)
    if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise ImageReadError(path, f"mode {img.mode} pixels span {int(values.min())}..{int(values.max())}, outside "
                                   f"16-bit 0..65535: no defined 8-bit scale; save the image as 8 or 16 bits")
    grey = (values.astype(np.uint32) >> 8).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _to_rgb(path: str | Path, img: Image.Image) -> np.ndarray:
    if img.mode in _GREY16_MODES or img.mode == "I":
        return _grey16_to_rgb(path, img)
    if img.mode == "F":  # float pixels: 0..1 or 0..255 or anything; a guess would be a silent wrong input
        raise ImageReadError(path, "32-bit float pixels (mode F) have no defined 8-bit scale; save the image as "
                                   "8 or 16 bits")
    if img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"))


def read_rgb(path: str | Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode an image file to an ``(H, W, 3)`` RGB ``uint8`` array.

    Grayscale, palette, 1-bit and CMYK images are converted to RGB; images with transparency are
    composited over white (so transparent pixels do not come out as arbitrary colours); 16-bit
    greyscale is scaled to 8 bits; an EXIF orientation is applied (see the module doc). Raises
    :class:`ImageReadError` for missing, corrupt or truncated files, images of more than
    ``max_pixels`` pixels (checked from the header, before decoding; ``None``: no limit but PIL's
    own), and pixel formats with no defined 8-bit scale.
    """
    return _decode(path, path, max_pixels)


def decode_rgb(data: bytes, name: str, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """:func:`read_rgb` of an image held in memory (an upload): the same conversions and checks, the
    errors naming ``name``; :class:`ImageTooLargeError` over ``max_pixels`` (from the header),
    :class:`NotAnImageError` for bytes that are no image, :class:`ImageReadError` when corrupt."""
    return _decode(io.BytesIO(data), name, max_pixels)


def _decode(source: str | Path | BinaryIO, path: str | Path, max_pixels: int | None) -> np.ndarray:
    """The body of :func:`read_rgb` for a file path or an open binary file; errors name ``path``."""
    max_pixels = checked_max_pixels(max_pixels)
    try:
        # Our own pixel limit decides; PIL's warning above 89 megapixels would only repeat it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                _check_pixels(path, img.size, max_pixels)  # from the header: nothing decoded yet
                img.load()  # decode now: truncation and corruption surface here, not in a worker later
                array = _to_rgb(path, ImageOps.exif_transpose(img))  # upright, as a viewer shows it
    except ImageReadError:
        raise
    except FileNotFoundError as err:
        raise ImageReadError(path, "file not found") from err
    except Image.DecompressionBombError as err:  # not an OSError: it would escape every reader's except
        raise ImageTooLargeError(path, f"{err} (PIL's guard, PIL.Image.MAX_IMAGE_PIXELS; "
                                       f"max_pixels={max_pixels})") from err
    except UnidentifiedImageError as err:
        what = err if isinstance(source, (str, Path)) else "cannot identify image file"  # not a BytesIO's repr
        raise NotAnImageError(path, f"{type(err).__name__}: {what} (no image format PIL decodes: "
                                    f"{', '.join(IMG_EXTENSIONS)} ...)") from err
    except (OSError, SyntaxError, ValueError) as err:
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


def readable_chunks(files: Sequence[Path], size: int, skipped: list[str], desc: str | None = None,
                    max_pixels: int | None = MAX_PIXELS) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """The readable images of ``files`` as ``(path, (H, W, 3) uint8)`` lists of up to ``size``, in
    order; each unreadable file is logged and appended to ``skipped`` (a long job never dies on one
    bad image), and the skips are summed up in a warning at the end. A chunk whose files were all
    unreadable is yielded empty. With ``desc``, a progress bar counts the files as each chunk is done.
    ``max_pixels``: as :func:`read_rgb` (a larger image is one of the skips)."""
    with tqdm(total=len(files), desc=desc, unit="img", disable=desc is None) as bar:
        for start in range(0, len(files), size):
            part = files[start:start + size]
            chunk = []
            for path in part:
                try:
                    chunk.append((path, read_rgb(path, max_pixels)))
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
