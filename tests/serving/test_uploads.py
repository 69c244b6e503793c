"""Uploads are checked before any model sees them, with real crafted files: a body over the limit (413,
by its Content-Length and, chunked, while it arrives), an image part over it (413), a PNG declaring
20000x20000 pixels (413 from its header), a text file (415), a truncated JPEG (422), no image (422);
an EXIF-rotated photo is served upright."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from mnet_vision.serving.uploads import client_name
from tests.serving.conftest import upload

LIMIT = 4096  # bytes: the test apps' max_upload_bytes


@pytest.fixture
def client(serve, tiny_detector_models):
    return serve(tiny_detector_models, max_upload_bytes=LIMIT, max_pixels=1_000_000)


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def declaring(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` (its CRC recomputed): a decompression bomb's header."""
    ihdr = data[12:29]  # type + 13 bytes of data
    patched = b"IHDR" + struct.pack(">II", width, height) + ihdr[12:]
    return data[:12] + patched + struct.pack(">I", zlib.crc32(patched)) + data[33:]


def jpeg(rgb: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def noise(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("side", "says"), [(20000, "400000000 pixels"), (2000, "2000x2000 pixels")])
def test_a_png_declaring_more_pixels_than_the_limit_is_refused_from_its_header(client, side, says):
    """20000 x 20000: PIL's own bomb guard refuses it as it opens; 2000 x 2000: over the service's max_pixels."""
    bomb = declaring(png(8, 8), side, side)
    assert struct.unpack(">II", bomb[16:24]) == (side, side) and len(bomb) < LIMIT
    response = client.post("/detect", files=upload(bomb, "bomb.png", "image/png"))
    assert response.status_code == 413
    assert says in response.json()["detail"] and "max_pixels=1000000" in response.json()["detail"]


def test_a_text_file_is_not_an_image(client):
    response = client.post("/detect", files=upload(b"GET /etc/passwd\nnot an image\n", "notes.txt", "image/jpeg"))
    assert response.status_code == 415
    assert "notes.txt" in response.json()["detail"] and "JPEG" in response.json()["detail"]


def test_a_truncated_jpeg_is_refused_not_half_read(client):
    whole = jpeg(noise(40, 40), quality=90)
    assert client.post("/detect", files=upload(whole, "whole.jpg")).status_code == 200
    response = client.post("/detect", files=upload(whole[:len(whole) // 2], "cut.jpg"))
    assert response.status_code == 422 and "cut.jpg" in response.json()["detail"]
    assert "truncated" in response.json()["detail"]


def test_an_image_over_the_upload_limit_is_refused_naming_the_limit(client):
    big = jpeg(noise(80, 80), quality=95)
    assert LIMIT < len(big) < LIMIT + 64 * 1024  # the body passes the middleware; the image's own limit refuses it
    response = client.post("/detect", files=upload(big, "big.jpg"))
    assert response.status_code == 413 and f"limit of {LIMIT} bytes" in response.json()["detail"]
    assert "big.jpg" in response.json()["detail"]


def test_an_oversized_body_is_refused_by_its_length_and_while_it_arrives(client):
    body = b"x" * (LIMIT + 70 * 1024)
    declared = client.post("/detect", files=upload(body, "huge.jpg"))
    assert declared.status_code == 413 and f"{LIMIT} bytes" in declared.json()["detail"]

    def chunks():  # no Content-Length: the limit must hold as the bytes come in
        boundary = b"--b0undary\r\n"
        yield boundary + b'Content-Disposition: form-data; name="image"; filename="huge.jpg"\r\n\r\n'
        for _ in range(200):
            yield b"x" * 8192
        yield b"\r\n--b0undary--\r\n"

    streamed = client.post("/detect", content=chunks(), headers={"Content-Type": "multipart/form-data; "
                                                                                  "boundary=b0undary"})
    assert "content-length" not in streamed.request.headers  # chunked: only the count of bytes received stops it
    assert streamed.status_code == 413 and f"{LIMIT} bytes" in streamed.json()["detail"]
    # the body's limit (the middleware), not the image field's (read after the whole form was parsed)
    assert declared.json()["detail"].startswith("the upload") and streamed.json()["detail"].startswith("the upload")


def test_no_image_field_says_which_field_to_send(client):
    response = client.post("/detect", data={"score": "0.5"})
    assert response.status_code == 422 and "'image'" in response.json()["detail"]
    empty = client.post("/detect", files=upload(b"", "empty.jpg"))
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]


def test_a_photo_taken_sideways_is_served_upright(client):
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to view
    sideways = jpeg(noise(20, 40), exif=exif.tobytes())  # stored 40 wide, 20 high
    response = client.post("/detect", files=upload(sideways, "phone.jpg"))
    assert response.status_code == 200
    assert (response.json()["width"], response.json()["height"]) == (20, 40)


@pytest.mark.parametrize(("given", "label"), [("../../etc/passwd.jpg", "passwd.jpg"), ("C:\\Users\\me\\a.jpg", "a.jpg"),
                                              ("/srv/photos/b.png", "b.png"), ("", "upload"), ("..", "upload")])
def test_the_client_file_name_is_a_label_without_folders(given, label):
    class Named:
        filename = given

    assert client_name(Named()) == label
