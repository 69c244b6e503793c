"""The endpoints with real models: /detect, /embed and /geolocate answer what the inference classes give on the
same image; a demo photo's face added through /faces/add is found by /faces/search in the whole photo; the
thumbnails; 503 naming the key for a model not loaded; /models; concurrent requests batched."""
from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnet_vision.faces.gallery import index_photos
from mnet_vision.images import decode_rgb, read_rgb
from mnet_vision.inference.detect import Detector
from mnet_vision.inference.load import load_model
from mnet_vision.serving.app import create_app
from mnet_vision.serving.config import ServiceConfig
from mnet_vision.serving.models import ServedModels
from tests.serving.conftest import face_boxes, upload


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shapes_image(detection_run) -> Path:
    return sorted((Path(detection_run["run_dir"]).parent / "data" / "val2017").glob("*.png"))[0]


def test_detect_answers_what_the_detector_gives(serve, tiny_detector_models, shapes_image):
    client = serve(tiny_detector_models, score=0.0)
    response = client.post("/detect", files=upload(shapes_image, shapes_image.name, "image/png"))
    assert response.status_code == 200
    rgb = read_rgb(shapes_image)
    expected = tiny_detector_models.detector.detect([rgb], 0.0)[0]
    assert response.json() == {"file": shapes_image.name, "width": rgb.shape[1], "height": rgb.shape[0],
                               "detections": expected}
    assert expected  # at score 0 the tiny model's boxes are there to compare
    higher = client.post("/detect", files=upload(shapes_image, "a.png", "image/png"), data={"score": "0.5"}).json()
    assert higher["detections"] == tiny_detector_models.detector.detect([rgb], 0.5)[0]
    refused = client.post("/detect", files=upload(shapes_image, "a.png", "image/png"), data={"score": "2"})
    assert refused.status_code == 422 and "score" in str(refused.json()["detail"])


def test_detect_with_faceapi_answers_what_its_detector_gives(serve, faceapi_models, two_face_photo):
    response = serve(faceapi_models).post("/detect", files=upload(two_face_photo, "pair.jpg"))
    expected = faceapi_models.detector.detect([decode_rgb(two_face_photo, "pair")], 0.3)[0]
    assert response.json()["detections"] == expected and {d["label"] for d in expected} == {"face"}


def test_embed_and_geolocate_answer_what_the_models_give(serve, checkpoint_models):
    client = serve(checkpoint_models)
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    data = png_bytes(rgb)
    embedded = client.post("/embed", files=upload(data, "x.png", "image/png")).json()
    vector = checkpoint_models.embedder.embed_arrays([rgb])[0]
    assert embedded["file"] == "x.png" and embedded["dim"] == checkpoint_models.embedder.dim == len(vector)
    np.testing.assert_array_equal(np.asarray(embedded["embedding"], np.float32), vector)
    located = client.post("/geolocate", files=upload(data, "x.png", "image/png"), data={"top_k": "3"}).json()
    _, cells = checkpoint_models.geolocator.locate([rgb], 3)
    assert located == {"file": "x.png", "lat": cells[0][0]["lat"], "lon": cells[0][0]["lon"], "cells": cells[0]}
    default = client.post("/geolocate", files=upload(data, "x.png", "image/png")).json()
    assert len(default["cells"]) == min(5, len(checkpoint_models.geolocator.tokens))


def test_a_face_added_through_the_service_is_found_in_the_whole_photo(serve, faceapi_models, demo_photo,
                                                                       one_face_photos):
    client = serve(faceapi_models)
    name = sorted(one_face_photos)[0]
    added = client.post("/faces/add", files=upload(one_face_photos[name], f"{name}-face.jpg"),
                        data={"identity": "Alice"})
    assert added.status_code == 200, added.text
    (face,) = added.json()["added"]
    assert added.json()["total"] == 1 and face["identity"] == "Alice" and face["id"] == 0
    found = client.post("/faces/search", files=upload(demo_photo(name), f"{name}.jpg"), data={"k": "3"})
    assert found.status_code == 200
    body = found.json()
    rgb = read_rgb(demo_photo(name))
    assert (body["file"], body["width"], body["height"], body["metric"]) == (f"{name}.jpg", rgb.shape[1],
                                                                              rgb.shape[0], "euclidean")
    alice = [f for f in body["faces"] if f["label"] == "Alice"]
    assert len(alice) == 1 and alice[0]["distance"] < 0.6 and not alice[0]["unknown"]
    match = alice[0]["matches"][0]
    assert match["id"] == 0 and match["identity"] == "Alice" and match["photo"].endswith(f"/{name}-face.jpg")
    x, y, w, h = alice[0]["box"]
    assert alice[0]["bbox"] == alice[0]["box"] and alice[0]["box_xyxy"] == pytest.approx([x, y, x + w, y + h],
                                                                                          abs=0.02)
    others = [f for f in body["faces"] if f["label"] != "Alice"]
    assert all(f["unknown"] and f["identity"] == "" for f in others)
    thumbnail = client.get("/faces/0/thumbnail")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert decode_rgb(thumbnail.content, "thumbnail").shape == (96, 96, 3)
    missing = client.get("/faces/1/thumbnail")
    assert missing.status_code == 404 and "no face 1" in missing.json()["detail"]


def test_adding_a_photo_of_several_faces_needs_a_choice(serve, faceapi_models, two_face_photo):
    client = serve(faceapi_models)
    photo = upload(two_face_photo, "pair.jpg")
    boxes = face_boxes(faceapi_models.faces, decode_rgb(two_face_photo, "pair"))  # best detection first
    assert len(boxes) == 2
    several = client.post("/faces/add", files=photo, data={"identity": "Bob"})
    assert several.status_code == 422 and f"holds {len(boxes)} faces" in several.json()["detail"]
    assert "largest=true" in several.json()["detail"]
    beyond = client.post("/faces/add", files=photo, data={"identity": "Bob", "face": str(len(boxes))})
    assert beyond.status_code == 422 and f"holds {len(boxes)} face(s)" in beyond.json()["detail"]
    blank = client.post("/faces/add", files=photo, data={"identity": "   "})
    assert blank.status_code == 422 and "identity" in blank.json()["detail"]
    largest = client.post("/faces/add", files=photo, data={"identity": "Bob", "largest": "true"})
    assert largest.status_code == 200 and largest.json()["total"] == 1
    assert largest.json()["added"][0]["box_xyxy"] == pytest.approx(
        max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])), abs=0.01)
    chosen = client.post("/faces/add", files=photo, data={"identity": "Carol", "face": "0"})
    assert chosen.json()["added"][0]["box_xyxy"] == pytest.approx(boxes[0], abs=0.01)
    assert chosen.json()["total"] == 2


def test_an_index_built_by_the_faces_tool_is_searched_and_its_thumbnails_cut_from_its_photos(
        serve, faceapi_models, two_face_photo, tmp_path):
    (tmp_path / "pair.jpg").write_bytes(two_face_photo)
    index = tmp_path / "faces.faiss"
    index_photos([tmp_path / "pair.jpg"], index, faceapi_models.faces, progress=False)
    client = serve(faceapi_models, index=str(index), writable=False)
    assert client.get("/models").json()["index"]["size"] == 2
    hits = client.post("/faces/search", files=upload(two_face_photo, "again.jpg")).json()["faces"]
    assert len(hits) == 2 and all(f["matches"][0]["distance"] < 1e-3 for f in hits)  # each face finds itself
    thumbnail = client.get("/faces/0/thumbnail")
    assert thumbnail.status_code == 200 and decode_rgb(thumbnail.content, "t").shape == (96, 96, 3)


def test_a_model_not_loaded_answers_503_naming_the_key(serve, tiny_detector_models):
    client = serve(tiny_detector_models)
    rgb = np.zeros((8, 8, 3), np.uint8)
    for path, key in (("/embed", "embedder="), ("/geolocate", "geolocator="), ("/faces/search", "faces=true"),
                      ("/faces/add", "faces=true")):
        response = client.post(path, files=upload(png_bytes(rgb), "x.png", "image/png"), data={"identity": "x"})
        assert response.status_code == 503 and key in response.json()["detail"], path
    assert client.get("/faces/0/thumbnail").status_code == 503
    assert client.get("/healthz").json() == {"status": "ok", "serving": ["detect"]}


def test_models_reports_what_is_loaded_the_index_limits_and_batching(serve, faceapi_models):
    info = serve(faceapi_models, max_upload_bytes=1000, batch_max_size=3, token="s3cret").get("/models").json()
    assert info["models"]["detector"]["classes"] == ["face"] and info["models"]["detector"]["runtime"] == "pytorch"
    assert info["models"]["faces"]["embedding_model"] == faceapi_models.faces.embedding_model
    assert info["index"] == {"path": None, "size": 0, "metric": "euclidean", "factory": "IDMap2,Flat",
                             "embedding_model": faceapi_models.faces.embedding_model}
    assert info["limits"] == {"max_upload_bytes": 1000, "max_pixels": 40_000_000}
    assert info["batching"]["max_size"] == 3 and set(info["batching"]["batchers"]) == {"detect", "faces"}
    assert info["writes"] == {"writable": True, "token_required": True} and "s3cret" not in str(info)


def test_concurrent_requests_are_batched(tiny_detector_models, shapes_image):
    app = create_app(ServiceConfig(batch_max_size=4, batch_max_wait_ms=200, score=0.0), tiny_detector_models)
    data = shapes_image.read_bytes()

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*(client.post("/detect", files=upload(data, f"{i}.png", "image/png"))
                                               for i in range(8)))
        await app.state.batchers["detect"].close()
        return responses

    responses = asyncio.run(asyncio.wait_for(main(), 60))
    assert [r.status_code for r in responses] == [200] * 8
    assert len({str(r.json()["detections"]) for r in responses}) == 1  # the same image, the same answer
    stats = app.state.batchers["detect"].stats()
    assert stats["items"] == 8 and 2 <= stats["calls"] < 8 and max(int(s) for s in stats["sizes"]) <= 4


def test_models_loaded_from_a_config_serve_the_same(tiny_detector_models, detection_run):
    models = ServedModels.load(ServiceConfig(detector=str(detection_run["best_checkpoint"])))
    assert models.describe()["detector"] == tiny_detector_models.describe()["detector"]
    with pytest.raises(FileNotFoundError, match="embedder=nowhere.ckpt: no such file"):
        ServedModels.load(ServiceConfig(embedder="nowhere.ckpt"))


def test_an_onnx_export_is_served_by_onnx_runtime(serve, detection_run, shapes_image, tmp_path):
    pytest.importorskip("onnxruntime")
    from mnet_vision.inference.export import export_onnx  # the deploy extra, as tests/inference/conftest.py

    loaded = load_model(str(detection_run["best_checkpoint"]), fast=False)
    loaded.model.requires_grad_(False)
    onnx = export_onnx(loaded, tmp_path / "detector.onnx", dynamo=False).path
    models = ServedModels.load(ServiceConfig(detector=str(onnx)))
    client = serve(models, score=0.0)
    assert client.get("/models").json()["models"]["detector"]["runtime"] == "onnxruntime"
    found = client.post("/detect", files=upload(shapes_image, "a.png", "image/png")).json()["detections"]
    assert found == Detector(onnx).detect([read_rgb(shapes_image)], 0.0)[0] and found
