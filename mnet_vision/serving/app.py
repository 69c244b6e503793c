"""The HTTP service: :func:`create_app` builds the FastAPI app of a :class:`ServiceConfig` (``tools/serve.py``
runs it under uvicorn). Endpoints, their JSON and the rules they keep: docs/serving.md.

Every model runs behind a :class:`~mnet_vision.serving.batcher.MicroBatcher` (its own worker thread, requests
arriving together batched); uploads are checked by :mod:`mnet_vision.serving.uploads` before any model sees
them; no endpoint takes a path of this machine from the client (images come as uploads, thumbnails by
integer id).
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, File, Form, HTTPException, UploadFile
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from mnet_vision.faces.pipeline import PhotoFaces
from mnet_vision.serving.batcher import BatcherClosed, MicroBatcher
from mnet_vision.serving.config import ServiceConfig
from mnet_vision.serving.gallery import ServedGallery
from mnet_vision.serving.models import ServedModels
from mnet_vision.serving.page import page_router
from mnet_vision.serving.uploads import FORM_OVERHEAD_BYTES, BodyLimit, uploaded_image

log = logging.getLogger(__name__)

IMAGE_FIELD = File(None, description="the photo (JPEG, PNG, WebP, BMP, TIFF, PPM), multipart field 'image'")
# Shown in the OpenAPI schema (the docs page's "Authorize"); missing or not Bearer is our 401, not FastAPI's 403.
BEARER = HTTPBearer(auto_error=False, description="the service's token (token=, MNET_SERVE_TOKEN), for writes")
# Which key of tools/serve.py (conf/serve.yaml) loads each endpoint's model.
MODEL_KEYS = {"detect": "detector=<checkpoint, .onnx or faceapi_ssd>", "embed": "embedder=<checkpoint or .onnx>",
              "geolocate": "geolocator=<checkpoint or .onnx>", "faces": "faces=true"}


def _version() -> str:
    try:
        return version("mnet_vision")
    except PackageNotFoundError:
        return "0"


def _batchers(models: ServedModels, config: ServiceConfig) -> dict[str, MicroBatcher]:
    """One batcher per served model; each item carries its request's own settings (score, top_k)."""
    size, wait = config.batch_max_size, config.batch_max_wait_ms
    out: dict[str, MicroBatcher] = {}
    if models.detector is not None:
        detector = models.detector

        def detect(items: list[tuple[np.ndarray, float]]) -> list[list[dict[str, Any]]]:
            found = detector.raw([rgb for rgb, _ in items])
            return [detector.entries(f, score) for f, (_, score) in zip(found, items)]

        out["detect"] = MicroBatcher(detect, size, wait, "detect")
    if models.embedder is not None:
        embedder = models.embedder
        out["embed"] = MicroBatcher(lambda arrays: list(embedder.embed_arrays(arrays)), size, wait, "embed")
    if models.geolocator is not None:
        geolocator = models.geolocator

        def geolocate(items: list[tuple[np.ndarray, int]]) -> list[list[dict[str, Any]]]:
            _, cells = geolocator.locate([rgb for rgb, _ in items], max(k for _, k in items))
            return [top[:k] for top, (_, k) in zip(cells, items)]  # best first: a shorter top-k is a prefix

        out["geolocate"] = MicroBatcher(geolocate, size, wait, "geolocate")
    if models.faces is not None:
        pipeline = models.faces
        # face-api's pipeline takes one photo at a time; batching still keeps it on one thread, in arrival order
        out["faces"] = MicroBatcher(lambda items: [pipeline.describe_photo(rgb, name) for rgb, name in items],
                                    size, wait, "faces")
    return out


def create_app(config: ServiceConfig, models: ServedModels | None = None) -> FastAPI:
    """The service's app: the endpoints of the models in ``models`` (loaded from ``config`` when None: pass
    loaded models to build several apps over one load), the web page (:func:`page_router`), ``config``'s
    limits, security and batching. The face index (``config.index``, or one in memory) is this app's own."""
    models = ServedModels.load(config) if models is None else models
    gallery = ServedGallery(models.faces, config.index) if models.faces is not None else None
    batchers = _batchers(models, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for batcher in batchers.values():
            batcher.open()
        yield
        for batcher in batchers.values():  # what was queued still runs, then the worker threads stop
            await batcher.close()

    app = FastAPI(title="mnet_vision", version=_version(), lifespan=lifespan,
                  description="Detection, embeddings, face search and geolocation with MobileNet models. "
                              "Upload images as the multipart field 'image'.")
    app.state.config, app.state.models, app.state.gallery, app.state.batchers = config, models, gallery, batchers
    # added last = outermost: an oversized body is refused before CORS or routing see it
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(BodyLimit, limit=config.max_upload_bytes + FORM_OVERHEAD_BYTES,
                       image_limit=config.max_upload_bytes)

    def batcher(name: str) -> MicroBatcher:
        if name not in batchers:
            raise HTTPException(status_code=503, detail=f"no {name} model is loaded in this service: start it with "
                                                        f"{MODEL_KEYS[name]} (tools/serve.py, conf/serve.yaml)")
        return batchers[name]

    async def run(name: str, item: Any, file: str) -> Any:
        try:
            return await batcher(name).submit(item)
        except BatcherClosed as err:
            raise HTTPException(status_code=503, detail=str(err)) from err
        except ValueError as err:  # the model refused this input (e.g. an image too small for it)
            raise HTTPException(status_code=422, detail=f"{name}: {file}: {err}") from err

    def served_gallery() -> ServedGallery:
        if gallery is None:
            batcher("faces")  # raises the 503 naming faces=true
        return gallery

    def require_writer(credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)) -> None:
        """Writes: refused when the service is read-only (403), or, with a token configured, without
        ``Authorization: Bearer <token>`` (401) or with another token (403)."""
        if not config.writable:
            raise HTTPException(status_code=403, detail="this service is read-only (writable=false): /faces/add "
                                                        "is refused")
        if config.token is None:
            return
        if credentials is None or not credentials.credentials.strip():
            raise HTTPException(status_code=401, detail="writes need a token: send the header 'Authorization: "
                                                        "Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(credentials.credentials.strip().encode(), config.token.encode()):
            raise HTTPException(status_code=403, detail="wrong token for writes")

    @app.get("/healthz", tags=["service"])
    async def healthz() -> dict[str, Any]:
        """The service is up; which endpoints have their model."""
        return {"status": "ok", "serving": sorted(batchers)}

    @app.get("/models", tags=["service"])
    async def models_info() -> dict[str, Any]:
        """What is loaded (task, classes, source, runtime, the face describer's record), the face index
        (size, metric), the limits, the batching settings and what each batcher has run so far."""
        batching = {"max_size": config.batch_max_size, "max_wait_ms": config.batch_max_wait_ms,
                    "batchers": {name: b.stats() for name, b in batchers.items()}}
        return {"models": models.describe(), "index": gallery.describe() if gallery is not None else None,
                **config.public(), "batching": batching}

    @app.post("/detect", tags=["detect"])
    async def detect(image: UploadFile | None = IMAGE_FIELD,
                     score: float | None = Form(None, ge=0.0, le=1.0, description="score threshold (default: the "
                                                                                  "service's score)")
                     ) -> dict[str, Any]:
        """The detections of one photo, best first, as detections.json's entries (box_xyxy pixels, bbox COCO xywh)."""
        batcher("detect")
        name, rgb = await uploaded_image(image, config)
        found = await run("detect", (rgb, config.score if score is None else score), name)
        return {"file": name, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]), "detections": found}

    @app.post("/embed", tags=["embed"])
    async def embed(image: UploadFile | None = IMAGE_FIELD) -> dict[str, Any]:
        """The embedding of one photo (float32 values; unit length for our embedding checkpoints)."""
        batcher("embed")
        name, rgb = await uploaded_image(image, config)
        vector = await run("embed", rgb, name)
        return {"file": name, "dim": int(vector.shape[0]), "embedding": vector.astype(float).tolist()}

    @app.post("/geolocate", tags=["geolocate"])
    async def geolocate(image: UploadFile | None = IMAGE_FIELD,
                        top_k: int | None = Form(None, ge=1, le=1000, description="cells to return")) -> dict[str, Any]:
        """Where a photo was taken: its top-k cells with probabilities, and the best cell's point, as
        geolocation.json's entries."""
        batcher("geolocate")
        name, rgb = await uploaded_image(image, config)
        cells = await run("geolocate", (rgb, config.top_k if top_k is None else top_k), name)
        return {"file": name, "lat": cells[0]["lat"], "lon": cells[0]["lon"], "cells": cells}

    async def photo_faces(image: UploadFile | None) -> tuple[PhotoFaces, np.ndarray]:
        batcher("faces")
        name, rgb = await uploaded_image(image, config)
        return await run("faces", (rgb, name), name), rgb

    @app.post("/faces/search", tags=["faces"])
    async def faces_search(image: UploadFile | None = IMAGE_FIELD,
                           k: int | None = Form(None, ge=1, le=1000, description="matches per face"),
                           threshold: float | None = Form(None, description="beyond it a face is unknown (face-api: "
                                                                            "Euclidean distance, 0.6)")
                           ) -> dict[str, Any]:
        """Each face of a photo (best detection first) and its k nearest faces in the index, in the shape of
        tools/faces.py search's faces (label, identity, distance or cosine, unknown, matches)."""
        photo, rgb = await photo_faces(image)
        k = config.k if k is None else k
        threshold = config.threshold if threshold is None else threshold
        faces = await run_in_threadpool(served_gallery().search, photo, k, threshold)
        return {"file": photo.photo, "width": photo.width, "height": photo.height, "metric": gallery.metric,
                "threshold": threshold, "k": k, "faces": faces}

    @app.post("/faces/add", tags=["faces"], dependencies=[Depends(require_writer)])
    async def faces_add(image: UploadFile | None = IMAGE_FIELD,
                        identity: str = Form(..., min_length=1, max_length=200, description="who the face is"),
                        largest: bool = Form(False, description="a photo of several faces: add its largest"),
                        face: int | None = Form(None, ge=0, description="add this face (its number in "
                                                                        "/faces/search's answer) of several")
                        ) -> dict[str, Any]:
        """Add the face of a photo to the index as ``identity``: the photo must hold exactly one face (or give
        ``largest=true``, or ``face=<number>``). Needs ``Authorization: Bearer <token>`` when the service has one."""
        served_gallery()
        identity = identity.strip()
        if not identity:
            raise HTTPException(status_code=422, detail="identity is blank: name who the face is")
        photo, rgb = await photo_faces(image)
        count = len(photo.faces)
        if count == 0:
            skipped = "; ".join(sorted({s["reason"] for s in photo.skipped}))
            raise HTTPException(status_code=422, detail=f"no face found in {photo.photo}" +
                                (f" ({len(photo.skipped)} detection(s) skipped: {skipped})" if skipped else ""))
        if face is not None:
            if face >= count:
                raise HTTPException(status_code=422, detail=f"face={face}, but {photo.photo} holds {count} face(s) "
                                                            f"(numbered from 0, best detection first)")
            number = face
        elif count > 1 and not largest:
            raise HTTPException(status_code=422, detail=f"{photo.photo} holds {count} faces; /faces/add adds one: "
                                                        f"send a photo of one face, or largest=true, or face=<number>")
        else:
            areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in photo.faces]
            number = int(np.argmax(areas))
        added, total = await run_in_threadpool(gallery.add, photo, rgb, [number], identity)
        return {"added": added, "total": total}

    @app.get("/faces/{face_id}/thumbnail", tags=["faces"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no such face"}})
    async def faces_thumbnail(face_id: int = PathParam(..., ge=0, description="the face's id in the index")
                              ) -> Response:
        """A JPEG of an indexed face (its crop, 96 px square)."""
        data = await run_in_threadpool(served_gallery().thumbnail, face_id)
        if data is None:
            raise HTTPException(status_code=404, detail=f"no face {face_id} in the index (or its picture is gone)")
        return Response(data, media_type="image/jpeg")

    app.include_router(page_router(config))
    return app
