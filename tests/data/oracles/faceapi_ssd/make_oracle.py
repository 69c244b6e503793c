"""Regenerate face-api's SSD-MobileNetV1 oracle: its detections and raw outputs on the six demo photos.

Run from the repository root::

    .venv/bin/python tests/data/oracles/faceapi_ssd/make_oracle.py

It fetches ``@vladmandic/face-api`` (:func:`mnet_vision.pretrained.fetch.fetch_package`), decodes each
``demo/sampleN.jpg`` with :func:`mnet_vision.images.read_rgb`, installs this folder's pinned Node project
(``package.json`` + ``package-lock.json``, ``npm ci --ignore-scripts``) into
``<cache>/oracles/faceapi_ssd/`` once, runs ``oracle.js`` (face-api in Node, tfjs ``cpu`` and ``wasm``
backends) and writes, beside this script:

- ``detections.json``: versions, per photo the detections per backend / input / threshold, and the
  noise floor (cpu vs wasm) and the decoder effect (our RGB bytes vs jpeg-js's) measured here;
- ``raw_<backend>_<photo>.f32``: float32 little-endian raw outputs over all 5118 anchors, the arrays
  and byte offsets of each file listed in ``detections.json["raw_files"]``.

``--time`` instead prints face-api's own timing on the photos (JSON). Needs ``node`` and ``npm`` on
PATH and the package registry for the first install. Takes ~15 minutes on 2 cores (the pure-JS cpu
backend needs ~20 s per forward pass, three per input).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mnet_vision.atomic import atomic_write_bytes, atomic_write_text
from mnet_vision.images import read_rgb
from mnet_vision.markdown import markdown_table
from mnet_vision.pretrained.fetch import cache_dir, fetch_package

HERE = Path(__file__).resolve().parent
PHOTOS = [f"sample{k}" for k in range(1, 7)]
N_ANCHORS = 5118
# oracle.js writes per (backend, input, photo) one float32 file of these arrays, in this order
RAW_ARRAYS = (("enc", (N_ANCHORS, 4)), ("logits", (N_ANCHORS, 3)), ("boxes", (N_ANCHORS, 4)), ("scores", (N_ANCHORS,)))
# What the repository keeps (~635 KB): the port's parity test needs the raw encodings and logits of
# real photos and of the synthetic input (no resize), and one instance of face-api's decoded boxes and
# face scores (a pure function of the encodings and the anchors, so one photo checks the decoding).
KEEP = {
    ("cpu", "sample1"): ("enc", "logits", "boxes", "scores"),
    ("cpu", "sample2"): ("enc", "logits"),
    ("cpu", "synthetic"): ("enc", "logits"),
    ("wasm", "synthetic"): ("enc", "logits"),
}
NPM_TIMEOUT_S = 600
NODE_TIMEOUT_S = 3600


def node_project(cache: Path | None = None) -> Path:
    """The installed Node project: this folder's ``package.json`` + lock copied to
    ``<cache>/oracles/faceapi_ssd/`` and ``npm ci`` run there, unless the lock installed last is ours."""
    project = (cache or cache_dir()) / "oracles" / "faceapi_ssd"
    lock = (HERE / "package-lock.json").read_bytes()
    marker = project / "installed-lock.json"
    if marker.is_file() and marker.read_bytes() == lock and (project / "node_modules").is_dir():
        return project
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        sys.exit("make_oracle: node and npm must be on PATH (Debian/Ubuntu: apt install nodejs npm)")
    project.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(HERE / name, project / name)
    print(f"make_oracle: npm ci into {project}", file=sys.stderr)
    subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=project,
                   check=True, timeout=NPM_TIMEOUT_S)
    atomic_write_bytes(marker, lock)
    return project


def read_raw(path: Path) -> dict[str, np.ndarray]:
    """One oracle.js raw file: ``{name: float32 array}`` per :data:`RAW_ARRAYS`."""
    flat = np.fromfile(path, dtype="<f4")
    out, at = {}, 0
    for name, shape in RAW_ARRAYS:
        size = int(np.prod(shape))
        out[name] = flat[at:at + size].reshape(shape)
        at += size
    if at != flat.size:
        raise ValueError(f"{path}: {flat.size} float32 values, expected {at}")
    return out


def iou(a: dict, b: dict) -> float:
    """IoU of two ``{x, y, width, height}`` boxes."""
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    inter = max(w, 0.0) * max(h, 0.0)
    return inter / (a["width"] * a["height"] + b["width"] * b["height"] - inter)


def compare_detections(a: list[dict], b: list[dict]) -> dict:
    """Counts, and over greedy best-IoU pairs: min IoU, max score difference, max box-edge difference (px)."""
    pairs, free = [], list(range(len(b)))
    for da in a:
        if not free:
            break
        j = max(free, key=lambda k: iou(da["box"], b[k]["box"]))
        if iou(da["box"], b[j]["box"]) > 0:
            pairs.append((da, b[j]))
            free.remove(j)
    edges = lambda d: np.array([d["x"], d["y"], d["x"] + d["width"], d["y"] + d["height"]])  # noqa: E731
    return {
        "count": [len(a), len(b)],
        "matched": len(pairs),
        "min_iou": min((iou(p["box"], q["box"]) for p, q in pairs), default=None),
        "max_score_diff": max((abs(p["score"] - q["score"]) for p, q in pairs), default=None),
        "max_edge_diff_px": max((float(np.abs(edges(p["box"]) - edges(q["box"])).max()) for p, q in pairs),
                                default=None),
    }


def compare_raw(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict:
    """Max abs differences over all anchors: encodings, logits per column, decoded boxes, face scores."""
    diff = {name: np.abs(a[name].astype(np.float64) - b[name]) for name, _ in RAW_ARRAYS}
    return {
        "enc_max_abs": float(diff["enc"].max()),
        "logits_max_abs_per_column": [float(v) for v in diff["logits"].max(axis=0)],
        "boxes_max_abs": float(diff["boxes"].max()),
        "scores_max_abs": float(diff["scores"].max()),
    }


def compare_runs(result: dict, raw: Path, photo: str, left: tuple[str, str], right: tuple[str, str]) -> dict:
    """``left`` vs ``right`` (each ``(backend, input)``) on one photo: raw outputs and detections."""
    (lb, li), (rb, ri) = left, right
    out = compare_raw(read_raw(raw / f"{lb}_{li}_{photo}.f32"), read_raw(raw / f"{rb}_{ri}_{photo}.f32"))
    runs = result["photos"][photo]
    out["detections"] = {t: compare_detections(runs[li][lb]["detections"][t], runs[ri][rb]["detections"][t])
                         for t in runs[li][lb]["detections"]}
    return out


def _tf_iou(boxes: np.ndarray, i: int, j: int) -> float:
    """face-api's IOU of decoded boxes ``i`` and ``j`` ([ymin, xmin, ymax, xmax]; 0 when either is empty)."""
    (y0, x0), (y1, x1) = np.minimum(boxes[i, :2], boxes[i, 2:]), np.maximum(boxes[i, :2], boxes[i, 2:])
    (v0, u0), (v1, u1) = np.minimum(boxes[j, :2], boxes[j, 2:]), np.maximum(boxes[j, :2], boxes[j, 2:])
    area_i, area_j = (y1 - y0) * (x1 - x0), (v1 - v0) * (u1 - u0)
    if area_i <= 0 or area_j <= 0:
        return 0.0
    inter = max(min(y1, v1) - max(y0, v0), 0.0) * max(min(x1, u1) - max(x0, u0), 0.0)
    return float(inter / (area_i + area_j - inter))


def nms_survivor_scores(raw: dict[str, np.ndarray], floor: float = 0.01, keep: int = 8) -> list[float]:
    """The face scores of the anchors face-api's NMS (IoU 0.5, greedy by score) keeps above ``floor``,
    best first, the first ``keep``. Greedy NMS never lets a lower score suppress a higher one, so the
    detections at any threshold t >= floor are exactly the survivors above t: the gap between t and the
    nearest survivor says how robust the count at t is."""
    boxes, scores = raw["boxes"].astype(np.float64), raw["scores"].astype(np.float64)
    selected: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] <= floor or len(selected) == keep:
            break
        if all(_tf_iou(boxes, int(i), j) <= 0.5 for j in selected):
            selected.append(int(i))
    return [float(scores[i]) for i in selected]


def threshold_margins(survivors: list[float], thresholds: list[float]) -> dict:
    """Per threshold: the lowest survivor above it and the highest at or below it."""
    return {str(t): {"lowest_above": min((v for v in survivors if v > t), default=None),
                     "highest_below": max((v for v in survivors if v <= t), default=None)} for t in thresholds}


def column2_summary(raw: Path, photos: list[str]) -> dict:
    """What the logits' third column (face-api ignores it) looks like on the cpu backend, our RGB."""
    logits = np.concatenate([read_raw(raw / f"cpu_rgb_{p}.f32")["logits"] for p in photos])
    c1, c2 = logits[:, 1], logits[:, 2]
    return {
        "over": f"{len(photos)} photos x {N_ANCHORS} anchors, cpu backend, our RGB",
        "column_ranges": [[float(logits[:, k].min()), float(logits[:, k].max())] for k in range(3)],
        "anchors_with_column2_above_column1": int((c2 > c1).sum()),
        "anchors_with_sigmoid_column2_above_0.1": int((c2 > np.log(0.1 / 0.9)).sum()),
        "max_sigmoid_column2": float(1 / (1 + np.exp(-c2.max()))),
        "face_candidates_above_0.1": int((c1 > np.log(0.1 / 0.9)).sum()),
        "face_candidates_above_0.1_with_column2_above_column1": int(((c1 > np.log(0.1 / 0.9)) & (c2 > c1)).sum()),
    }


def synthetic_rgb() -> np.ndarray:
    """The synthetic 512x512 input oracle.js builds (its formula is in detections.json)."""
    y, x, c = np.meshgrid(np.arange(512), np.arange(512), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 101 + (x * y) % 31) % 256).astype(np.uint8)


def our_rgb(package: Path) -> dict[str, np.ndarray]:
    """Each demo photo decoded by our reader: ``{photo: (H, W, 3) uint8}``."""
    return {photo: read_rgb(package / "demo" / f"{photo}.jpg") for photo in PHOTOS}


def run_oracle(package: Path, project: Path, work: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Decode the photos with our reader, run oracle.js on them; its results.json and our RGB arrays."""
    inputs, ours = [], our_rgb(package)
    for photo, rgb in ours.items():
        (work / f"{photo}.rgb").write_bytes(rgb.tobytes())
        inputs.append({"name": photo, "jpeg": str(package / "demo" / f"{photo}.jpg"),
                       "rgb": str(work / f"{photo}.rgb"), "width": rgb.shape[1], "height": rgb.shape[0]})
    (work / "inputs.json").write_text(json.dumps(inputs))
    subprocess.run(["node", str(HERE / "oracle.js"), "--project", str(project), "--model", str(package / "model"),
                    "--inputs", str(work / "inputs.json"), "--out", str(work / "out")], check=True,
                   timeout=NODE_TIMEOUT_S)
    return json.loads((work / "out" / "results.json").read_text()), ours


def decoded_jpegjs(work: Path, photo: str, width: int, height: int) -> np.ndarray | None:
    """jpeg-js's RGB of a photo, when oracle.js saved it (not saved: None)."""
    path = work / "out" / f"jpegjs_{photo}.rgb"
    return np.fromfile(path, dtype=np.uint8).reshape(height, width, 3) if path.is_file() else None


def survivors(result: dict, raw: Path, photo: str, inputs: tuple[str, ...]) -> dict:
    """Per input, the cpu backend's NMS survivor scores above 0.01 and their margins to the thresholds;
    checked against face-api's own detections (the same count at each threshold)."""
    out = {}
    for src in inputs:
        scores = nms_survivor_scores(read_raw(raw / f"cpu_{src}_{photo}.f32"))
        for t, found in result["photos"][photo][src]["cpu"]["detections"].items():
            if sum(v > float(t) for v in scores) != len(found) and len(scores) < 8:
                raise RuntimeError(f"{photo}/{src}: NMS survivors {scores} disagree with face-api's {len(found)} "
                                   f"detections at {t}")
        out[src] = {"scores": scores, "margins": threshold_margins(scores, result["thresholds"])}
    return out


def build(result: dict, ours: dict[str, np.ndarray], package: Path, work: Path) -> tuple[dict, dict[str, bytes]]:
    """detections.json's content and the raw files to keep (name -> bytes)."""
    raw = work / "out" / "raw"
    photos = {}
    for photo in PHOTOS:
        runs = result["photos"][photo]
        jpeg = package / "demo" / f"{photo}.jpg"
        theirs = decoded_jpegjs(work, photo, runs["jpegjs"]["width"], runs["jpegjs"]["height"])
        diff = np.abs(ours[photo].astype(np.int16) - theirs) if theirs is not None else None
        if hashlib.sha256(ours[photo].tobytes()).hexdigest() != runs["rgb"]["rgb_sha256"]:
            raise RuntimeError(f"{photo}: oracle.js read other RGB bytes than make_oracle.py wrote")
        photos[photo] = {
            "file": f"demo/{photo}.jpg",
            "jpeg_sha256": hashlib.sha256(jpeg.read_bytes()).hexdigest(),
            "width": runs["rgb"]["width"],
            "height": runs["rgb"]["height"],
            "reshaped": runs["rgb"]["cpu"]["reshaped"],
            "rgb_sha256": runs["rgb"]["rgb_sha256"],
            "jpegjs_rgb_sha256": runs["jpegjs"]["rgb_sha256"],
            "ours_vs_jpegjs_pixels": None if diff is None else {
                "mean_abs": float(diff.mean()), "max_abs": int(diff.max()),
                "fraction_differing": float((diff != 0).any(axis=2).mean())},
            "detections": {b: {src: runs[src][b]["detections"] for src in ("rgb", "jpegjs")}
                           for b in result["backends"]},
            "noise_floor_cpu_vs_wasm": {src: compare_runs(result, raw, photo, ("cpu", src), ("wasm", src))
                                        for src in ("rgb", "jpegjs")},
            "decoder_effect_ours_vs_jpegjs_cpu": compare_runs(result, raw, photo, ("cpu", "rgb"), ("cpu", "jpegjs")),
            "nms_survivors_cpu": survivors(result, raw, photo, ("rgb", "jpegjs")),
        }
    synth = result["photos"]["synthetic"]["rgb"]
    if hashlib.sha256(synthetic_rgb().tobytes()).hexdigest() != synth["rgb_sha256"]:
        raise RuntimeError("synthetic input: oracle.js's bytes differ from synthetic_rgb()'s")
    synthetic = {
        "formula": result["synthetic_formula"], "width": 512, "height": 512, "rgb_sha256": synth["rgb_sha256"],
        "detections": {b: synth[b]["detections"] for b in result["backends"]},
        "noise_floor_cpu_vs_wasm": compare_runs(result, raw, "synthetic", ("cpu", "rgb"), ("wasm", "rgb")),
        "nms_survivors_cpu": survivors(result, raw, "synthetic", ("rgb",))["rgb"],
    }
    kept, raw_files = {}, {}
    for (backend, photo), names in KEEP.items():
        arrays = read_raw(raw / f"{backend}_rgb_{photo}.f32")
        name, at, layout = f"raw_{backend}_{photo}.f32", 0, []
        for array in names:
            layout.append({"array": array, "shape": list(arrays[array].shape), "offset_bytes": at})
            at += arrays[array].nbytes
        kept[name] = b"".join(arrays[a].astype("<f4").tobytes() for a in names)
        raw_files[name] = {"backend": backend, "input": "rgb" if photo != "synthetic" else "synthetic",
                           "photo": photo, "bytes": at, "arrays": layout}
    doc = {
        "what": "face-api's SSD-MobileNetV1 face detector run in its own runtime (Node, @tensorflow/tfjs cpu "
                "and wasm backends) on the six demo photos and a synthetic input: the oracle for mnet_vision's "
                "PyTorch port (issue 15). See README.md.",
        "nms_survivors": "face scores of the anchors face-api's NMS keeps above 0.01 (cpu backend, first 8; "
                         "recomputed here from its decoded boxes): the detections at a threshold t are the "
                         "survivors above t, so the nearest survivor to t says how robust the count at t is",
        "regenerate": ".venv/bin/python tests/data/oracles/faceapi_ssd/make_oracle.py",
        "versions": {**result["versions"], "backends": result["backends"]},
        "call": {"api": "faceapi.detectAllFaces(int32 tensor3d [h, w, 3], new faceapi.SsdMobilenetv1Options("
                        "{minConfidence, maxResults}))",
                 "thresholds": result["thresholds"], "max_results": result["max_results"],
                 "nms_iou_threshold": result["iou_threshold"], "input_size": 512},
        "inputs": {"rgb": "the bytes mnet_vision.images.read_rgb decoded from the JPEG (ours)",
                   "jpegjs": "the JPEG decoded in Node by jpeg-js 0.4.4 (useTArray, RGBA -> RGB)"},
        "detection_fields": "score (face-api's sigmoid face score, float32 widened to double) and box {x, y, "
                            "width, height} in input pixels, as FaceDetection gives them",
        "raw_arrays": {"enc": "box encodings [5118, 4] (ty, tx, th, tw), Concat of the 6 box predictors",
                       "logits": "class logits [5118, 3]; face-api uses sigmoid(column 1) only",
                       "boxes": "face-api's decoded boxes [5118, 4] (ymin, xmin, ymax, xmax) in fractions of the "
                                "padded square, before clipping",
                       "scores": "face-api's face scores [5118] = sigmoid(logits[:, 1])",
                       "dtype": "float32 little-endian, arrays back to back in the order listed"},
        "raw_files": raw_files,
        "photos": photos,
        "synthetic": synthetic,
        "logits_column_2": column2_summary(raw, PHOTOS),
    }
    return doc, kept


def _g(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def summary_tables(doc: dict) -> str:
    """The README's tables, as Markdown: per input the detection counts (cpu backend), the noise floor
    (cpu vs wasm, our RGB) and the decoder effect (our RGB vs jpeg-js's, cpu backend)."""
    thresholds = ("0.5", "0.1")
    inputs = {photo: (p["detections"]["cpu"]["rgb"], p["detections"]["cpu"]["jpegjs"],
                      p["noise_floor_cpu_vs_wasm"]["rgb"]) for photo, p in doc["photos"].items()}
    synth = doc["synthetic"]
    inputs["synthetic"] = (synth["detections"]["cpu"], None, synth["noise_floor_cpu_vs_wasm"])
    counts, floor, decoder = [], [], []
    for name, (ours, jpegjs, nf) in inputs.items():
        counts.append((name, *(len(ours[t]) for t in thresholds),
                       *(len(jpegjs[t]) if jpegjs else "-" for t in thresholds)))
        d01 = nf["detections"]["0.1"]
        floor.append((name, _g(nf["enc_max_abs"]), " / ".join(_g(v) for v in nf["logits_max_abs_per_column"]),
                      _g(nf["boxes_max_abs"]), _g(nf["scores_max_abs"]), "/".join(map(str, d01["count"])),
                      _g(None if d01["min_iou"] is None else 1 - d01["min_iou"]), _g(d01["max_score_diff"])))
    for photo, p in doc["photos"].items():
        c, px = p["decoder_effect_ours_vs_jpegjs_cpu"], p["ours_vs_jpegjs_pixels"]
        d05, d01 = c["detections"]["0.5"], c["detections"]["0.1"]
        decoder.append((photo, f"{px['mean_abs']:.3f}", px["max_abs"], f"{px['fraction_differing']:.3f}",
                        _g(c["enc_max_abs"]), _g(c["scores_max_abs"]), "/".join(map(str, d05["count"])),
                        "/".join(map(str, d01["count"])), "-" if d01["min_iou"] is None else f"{d01['min_iou']:.4f}",
                        _g(d01["max_score_diff"])))
    return "\n\n".join([
        markdown_table(counts, ["input", "ours @0.5", "ours @0.1", "jpeg-js @0.5", "jpeg-js @0.1"]),
        markdown_table(floor, ["input", "enc", "logits (col 0 / 1 / 2)", "decoded boxes", "face scores",
                               "dets @0.1 cpu/wasm", "1 - min IoU @0.1", "max score diff @0.1"]),
        markdown_table(decoder, ["photo", "pixel mean abs", "pixel max abs", "pixels differing", "enc", "face scores",
                                 "dets @0.5 ours/jpeg-js", "dets @0.1", "min IoU @0.1", "max score diff @0.1"]),
    ])


def time_faceapi(package: Path, project: Path, backends: str = "wasm,cpu") -> dict:
    """oracle.js's timing mode on the six demo photos: per backend (comma-separated), per photo, median ms of
    jpeg-js decode + detectAllFaces at 0.5 and of detectAllFaces alone (5 runs after 1 warm-up)."""
    jpegs = [str(package / "demo" / f"{photo}.jpg") for photo in PHOTOS]
    done = subprocess.run(["node", str(HERE / "oracle.js"), "--time", "--backends", backends, "--project", str(project),
                           "--model", str(package / "model"), *jpegs], check=True, capture_output=True, text=True,
                          timeout=NODE_TIMEOUT_S)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", type=Path, help="face-api's unpacked package/ folder (default: fetch_package)")
    parser.add_argument("--keep-work", type=Path, help="also keep oracle.js's full output (all raw files) here")
    parser.add_argument("--from-work", type=Path, help="rebuild the outputs from a --keep-work folder, no Node run")
    parser.add_argument("--time", action="store_true", help="only time face-api on the photos; JSON on stdout")
    parser.add_argument("--backends", default="wasm,cpu",
                        help="with --time: tfjs backends, comma-separated (the pure-JS cpu one takes ~18 s a photo)")
    args = parser.parse_args(argv)
    package = args.package or fetch_package("faceapi")
    if args.time:
        print(json.dumps(time_faceapi(package, node_project(), args.backends), indent=1))
        return
    if args.from_work:
        result = json.loads((args.from_work / "out" / "results.json").read_text())
        doc, kept = build(result, our_rgb(package), package, args.from_work)
    else:
        with tempfile.TemporaryDirectory(prefix="faceapi_oracle-") as tmp:
            work = Path(tmp)
            result, ours = run_oracle(package, node_project(), work)
            if args.keep_work:
                shutil.copytree(work, args.keep_work, dirs_exist_ok=True)
            doc, kept = build(result, ours, package, work)
    for name, data in kept.items():
        atomic_write_bytes(HERE / name, data)
    atomic_write_text(HERE / "detections.json", json.dumps(doc, indent=1) + "\n")
    print(summary_tables(doc))
    print(f"make_oracle: wrote detections.json and {', '.join(kept)} in {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
