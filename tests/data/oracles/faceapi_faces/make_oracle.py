"""Regenerate face-api's whole-pipeline oracle: boxes, landmarks, crops, descriptors and attributes of every
face in the six demo photos, as ``detectAllFaces(t).withFaceLandmarks().withFaceExpressions()
.withAgeAndGender().withFaceDescriptors()`` computes them in Node.

Run from the repository root::

    .venv/bin/python tests/data/oracles/faceapi_faces/make_oracle.py

It fetches ``@vladmandic/face-api`` (:func:`mnet_vision.pretrained.fetch.fetch_package`), decodes
``demo/sample1.jpg`` .. ``sample6.jpg`` with :func:`mnet_vision.images.read_rgb` (the RGB bytes the pipeline
sees), reuses the faceapi_ssd oracle's Node project (installed into ``<cache>/oracles/faceapi_ssd/`` by
``npm ci --ignore-scripts``), runs ``oracle.js`` (tfjs ``cpu`` and ``wasm`` backends) and writes
``outputs.json`` beside this script: per photo its size and RGB sha256, per backend every face, and the
noise floor (cpu vs wasm). About 20 minutes on one core (face-api's pure-JS cpu backend takes ~3 minutes a
photo); ``--reuse`` rebuilds ``outputs.json`` from the raw output kept in the cache (``--results``).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mnet_vision.atomic import atomic_write_text
from mnet_vision.images import read_rgb
from mnet_vision.pretrained.fetch import cache_dir, fetch_package

HERE = Path(__file__).resolve().parent
DETECTOR_ORACLE = HERE.parent / "faceapi_ssd"
PHOTOS = tuple(f"sample{i}" for i in range(1, 7))
NODE_TIMEOUT_S = 3600
# float32 outputs of face-api's nets (widened to double by JS): stored at float32's shortest repr
FLOAT32_KEYS = ("descriptor", "expressions")
WASM_KEYS = ("score", "box", "landmarks", "descriptor", "expressions", "age", "gender", "gender_probability")
FLOOR_KEYS = ("score", "box", "landmarks", "descriptor_box", "descriptor", "expressions", "age", "gender_probability")


def photo_rgb(package: Path, name: str) -> np.ndarray:
    """``demo/<name>.jpg`` as the pipeline reads it: ``(H, W, 3)`` uint8."""
    return read_rgb(package / "demo" / f"{name}.jpg")


def _detector_oracle():
    """The faceapi_ssd oracle's make_oracle module: its ``node_project()`` installs the shared Node project."""
    spec = importlib.util.spec_from_file_location("faceapi_ssd_make_oracle", DETECTOR_ORACLE / "make_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _float32(values: list[float]) -> list[float]:
    return [float(str(np.float32(v))) for v in values]  # float32's shortest repr: the same float32 back


def noise_floor(cpu: list[dict], wasm: list[dict]) -> dict[str, float]:
    """Max abs difference cpu vs wasm over one photo's faces (same order: both backends agree on them)."""
    if len(cpu) != len(wasm):
        raise RuntimeError(f"cpu found {len(cpu)} faces, wasm {len(wasm)}: the backends disagree on the detections")
    floor = {}
    for key in FLOOR_KEYS:
        def flat(face, key=key):
            value = face[key]
            value = [value[k] for k in ("x", "y", "width", "height")] if isinstance(value, dict) else value
            return np.asarray(value, np.float64).ravel()
        floor[key] = max((float(np.abs(flat(a) - flat(b)).max()) for a, b in zip(cpu, wasm, strict=True)), default=0.0)
    return floor


def run_oracle(package: Path, photos: dict[str, np.ndarray], results: Path) -> dict:
    """oracle.js's output for ``photos``, written to ``results`` (kept: ``--results`` reuses it)."""
    project = _detector_oracle().node_project()
    with tempfile.TemporaryDirectory(prefix="faceapi_faces_oracle-") as tmp:
        work, listed = Path(tmp), []
        for name, rgb in photos.items():
            (work / f"{name}.rgb").write_bytes(rgb.tobytes())
            listed.append({"name": name, "rgb": str(work / f"{name}.rgb"), "width": rgb.shape[1],
                           "height": rgb.shape[0]})
        (work / "inputs.json").write_text(json.dumps(listed))
        subprocess.run(["node", str(HERE / "oracle.js"), "--project", str(project), "--model", str(package / "model"),
                        "--inputs", str(work / "inputs.json"), "--out", str(results)], check=True,
                       timeout=NODE_TIMEOUT_S)
    return json.loads(results.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=cache_dir() / "oracles" / "faceapi_faces" / "results.json",
                        help="where oracle.js's raw output is kept (default: in the cache)")
    parser.add_argument("--reuse", action="store_true", help="rebuild outputs.json from --results without Node")
    args = parser.parse_args()
    package = fetch_package("faceapi")
    photos = {name: photo_rgb(package, name) for name in PHOTOS}
    if args.reuse:
        result = json.loads(args.results.read_text())
    else:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        result = run_oracle(package, photos, args.results)
    doc_photos = {}
    for name, rgb in photos.items():
        got = result["photos"][name]
        if hashlib.sha256(rgb.tobytes()).hexdigest() != got["rgb_sha256"]:
            raise RuntimeError(f"{name}: oracle.js read other RGB bytes than make_oracle.py wrote")
        floor = noise_floor(got["faces"]["cpu"], got["faces"]["wasm"])
        for backend, faces in got["faces"].items():
            for k, face in enumerate(faces):
                for key in FLOAT32_KEYS:
                    face[key] = _float32(face[key])
                for key in ("landmarks", "unshifted_landmarks"):  # pixels: to 1e-6 px, 4 orders under the bars
                    face[key] = [[round(x, 6), round(y, 6)] for x, y in face[key]]
                if backend != "cpu":  # the crops' integer boxes are the same on both (floor 0): kept once
                    faces[k] = {key: face[key] for key in WASM_KEYS}
        doc_photos[name] = {"file": f"demo/{name}.jpg", "width": got["width"], "height": got["height"],
                            "rgb_sha256": got["rgb_sha256"], "faces": got["faces"], "noise_floor_cpu_vs_wasm": floor}
    doc = {
        "what": "face-api's whole face pipeline (detect, landmarks, align, describe, expressions, age/gender) run in "
                "its own runtime (Node, @tensorflow/tfjs cpu and wasm backends) on the six demo photos: the oracle "
                "for mnet_vision.faces.pipeline (issue 17). See README.md.",
        "regenerate": ".venv/bin/python tests/data/oracles/faceapi_faces/make_oracle.py",
        "versions": {**result["versions"], "backends": result["backends"]},
        "call": "detectAllFaces(t, new SsdMobilenetv1Options({minConfidence: 0.5, maxResults: 100}))"
                ".withFaceLandmarks().withFaceExpressions().withAgeAndGender().withFaceDescriptors(), "
                "t = tf.tensor3d(Int32Array of the RGB bytes, [h, w, 3], 'int32')",
        "photos": doc_photos,
    }
    atomic_write_text(HERE / "outputs.json", json.dumps(doc, separators=(",", ":")) + "\n")  # data: one line
    print(f"make_oracle: wrote {HERE / 'outputs.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
