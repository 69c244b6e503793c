"""Running a trained detector on image files: a JSON of boxes and PNGs with the boxes drawn.

``tools/detect.py`` is a thin wrapper over :func:`detect_files`.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.ops import box_convert

from mnet_vision.deploy.runtime import OnnxModel, is_onnx_path, load_onnx
from mnet_vision.images import MAX_PIXELS, image_files, readable_chunks
from mnet_vision.inference.load import LoadedModel, load_model
from mnet_vision.model import DetectorModel
from mnet_vision.outputs import drawing_paths, prepare_output_dir
from mnet_vision.textfiles import write_json
from mnet_vision.viz.detection import save_detections_picture


def load_detector(ckpt: str | Path | LoadedModel, fast: bool = True, device: str = "cpu") -> LoadedModel:
    """:func:`~mnet_vision.inference.load.load_model` of a detection checkpoint (or a model already
    loaded, e.g. :func:`mnet_vision.pretrained.models.load_pretrained`'s); its ``meta`` holds the
    class names and category ids (index = model label, 0 = background)."""
    loaded = ckpt if isinstance(ckpt, LoadedModel) else load_model(ckpt, fast, device)
    if not isinstance(loaded.model, DetectorModel):
        raise ValueError(f"{loaded.source or ckpt} holds a {type(loaded.model.head).__name__} model, not a detector")
    return loaded


def _onnx_detector(path: str | Path, threads: int | None = None) -> OnnxModel:
    """An exported detector (:func:`mnet_vision.deploy.runtime.load_onnx`) with the class names
    and category ids detections are reported with."""
    model = load_onnx(path, threads, task="DetectionTask")
    if not model.meta.class_names or not model.meta.meta.get("category_ids"):
        raise ValueError(f"{path}: its mnet_vision.meta metadata names no class_names / category_ids "
                         "(a foreign model, or not exported by mnet_vision: tools/export.py)")
    return model


class Detector:
    """A detector ready to run on RGB ``uint8`` arrays: a training checkpoint's model (or a model
    already loaded: ``fast`` and ``device`` are then its own), or an exported ``.onnx`` detector run
    by ONNX Runtime (``threads`` intra-op threads; ``fast`` and ``device`` do not apply). What
    :func:`detect_files`, the service (``tools/serve.py``) and batch prediction (``tools/predict.py``)
    run; ``names`` / ``category_ids`` per model label (0 the background)."""

    def __init__(self, ckpt: str | Path | LoadedModel, fast: bool = True, device: str = "cpu",
                 threads: int | None = None):
        self.source = str(getattr(ckpt, "source", "") or ckpt)
        self.onnx: OnnxModel | None = None
        self.device = device
        if is_onnx_path(ckpt):
            self.onnx = _onnx_detector(ckpt, threads)
            self.names, self.category_ids = self.onnx.meta.class_names, self.onnx.meta.meta["category_ids"]
        else:
            self.loaded = load_detector(ckpt, fast, device)
            self.device = self.loaded.device
            self.names, self.category_ids = self.loaded.meta.class_names, self.loaded.meta.category_ids

    def raw(self, arrays: Sequence[np.ndarray]) -> list[dict[str, torch.Tensor]]:
        """Every detection of each ``(H, W, 3)`` uint8 image, unthresholded, in pixels on the CPU:
        ``{"boxes" (K, 4) xyxy, "labels" (K,), "scores" (K,)}``."""
        if not arrays:
            return []
        if self.onnx is not None:
            return [{k: torch.from_numpy(v) for k, v in found.items()} for found in self.onnx.detect(list(arrays))]
        images = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(self.device).float() / 255.0
                  for a in arrays]
        with torch.inference_mode():
            return [{k: v.cpu() for k, v in found.items()} for found in self.loaded.model(images)]

    def detect(self, arrays: Sequence[np.ndarray], score_thresh: float = 0.3) -> list[list[dict[str, Any]]]:
        """Each image's detections with ``score >= score_thresh``, best first, in the shape of
        ``detections.json``: ``{"label", "category_id", "score", "box_xyxy" (pixels), "bbox" (COCO xywh)}``."""
        if not 0.0 <= score_thresh <= 1.0:
            raise ValueError(f"score threshold must be in [0, 1], got {score_thresh}")
        return [self.entries(found, score_thresh) for found in self.raw(arrays)]

    def entries(self, found: dict[str, torch.Tensor], score_thresh: float) -> list[dict[str, Any]]:
        keep = found["scores"] >= score_thresh
        boxes, labels, scores = found["boxes"][keep], found["labels"][keep], found["scores"][keep]
        order = scores.argsort(descending=True, stable=True)
        boxes, labels, scores = boxes[order], labels[order], scores[order]
        return [{"label": self.names[int(c)], "category_id": int(self.category_ids[int(c)]),
                 "score": round(float(s), 4), "box_xyxy": [round(float(v), 2) for v in b],
                 "bbox": [round(float(v), 2) for v in xywh]}
                for b, xywh, c, s in zip(boxes, box_convert(boxes.double(), "xyxy", "xywh"), labels, scores)]


def detect_files(ckpt: str | Path | LoadedModel, source: str | Path, out_dir: str | Path, score_thresh: float = 0.3,
                 batch_size: int = 8, draw: bool = True, device: str = "cpu",
                 max_pixels: int | None = MAX_PIXELS, fast: bool = True, threads: int | None = None) -> dict[str, Any]:
    """Detect objects in an image file or a folder of images with a training checkpoint (or a
    loaded model: ``fast`` and ``device`` are then its own), or with an exported ``.onnx`` detector
    run by ONNX Runtime (:mod:`mnet_vision.deploy.runtime`, ``threads`` intra-op threads; ``fast``
    and ``device`` do not apply): the same detections within 1e-3 px and 1e-4 in score.

    Writes ``out_dir/detections.json``: one entry per image, ``{"file", "width", "height",
    "detections": [{"label", "category_id", "score", "box_xyxy" (pixels), "bbox" (COCO xywh)}]}``,
    detections with ``score >= score_thresh`` only, best first; and (``draw``) ``out_dir/<name>.png``
    per image (``photo.jpg`` -> ``photo.jpg.png``) with the boxes, class names and scores drawn.
    Unreadable images are skipped, logged and listed under ``skipped`` in the returned summary (and
    the JSON's entries leave them out), as are images over ``max_pixels`` (``None``: no limit). An
    ``out_dir`` that is not writable, or is (or lies inside)
    the input folder, is refused before any work. ``fast``: the BN-folded channels_last model
    (:func:`~mnet_vision.inference.load.load_model`); its boxes equal the plain model's within 1e-4.
    """
    if not 0.0 <= score_thresh <= 1.0:
        raise ValueError(f"score threshold must be in [0, 1], got {score_thresh}")
    files = image_files(source)
    out_dir = prepare_output_dir(out_dir, files)
    drawings = dict(zip(files, drawing_paths(files, out_dir)))
    detector = Detector(ckpt, fast, device, threads)
    entries, skipped = [], []
    for chunk in readable_chunks(files, batch_size, skipped, "detecting", max_pixels):
        for (path, array), found in zip(chunk, detector.raw([array for _, array in chunk])):
            entries.append({"file": str(path), "width": int(array.shape[1]), "height": int(array.shape[0]),
                            "detections": detector.entries(found, score_thresh)})
            if draw:
                keep = found["scores"] >= score_thresh
                image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
                save_detections_picture(image, found["boxes"][keep], found["labels"][keep], found["scores"][keep],
                                        detector.names, drawings[path])
    json_path = write_json(out_dir / "detections.json", entries)
    return {"images": len(entries), "detections": sum(len(e["detections"]) for e in entries),
            "skipped": skipped, "json": str(json_path), "out_dir": str(out_dir)}
