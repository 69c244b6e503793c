"""The security rules: writes need the token when one is set and are refused on a read-only service; no
endpoint takes a path of the server from the client; faces added through the service never name a file of
it; CORS is off unless origins are given; the OpenAPI schema lists every endpoint; concurrent adds and
searches on an index file end as the same adds done one by one, and the file equals memory."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mnet_vision.index.face_index import FaceIndex
from tests.serving.conftest import upload

ENDPOINTS = {("post", "/detect"), ("post", "/embed"), ("post", "/geolocate"), ("post", "/faces/search"),
             ("post", "/faces/add"), ("get", "/faces/{face_id}/thumbnail"), ("get", "/healthz"), ("get", "/models")}


@pytest.fixture
def face(one_face_photos) -> bytes:
    return one_face_photos[sorted(one_face_photos)[0]]


def test_writes_need_the_token_when_one_is_set(serve, faceapi_models, face):
    client = serve(faceapi_models, token="s3cret")
    bare = client.post("/faces/add", files=upload(face), data={"identity": "Alice"})
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in bare.json()["detail"]
    for header in ("Bearer wrong", "Basic czNjcmV0", "s3cret"):
        refused = client.post("/faces/add", files=upload(face), data={"identity": "Alice"},
                              headers={"Authorization": header})
        assert refused.status_code in (401, 403), header
    assert client.get("/models").json()["index"]["size"] == 0  # nothing got in
    granted = client.post("/faces/add", files=upload(face), data={"identity": "Alice"},
                          headers={"Authorization": "Bearer s3cret"})
    assert granted.status_code == 200 and granted.json()["total"] == 1
    # reads need no token
    assert client.post("/faces/search", files=upload(face)).json()["faces"][0]["label"] == "Alice"


def test_a_read_only_service_refuses_adds_even_with_the_token(serve, faceapi_models, face):
    client = serve(faceapi_models, writable=False, token="s3cret")
    response = client.post("/faces/add", files=upload(face), data={"identity": "Alice"},
                           headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 403 and "writable=false" in response.json()["detail"]


def test_no_endpoint_takes_a_server_path(serve, tiny_detector_models):
    client = serve(tiny_detector_models)
    for field in ("path", "file", "image", "photo", "url"):  # a path as a form field is no image
        response = client.post("/detect", data={field: "/etc/hostname"})
        assert response.status_code == 422 and "image" in str(response.json()["detail"]), field
    for face_id in ("..%2F..%2Fetc%2Fpasswd", "-1", "0.5", "%2Fetc%2Fpasswd"):
        assert client.get(f"/faces/{face_id}/thumbnail").status_code in (404, 422), face_id
    schema = client.get("/openapi.json").json()
    for path, methods in schema["paths"].items():
        for operation in methods.values():
            assert not [p for p in operation.get("parameters", []) if p["schema"].get("type") == "string"], path
            body = operation.get("requestBody", {}).get("content", {}).get("multipart/form-data")
            if body:
                ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
                fields = schema["components"]["schemas"][ref]["properties"]
                # a file part is a string with a media type (OpenAPI 3.1) or format binary (3.0)
                text = {name for name, spec in fields.items() for s in spec.get("anyOf", [spec])
                        if s.get("type") == "string" and "contentMediaType" not in s and s.get("format") != "binary"}
                assert text <= {"identity"}, (path, text)  # the one text field is a name, never opened


def test_faces_added_through_the_service_name_no_file_of_it(serve, faceapi_models, face, demo_photo):
    client = serve(faceapi_models)
    other = str(demo_photo("sample6"))  # a real photo on the server, given as the upload's file name
    added = client.post("/faces/add", files=upload(face, other), data={"identity": "Alice"}).json()
    match = client.post("/faces/search", files=upload(face)).json()["faces"][0]["matches"][0]
    assert match["photo"].startswith("upload:") and match["photo"].endswith("/sample6.jpg")
    assert other not in str(client.get("/models").json())
    thumbnail = client.get(f"/faces/{added['added'][0]['id']}/thumbnail")
    assert thumbnail.status_code == 200  # the crop kept at the add, not a cut of sample6


def test_cors_is_off_by_default_and_on_for_the_origins_given(serve, tiny_detector_models):
    origin = {"Origin": "https://app.example.org"}
    off = serve(tiny_detector_models)
    assert "access-control-allow-origin" not in off.get("/healthz", headers=origin).headers
    preflight = off.options("/detect", headers=origin | {"Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    on = serve(tiny_detector_models, cors_origins=("https://app.example.org",))
    assert on.get("/healthz", headers=origin).headers["access-control-allow-origin"] == "https://app.example.org"
    preflight = on.options("/detect", headers=origin | {"Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin["Origin"]
    elsewhere = on.get("/healthz", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in elsewhere.headers


def test_openapi_lists_every_endpoint(serve, tiny_detector_models):
    paths = serve(tiny_detector_models).get("/openapi.json").json()["paths"]
    assert {(m, p) for p, methods in paths.items() for m in methods} == ENDPOINTS


def _identities_and_vectors(index: FaceIndex) -> set[tuple]:
    ids, vectors = index.vectors()
    return {(index.entries[i]["identity"], *np.round(v, 5).tolist()) for i, v in zip(ids, vectors)}


def test_concurrent_adds_and_searches_end_as_the_same_adds_done_serially(serve, faceapi_models, one_face_photos,
                                                                         tmp_path):
    adds = [(f"{name}-{n}", data) for n in range(2) for name, data in sorted(one_face_photos.items())[:2]]
    together = serve(faceapi_models, index=str(tmp_path / "together.faiss"), batch_max_wait_ms=20)

    def add(item):
        identity, data = item
        return together.post("/faces/add", files=upload(data), data={"identity": identity})

    def search(data):
        response = together.post("/faces/search", files=upload(data))
        labels = {m["identity"] for f in response.json()["faces"] for m in f["matches"]}
        return response, labels

    with ThreadPoolExecutor(8) as pool:  # adds and searches interleaved, all in flight together
        futures = [(pool.submit(add, item), pool.submit(search, item[1])) for item in adds]
        added = [a.result() for a, _ in futures]
        searched = [s.result() for _, s in futures]
    assert [r.status_code for r in added] == [200] * len(adds)
    assert all(r.status_code == 200 for r, _ in searched)
    assert all(labels <= {identity for identity, _ in adds} for _, labels in searched)  # never a half entry
    assert sorted(a.json()["added"][0]["id"] for a in added) == list(range(len(adds)))

    serial = serve(faceapi_models, index=str(tmp_path / "serial.faiss"))
    for identity, data in adds:
        assert serial.post("/faces/add", files=upload(data), data={"identity": identity}).status_code == 200
    memory = together.app.state.gallery.index
    on_disk = FaceIndex.load(tmp_path / "together.faiss")
    assert _identities_and_vectors(memory) == _identities_and_vectors(FaceIndex.load(tmp_path / "serial.faiss"))
    assert _identities_and_vectors(on_disk) == _identities_and_vectors(memory) and len(on_disk) == len(adds)
    assert on_disk.entries == memory.entries
    thumbs = sorted(p.name for p in (tmp_path / "together.faiss.thumbs").iterdir())
    assert len(thumbs) == len(adds) and all(together.get(f"/faces/{i}/thumbnail").status_code == 200
                                            for i in range(len(adds)))
    assert not list(tmp_path.glob(".*tmp-*"))  # every write renamed into place


def test_an_add_reloads_an_index_file_another_writer_saved_meanwhile(serve, faceapi_models, one_face_photos,
                                                                     tmp_path):
    path = tmp_path / "shared.faiss"
    first, second = (one_face_photos[n] for n in sorted(one_face_photos)[:2])
    one = serve(faceapi_models, index=str(path))
    other = serve(faceapi_models, index=str(path))  # another service (or tools/faces.py) on the same file
    assert one.post("/faces/add", files=upload(first), data={"identity": "A"}).json()["total"] == 1
    assert other.post("/faces/add", files=upload(second), data={"identity": "B"}).json()["total"] == 2
    assert sorted(e["identity"] for e in FaceIndex.load(path).entries.values()) == ["A", "B"]
