"""Uploaded images, checked before any model sees them: the body's size while it is read, the pixel
count from the header before decoding, then the decode itself (:func:`mnet_vision.images.decode_rgb`,
upright by EXIF as every reader of the project).

Status codes: 413 for a body over ``max_upload_bytes`` or an image over ``max_pixels``; 415 for bytes
that are no image; 422 for an image that is corrupt or truncated, or a missing ``image`` field.
"""
from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from fastapi import HTTPException, UploadFile
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mnet_vision.images import ImageReadError, ImageTooLargeError, NotAnImageError, decode_rgb

# What a multipart body holds besides the image (boundaries, part headers, the small form fields):
# the body limit is the image's plus this, and the image itself is held to its own limit exactly.
FORM_OVERHEAD_BYTES = 64 * 1024
READ_CHUNK_BYTES = 1 << 20


def too_large(limit: int, what: str = "the upload") -> str:
    return (f"{what} exceeds the upload limit of {limit} bytes ({limit / (1 << 20):g} MiB, max_upload_bytes): "
            f"send a smaller image")


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes is refused with 413 naming the limit, from
    its ``Content-Length`` before any of it is read, or (chunked, or a lying header) as soon as the
    bytes received pass it, so no body larger than the limit is ever held in memory or spooled."""

    def __init__(self, app: ASGIApp, limit: int, image_limit: int):
        self.app, self.limit, self.image_limit = app, int(limit), int(image_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or ()).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            # the body is never read: close the connection rather than leave the client sending it
            await JSONResponse({"detail": too_large(self.image_limit)}, status_code=413,
                               headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # raised inside the form parser's read: FastAPI passes an HTTPException on as it is
                    raise HTTPException(status_code=413, detail=too_large(self.image_limit))
            return message

        await self.app(scope, limited, send)


def client_name(upload: UploadFile) -> str:
    """The upload's file name as a label only: its last part (no folders of the client's, never a path
    of ours), or ``upload`` when it has none."""
    name = upload.filename or ""
    name = PureWindowsPath(PurePosixPath(name).name).name.strip()
    return name[:200] if name.strip(".") else "upload"


async def read_upload(upload: UploadFile | None, limit: int) -> bytes:
    """The bytes of the ``image`` field, at most ``limit`` of them (413 beyond), read in chunks."""
    if not isinstance(upload, StarletteUpload):  # FastAPI hands over Starlette's class, not its subclass
        raise HTTPException(status_code=422, detail="no image: send the photo as the multipart form field 'image' "
                                                    "(curl -F image=@photo.jpg)")
    chunks, size = [], 0
    while True:
        chunk = await upload.read(READ_CHUNK_BYTES)
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=too_large(limit, f"the image {client_name(upload)!r}"))
        chunks.append(chunk)
    if not size:
        raise HTTPException(status_code=422, detail=f"the image {client_name(upload)!r} is empty (0 bytes)")
    return b"".join(chunks)


def decode_upload(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB, upright; an HTTPException of 413 / 415 / 422 saying why not."""
    try:
        return decode_rgb(data, name, max_pixels)
    except ImageTooLargeError as err:
        raise HTTPException(status_code=413, detail=f"{err} (the service's max_pixels={max_pixels})") from err
    except NotAnImageError as err:
        raise HTTPException(status_code=415, detail=f"{err}: send a JPEG, PNG, WebP, BMP, TIFF or PPM image") from err
    except ImageReadError as err:
        raise HTTPException(status_code=422, detail=f"{err}: corrupt or truncated image") from err


async def uploaded_image(upload: UploadFile | None, config: Any) -> tuple[str, np.ndarray]:
    """The client's file name (a label) and the decoded image of an upload, under ``config``'s limits."""
    data = await read_upload(upload, config.max_upload_bytes)
    name = client_name(upload)
    # decoding a photo takes tens of ms: in a worker thread, so the event loop keeps taking requests
    return name, await run_in_threadpool(decode_upload, data, name, config.max_pixels)
