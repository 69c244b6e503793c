"""Regenerate face-api's oracle for its landmark, expression, age/gender and descriptor nets.

Run from the repository root::

    .venv/bin/python tests/data/oracles/faceapi_nets/make_oracle.py

It fetches ``@vladmandic/face-api`` (:func:`mnet_vision.pretrained.fetch.fetch_package`), builds the fixed
inputs (:func:`oracle_inputs`: the three faces of ``demo/sample1.jpg``, decoded by
:func:`mnet_vision.images.read_rgb` and cut at the boxes face-api's detector gave in
``../faceapi_ssd/detections.json``, as they are and squared + resized to 112x112 and 150x150, and two
synthetic squares), reuses the faceapi_ssd oracle's Node project (same ``package.json`` + lock, installed
into ``<cache>/oracles/faceapi_ssd/`` by ``npm ci --ignore-scripts``), runs ``oracle.js`` (face-api's own
nets, tfjs ``cpu`` and ``wasm`` backends) and writes ``outputs.json`` beside this script: per input its
recipe, size and RGB sha256, per backend each net's outputs, and the noise floor (cpu vs wasm, max abs
difference per output). Takes about a minute on 2 cores.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from mnet_vision.atomic import atomic_write_text
from mnet_vision.images import read_rgb
from mnet_vision.pretrained.fetch import fetch_package

HERE = Path(__file__).resolve().parent
DETECTOR_ORACLE = HERE.parent / "faceapi_ssd"
PHOTO = "sample1"
SMALL_NETS = ("landmarks68", "expression", "age_gender")  # 112x112 inputs
NODE_TIMEOUT_S = 1800


def synthetic_rgb(size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8: ``v[y][x][c] = (x*5 + y*11 + c*97 + (x*y) % 23) % 256``."""
    y, x, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    return ((x * 5 + y * 11 + c * 97 + (x * y) % 23) % 256).astype(np.uint8)


def face_boxes() -> list[tuple[int, int, int, int]]:
    """face-api's detections on sample1 (cpu backend, our RGB, score 0.5) as integer ``(x0, y0, x1, y1)``:
    the float box's floor and ceiling."""
    doc = json.loads((DETECTOR_ORACLE / "detections.json").read_text())
    found = doc["photos"][PHOTO]["detections"]["cpu"]["rgb"]["0.5"]
    boxes = [d["box"] for d in found]
    return [(int(np.floor(b["x"])), int(np.floor(b["y"])), int(np.ceil(b["x"] + b["width"])),
             int(np.ceil(b["y"] + b["height"]))) for b in boxes]


def squared(rgb: np.ndarray, size: int) -> np.ndarray:
    """A fixed square input made from a crop: padded with black to a centred square, resized by PIL's
    bilinear filter to ``size`` (any fixed recipe would do: these inputs reach face-api unresized)."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = rgb
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))


def oracle_inputs(package: Path) -> dict[str, dict]:
    """The fixed inputs: ``{name: {"rgb": (H, W, 3) uint8, "nets": [...], "recipe": str}}``."""
    photo = read_rgb(package / "demo" / f"{PHOTO}.jpg")
    out = {}
    for k, (x0, y0, x1, y1) in enumerate(face_boxes()):
        crop = photo[y0:y1, x0:x1]
        where = f"demo/{PHOTO}.jpg [{y0}:{y1}, {x0}:{x1}] (face {k} of face-api's detector)"
        out[f"face{k}_crop"] = {"rgb": crop, "nets": [*SMALL_NETS, "descriptor"],
                                "recipe": f"{where}, as it is: face-api pads and resizes it"}
        out[f"face{k}_112"] = {"rgb": squared(crop, 112), "nets": list(SMALL_NETS),
                               "recipe": f"{where}, centred on black, PIL bilinear to 112x112"}
        out[f"face{k}_150"] = {"rgb": squared(crop, 150), "nets": ["descriptor"],
                               "recipe": f"{where}, centred on black, PIL bilinear to 150x150"}
    out["synthetic_112"] = {"rgb": synthetic_rgb(112), "nets": list(SMALL_NETS), "recipe": synthetic_rgb.__doc__}
    out["synthetic_150"] = {"rgb": synthetic_rgb(150), "nets": ["descriptor"], "recipe": synthetic_rgb.__doc__}
    return out


def _detector_oracle():
    """The faceapi_ssd oracle's make_oracle module: its ``node_project()`` installs the shared Node project."""
    spec = importlib.util.spec_from_file_location("faceapi_ssd_make_oracle", DETECTOR_ORACLE / "make_oracle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flat(outputs: dict) -> dict[str, np.ndarray]:
    """One net's outputs as named arrays (what the noise floor compares)."""
    flat = {}
    for net, values in outputs.items():
        for key, value in values.items():
            if key != "prediction":
                flat[f"{net}.{key}"] = np.asarray(value, np.float64)
    return flat


def noise_floor(outputs: dict) -> dict[str, float]:
    """Max abs difference cpu vs wasm per output (``landmarks68.raw`` in fractions of the input side)."""
    cpu, wasm = _flat(outputs["cpu"]), _flat(outputs["wasm"])
    return {key: float(np.abs(cpu[key] - wasm[key]).max()) for key in cpu}


def main() -> None:
    package = fetch_package("faceapi")
    inputs = oracle_inputs(package)
    project = _detector_oracle().node_project()
    with tempfile.TemporaryDirectory(prefix="faceapi_nets_oracle-") as tmp:
        work, listed = Path(tmp), []
        for name, item in inputs.items():
            (work / f"{name}.rgb").write_bytes(item["rgb"].tobytes())
            listed.append({"name": name, "rgb": str(work / f"{name}.rgb"), "width": item["rgb"].shape[1],
                           "height": item["rgb"].shape[0], "nets": item["nets"]})
        (work / "inputs.json").write_text(json.dumps(listed))
        subprocess.run(["node", str(HERE / "oracle.js"), "--project", str(project), "--model", str(package / "model"),
                        "--inputs", str(work / "inputs.json"), "--out", str(work / "results.json")], check=True,
                       timeout=NODE_TIMEOUT_S)
        result = json.loads((work / "results.json").read_text())
    doc_inputs = {}
    for name, item in inputs.items():
        got = result["inputs"][name]
        if hashlib.sha256(item["rgb"].tobytes()).hexdigest() != got["rgb_sha256"]:
            raise RuntimeError(f"{name}: oracle.js read other RGB bytes than make_oracle.py wrote")
        doc_inputs[name] = {"recipe": item["recipe"], "width": got["width"], "height": got["height"],
                            "rgb_sha256": got["rgb_sha256"], "nets": item["nets"], "outputs": got["outputs"],
                            "noise_floor_cpu_vs_wasm": noise_floor(got["outputs"])}
    doc = {
        "what": "face-api's landmark, expression, age/gender and descriptor nets run in their own runtime (Node, "
                "@tensorflow/tfjs cpu and wasm backends) on fixed inputs: the oracle for mnet_vision's PyTorch "
                "ports (issue 17). See README.md.",
        "regenerate": ".venv/bin/python tests/data/oracles/faceapi_nets/make_oracle.py",
        "versions": {**result["versions"], "backends": result["backends"]},
        "calls": {"landmarks68": "faceLandmark68Net.runNet(toNetInput(t)) (raw) and detectLandmarks(t).positions",
                  "expression": "faceExpressionNet.predictExpressions(t), FACE_EXPRESSION_LABELS order",
                  "age_gender": "ageGenderNet.forwardInput(toNetInput(t)) {age, gender softmax} and "
                                "predictAgeAndGender(t)",
                  "descriptor": "faceRecognitionNet.computeFaceDescriptor(t)",
                  "input": "t = tf.tensor3d(Int32Array of the RGB bytes, [h, w, 3], 'int32')"},
        "inputs": doc_inputs,
    }
    atomic_write_text(HERE / "outputs.json", json.dumps(doc, indent=1) + "\n")
    print(f"make_oracle: wrote {HERE / 'outputs.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
