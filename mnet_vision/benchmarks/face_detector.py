"""CPU speed of the pretrained face detector (``faceapi_ssd``, 512x512) on the six real demo photos,
beside face-api itself in Node on the same photos.

Each timed call is what a user's call costs: the JPEG decoded (our reader: Pillow), turned into a
tensor, letterboxed and resized inside the model, the network, TF's post-processing; batch 1. Our
two paths (the model as imported, and BatchNorm folded + channels_last as the tools serve it) are
interleaved photo by photo with the order rotating each round. face-api runs afterwards in its own
process (Node cannot share ours), through the oracle's script
(``tests/data/oracles/faceapi_ssd/make_oracle.py --time``: jpeg-js decode + ``detectAllFaces``, the
median of 5 runs per photo after a warm-up, for the pure-JS ``cpu`` and the ``wasm`` backend); that
needs the source tree, ``node`` and ``npm``, and says why when it cannot run.
"""
from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnet_vision.benchmarks.timing import number_or_dash, rotating_rounds
from mnet_vision.images import read_rgb
from mnet_vision.markdown import markdown_table
from mnet_vision.pretrained.fetch import fetch_package
from mnet_vision.pretrained.models import load_pretrained

ORACLE = Path(__file__).resolve().parents[2] / "tests" / "data" / "oracles" / "faceapi_ssd" / "make_oracle.py"
EAGER = "mnet_vision faceapi_ssd (as imported)"
FOLDED = "mnet_vision faceapi_ssd (BN folded, channels_last)"


def compare_face_detectors(repeats: int = 5, warmup: int = 1, faceapi: bool = True,
                           faceapi_backends: Sequence[str] = ("wasm",)) -> list[dict]:
    """Rows ``{"model", "runtime", "ms_per_photo", "photos_per_s", "note"}``: the median over photos
    and rounds of one photo's decode + detect, for our two paths and (``faceapi``) face-api's
    ``faceapi_backends`` (``cpu``, TF.js's pure-JS backend, takes ~18 s a photo: ~20 min for its 12 runs)."""
    photos = sorted((fetch_package("faceapi") / "demo").glob("sample*.jpg"))
    models = {EAGER: load_pretrained("faceapi_ssd", fast=False), FOLDED: load_pretrained("faceapi_ssd", fast=True)}

    def detect(name: str, path: Path) -> None:
        rgb = read_rgb(path)
        image = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float() / 255
        with torch.inference_mode():
            models[name].model([image])

    times: dict[str, list[float]] = {name: [] for name in models}
    for name, measured in rotating_rounds(list(models), warmup, repeats):
        for path in photos:
            start = time.perf_counter()
            detect(name, path)
            if measured:
                times[name].append(time.perf_counter() - start)
    runtime = f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads"
    rows = [_row(name, runtime, statistics.median(t) * 1000, "") for name, t in times.items()]
    if faceapi:
        rows += faceapi_rows(faceapi_backends)
    return rows


def faceapi_rows(backends: Sequence[str] = ("wasm",)) -> list[dict]:
    """face-api's own time per photo (jpeg-js decode + detectAllFaces at 0.5), one row per tfjs
    backend, or one row saying why it could not be measured."""
    missing = [what for what, ok in (("the source tree's oracle script", ORACLE.is_file()),
                                     ("node", shutil.which("node")), ("npm", shutil.which("npm"))) if not ok]
    if missing:
        return [_row("face-api 1.7.15 (Node)", "–", math.nan, f"not measured: no {', '.join(missing)}")]
    done = subprocess.run([sys.executable, str(ORACLE), "--time", "--backends", ",".join(backends)],
                          capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return [_row("face-api 1.7.15 (Node)", "–", math.nan, f"not measured: {done.stderr.strip()[-300:]}")]
    timing = json.loads(done.stdout)
    node = timing.get("versions", {}).get("node", "")
    rows = []
    for backend, run in timing["backends"].items():
        ms = statistics.median(float(photo["decode_and_detect_ms"]) for photo in run["photos"])
        variant = ", ".join(f"{k} {v}" for k, v in run.items() if k != "photos" and not isinstance(v, (dict, list)))
        rows.append(_row(f"face-api 1.7.15, tfjs {backend} backend", f"Node {node}", ms, variant))
    return rows


def _row(model: str, runtime: str, ms: float, note: str) -> dict:
    """A table row; ``ms`` NaN when not measured."""
    return {"model": model, "runtime": runtime, "ms_per_photo": ms, "photos_per_s": 1000.0 / ms, "note": note}


def report(rows: list[dict], args: Mapping[str, Any]) -> str:
    """A header line and the table, with each row's ratio to our folded path."""
    ours = next((r["ms_per_photo"] for r in rows if r["model"] == FOLDED), math.nan)
    table = [[r["model"], r["runtime"], number_or_dash(r["ms_per_photo"]), number_or_dash(r["photos_per_s"], "{:.2f}"),
              number_or_dash(r["ms_per_photo"] / ours if ours else math.nan, "{:.2f}x"), r["note"]] for r in rows]
    return ("pretrained face detector at 512x512 on face-api's six demo photos (1920 px wide), batch 1, decode "
            f"included; ours: median of {args['repeats']} interleaved rounds after {args['warmup']}\n"
            + markdown_table(table, ["model", "runtime", "ms / photo", "photos / s", "time vs ours folded", "note"]))
