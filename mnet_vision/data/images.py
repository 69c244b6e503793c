"""Reading images from disk as RGB ``uint8`` HWC arrays, with errors that name the file.

PIL rather than ``torchvision.io.decode_image``: PIL raises on truncated files where libjpeg's
decoder in torchvision only warns and returns a partly grey image, which is a silent wrong input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


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
