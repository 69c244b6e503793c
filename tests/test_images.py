import numpy as np
import pytest
from PIL import Image

from mnet_vision.images import ImageReadError, ImageTooLargeError, NotAnImageError, decode_rgb, read_rgb


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


# --- pixel limit: decompression bombs and huge images are counted skips, decided from the header ---

def _bomb(path, side=20000):
    """A real ``side`` x ``side`` PNG that is tiny on disk (1-bit, all black: ~50 KB for 20000^2)."""
    Image.new("1", (side, side)).save(path)
    return path


def test_decompression_bomb_is_an_image_read_error_naming_file_and_limit(tmp_path):
    path = _bomb(tmp_path / "bomb.png")
    assert path.stat().st_size < 1_000_000
    # over PIL's own guard (2 x 89 MP): PIL raises DecompressionBombError, which is no OSError
    with pytest.raises(ImageReadError, match=r"bomb\.png.*max_pixels=64000000"):
        read_rgb(path)
    with pytest.raises(ImageReadError, match=r"bomb\.png.*max_pixels=1000"):
        read_rgb(path, max_pixels=1000)


def test_image_over_the_limit_is_refused_from_the_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    path = _bomb(tmp_path / "big.png", 9000)  # 81 MP: under PIL's guard, over our 64 MP default
    decoded, load = [], ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self) or load(self))
    with pytest.raises(ImageReadError, match=r"big\.png: 9000x9000 pixels \(81\.0 megapixels\) exceed the limit "
                                             r"max_pixels=64000000"):
        read_rgb(path)
    assert decoded == []  # refused before a pixel was decoded: memory stays flat
    monkeypatch.undo()
    small = _bomb(tmp_path / "small.png", 40)
    with pytest.raises(ImageReadError, match=r"40x40 pixels .* max_pixels=1000 "):
        read_rgb(small, max_pixels=1000)
    assert read_rgb(small, max_pixels=1600).shape == (40, 40, 3)  # the limit is inclusive
    assert read_rgb(small, max_pixels=None).shape == (40, 40, 3)


def test_readable_chunks_skip_and_count_the_bomb(tmp_path):
    from mnet_vision.images import readable_chunks

    good = _save(tmp_path / "good.png", "RGB", (1, 2, 3))
    bomb = _bomb(tmp_path / "bomb.png")
    skipped: list[str] = []
    chunks = list(readable_chunks([bomb, good], 4, skipped))
    assert [p for chunk in chunks for p, _ in chunk] == [good] and skipped == [str(bomb)]
    skipped = []
    list(readable_chunks([_bomb(tmp_path / "mid.png", 100), good], 4, skipped, max_pixels=5000))
    assert skipped == [str(tmp_path / "mid.png")]


def test_datasets_skip_the_bomb_or_raise_when_strict(tmp_path):
    from mnet_vision.data.image_folder import ImageFolderDataset
    from mnet_vision.data.skipping import collate_skipping
    from mnet_vision.data.transforms import classification_eval_transform

    (tmp_path / "train" / "a").mkdir(parents=True)
    _save(tmp_path / "train" / "a" / "0.png", "RGB", (5, 5, 5))
    _bomb(tmp_path / "train" / "a" / "1.png")
    ds = ImageFolderDataset(tmp_path / "train", classification_eval_transform(8))
    batch = collate_skipping([ds[0], ds[1]])
    assert batch["skipped"] == [str(tmp_path / "train" / "a" / "1.png")] and len(batch["label"]) == 1
    assert "max_pixels=64000000" in ds[1]["error"]
    with pytest.raises(ImageReadError, match=r"1\.png.*max_pixels"):
        ImageFolderDataset(tmp_path / "train", strict=True)[1]
    # the limit reaches the dataset: a 6x8 image is over 40 pixels
    assert "skipped" in ImageFolderDataset(tmp_path / "train", max_pixels=40)[0]


def test_datamodules_take_max_pixels(tmp_path):
    """Every DataModule of conf/data takes ``max_pixels`` (the yaml passes it) and hands it to its datasets."""
    import inspect

    from mnet_vision.data.attributes import AttributeDataModule
    from mnet_vision.data.coco import CocoDetectionDataModule
    from mnet_vision.data.geolocation import GeotaggedDataModule
    from mnet_vision.data.identities import IdentityFolderDataModule
    from mnet_vision.data.image_folder import ImageFolderDataModule

    for module in (AttributeDataModule, CocoDetectionDataModule, GeotaggedDataModule, IdentityFolderDataModule,
                   ImageFolderDataModule):
        assert inspect.signature(module).parameters["max_pixels"].default == 64_000_000, module


# --- bit depths and modes ---

def _png16(path, values: np.ndarray, color: bool = False) -> None:
    """Write a 16-bit greyscale or RGB PNG by hand (PIL writes 16-bit greyscale only), big endian as
    the format says, so the test does not rest on the reader under test."""
    import struct
    import zlib

    height, width = values.shape[:2]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2 if color else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    gradient = np.tile(np.arange(0, 65536, 257, dtype=np.uint16), (3, 1))  # 0, 257, ..., 65535: 256 steps
    _png16(tmp_path / "g16.png", gradient)
    image = read_rgb(tmp_path / "g16.png")
    assert image.shape == (3, 256, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, :, 0], (gradient[0] >> 8).astype(np.uint8))
    assert image[0, 0, 0] == 0 and image[0, 128, 0] == 128 and image[0, -1, 0] == 255
    assert (image == image[..., :1]).all()  # grey stays grey
    Image.fromarray(gradient).save(tmp_path / "pil16.png")  # PIL's own writer (mode I;16)
    np.testing.assert_array_equal(read_rgb(tmp_path / "pil16.png"), image)
    Image.fromarray(gradient).save(tmp_path / "g16.tif")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g16.tif"), image)


def test_16_bit_pgm_and_rgb_png(tmp_path):
    gradient = np.tile(np.arange(0, 65536, 257, dtype=np.uint16), (2, 1))
    Image.fromarray(gradient).save(tmp_path / "g.pgm")  # PIL reads 16-bit PGM back as mode I
    assert Image.open(tmp_path / "g.pgm").mode == "I"
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.pgm")[..., 0], (gradient >> 8).astype(np.uint8))
    rgb = np.stack([gradient, 65535 - gradient, np.full_like(gradient, 32896)], axis=2)
    _png16(tmp_path / "rgb16.png", rgb, color=True)
    np.testing.assert_array_equal(read_rgb(tmp_path / "rgb16.png"), (rgb >> 8).astype(np.uint8))


def test_float_and_wide_integer_images_are_refused(tmp_path):
    Image.fromarray(np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)).save(tmp_path / "f.tif")
    with pytest.raises(ImageReadError, match=r"f\.tif.*mode F.*no defined 8-bit scale"):
        read_rgb(tmp_path / "f.tif")
    Image.fromarray(np.array([[0, 70000], [-3, 5]], dtype=np.int32)).save(tmp_path / "i.tif")
    with pytest.raises(ImageReadError, match=r"i\.tif.*-3\.\.70000, outside 16-bit"):
        read_rgb(tmp_path / "i.tif")


@pytest.mark.parametrize("make, expected", [
    (lambda: Image.new("LA", (4, 2), (100, 255)), (100, 100, 100)),           # opaque grey
    (lambda: Image.new("LA", (4, 2), (0, 0)), (255, 255, 255)),               # transparent: white
    (lambda: Image.new("1", (4, 2), 1), (255, 255, 255)),
    (lambda: Image.new("CMYK", (4, 2), (0, 255, 255, 0)), (255, 0, 0)),       # magenta + yellow ink: red
])
def test_other_modes_give_the_right_rgb(tmp_path, make, expected):
    path = tmp_path / ("x.tif" if make().mode == "CMYK" else "x.png")
    make().save(path)
    image = read_rgb(path)
    assert image.shape == (2, 4, 3) and (image == np.array(expected, np.uint8)).all()


def test_palette_with_transparent_index_is_composited_over_white(tmp_path):
    img = Image.new("P", (4, 2), 0)
    img.putpalette([0, 0, 0, 200, 10, 20] + [0] * 762)
    img.putpixel((1, 0), 1)
    img.save(tmp_path / "p.png", transparency=0)
    image = read_rgb(tmp_path / "p.png")
    assert (image[0, 1] == (200, 10, 20)).all() and (image[0, 0] == 255).all() and (image[1] == 255).all()


@pytest.mark.parametrize("bad", ["64M", 0, -1, True, 1.5])
def test_bad_max_pixels_fails_when_the_data_is_built_not_at_the_first_image(tmp_path, bad):
    from mnet_vision.data.image_folder import ImageFolderDataModule

    with pytest.raises(ValueError,
                       match=r"max_pixels=.* is not valid: expected a whole number of pixels >= 1, or None"):
        ImageFolderDataModule(str(tmp_path), num_classes=2, max_pixels=bad)
    with pytest.raises(ValueError, match="max_pixels"):
        read_rgb(tmp_path / "x.png", max_pixels=bad)


def test_image_extensions_are_torchvisions():
    from torchvision.datasets.folder import IMG_EXTENSIONS as torchvision_extensions

    from mnet_vision.images import IMG_EXTENSIONS

    assert IMG_EXTENSIONS == torchvision_extensions



# EXIF Orientation -> how a camera stores the upright picture's pixels under that tag (the inverse of
# what a viewer does to show it)
STORED_AS = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270,
             2: Image.Transpose.FLIP_LEFT_RIGHT}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_exif_orientation_is_applied_before_anything_sees_the_pixels(tmp_path, orientation):
    upright = np.zeros((48, 80, 3), np.uint8)  # landscape, a red block in the top-left corner
    upright[:16, :24] = (255, 0, 0)
    stored = Image.fromarray(upright)
    if STORED_AS[orientation] is not None:
        stored = stored.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"orientation{orientation}.jpg"
    stored.save(path, quality=95, exif=exif)
    assert Image.open(path).getexif()[0x0112] == orientation
    rgb = read_rgb(path).astype(int)
    assert rgb.shape == (48, 80, 3)
    assert (np.abs(rgb[2:14, 2:22] - (255, 0, 0)) < 40).all()  # JPEG: near, not exact
    assert rgb[20:, 30:].max() < 40


# --- decode_rgb: an upload's bytes, the same checks as a file, errors that tell the service which answer ---

def test_decoded_bytes_equal_the_file_read_exif_included(tmp_path):
    path = tmp_path / "o6.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(path, exif=exif)
    decoded = decode_rgb(path.read_bytes(), "upload.jpg")
    assert decoded.shape == (50, 30, 3)  # turned upright
    np.testing.assert_array_equal(decoded, read_rgb(path))


def test_decode_errors_name_the_upload_and_say_which_kind(tmp_path):
    with pytest.raises(NotAnImageError, match="notes.txt"):
        decode_rgb(b"just some text, no image", "notes.txt")
    for side, guard in ((5000, "5000x5000 pixels"), (20000, "PIL's guard")):  # ours from the header, then PIL's
        with pytest.raises(ImageTooLargeError, match=r"bomb\.png.*max_pixels=1000") as err:
            decode_rgb(_bomb(tmp_path / f"bomb{side}.png", side).read_bytes(), "bomb.png", max_pixels=1000)
        assert guard in str(err.value)
    path = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    with pytest.raises(ImageReadError, match="t.jpg") as err:  # an image, but cut short: neither of the two
        decode_rgb(path.read_bytes()[: path.stat().st_size // 2], "t.jpg")
    assert not isinstance(err.value, (NotAnImageError, ImageTooLargeError))
