"""The service's web page: ``GET /`` (the page), ``GET /static/{name}`` (its script and style) and
``GET /world.png`` (the land backdrop the page draws geolocations on).

The page is plain HTML + a little JS in ``static/`` with no build step and nothing fetched from
the internet: map tiles cannot be fetched where the service runs, so the map is our own backdrop,
the world's cities of :func:`mnet_vision.viz.geo.city_points` rasterised on an equirectangular
grid with no axes or margins (x = (lon + 180) / 360 * W, y = (90 - lat) / 180 * H), drawn once per
process and kept in memory.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from mnet_vision.viz.geo import city_points

STATIC_DIR = Path(__file__).with_name("static")
WORLD_WIDTH = 1024  # pixels; the height is half of it (360° by 180°)
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}


def static_file(name: str) -> Path:
    """The file ``name`` of the static folder; HTTPException 404 for anything else: a name with a
    folder part (``..``, ``/``, ``\\``), a hidden file, or a type the page does not use."""
    if not name or name != Path(name).name or "\\" in name or name.startswith(".") or \
            Path(name).suffix not in _MEDIA_TYPES:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    path = STATIC_DIR / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return path


@functools.lru_cache(maxsize=2)
def world_png(width: int = WORLD_WIDTH) -> bytes:
    """The land backdrop as PNG bytes: ``width`` x ``width // 2`` pixels, longitude -180..180 left
    to right, latitude 90..-90 top to bottom, each city a small grey-green blot
    (inhabited land), a faint 30° grid; no axes or margins, so the page places a point by its degrees alone."""
    from PIL import Image, ImageFilter  # PIL comes with the image readers; imported on the first map request

    height = width // 2
    lat, lon = city_points()
    x = np.clip(((lon + 180.0) / 360.0 * width).astype(np.int64), 0, width - 1)
    y = np.clip(((90.0 - lat) / 180.0 * height).astype(np.int64), 0, height - 1)
    present = np.zeros((height, width), np.uint8)
    present[y, x] = 255
    # a city stands for the land around it: widen each to a few pixels and soften, so inhabited land
    # reads as a grey mass rather than a dust of single pixels
    spread = Image.fromarray(present).filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.GaussianBlur(1.5))
    shade = np.minimum(np.asarray(spread, np.float64) / 160.0, 1.0)
    image = np.full((height, width, 3), 255.0)
    # the 30° grid, in the pixels holding those degrees (floor, the same rounding as the cities')
    rows = np.minimum((np.arange(0, 181, 30) / 180.0 * height).astype(np.int64), height - 1)
    columns = np.minimum((np.arange(0, 361, 30) / 360.0 * width).astype(np.int64), width - 1)
    image[rows, :] = 232.0
    image[:, columns] = 232.0
    land = np.array([196.0, 208.0, 196.0])
    image = image * (1 - shade[..., None]) + land * shade[..., None]
    buffer = io.BytesIO()
    Image.fromarray(image.round().astype(np.uint8)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def page_router(config: Any = None) -> APIRouter:
    """The routes of the web page. ``config`` (the service's config) is accepted for symmetry with
    the other routers; the page asks ``GET /models`` what the service runs, so it needs none."""
    router = APIRouter(tags=["page"])

    @router.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(static_file("index.html"), media_type=_MEDIA_TYPES[".html"])

    @router.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = static_file(name)
        return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix])

    @router.get("/world.png", include_in_schema=False)
    def world() -> Response:
        return Response(world_png(), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})

    return router
