import numpy as np
import pytest
from PIL import Image

from mnet_vision.data.images import ImageReadError, read_rgb


def _save(path, mode, color):
    Image.new(mode, (8, 6), color).save(path)
    return path


@pytest.mark.parametrize("mode,color,fmt", [("L", 128, "png"), ("CMYK", (0, 0, 0, 0), "jpg"),
                                            ("RGB", (1, 2, 3), "png"), ("P", 3, "png")])
def test_modes_become_rgb(tmp_path, mode, color, fmt):
    image = read_rgb(_save(tmp_path / f"x.{fmt}", mode, color))
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8


def test_cmyk_white_stays_white(tmp_path):
    image = read_rgb(_save(tmp_path / "c.jpg", "CMYK", (0, 0, 0, 0)))
    assert image.min() > 245  # no ink in CMYK is white, not black


def test_rgba_is_composited_over_white(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(path)  # fully transparent red
    assert (read_rgb(path) == 255).all()
    Image.new("RGBA", (4, 4), (255, 0, 0, 255)).save(path)  # opaque red
    assert (read_rgb(path)[..., 0] == 255).all() and (read_rgb(path)[..., 1] == 0).all()


def test_missing_file_names_path(tmp_path):
    with pytest.raises(ImageReadError, match="nope.jpg.*file not found"):
        read_rgb(tmp_path / "nope.jpg")


def test_corrupt_file_names_path(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"this is not an image")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        read_rgb(path)


def test_truncated_jpeg_raises(tmp_path):
    path = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageReadError, match="t.jpg"):
        read_rgb(path)
