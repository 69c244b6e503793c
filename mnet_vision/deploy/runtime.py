"""Running an exported ``.onnx`` model with ONNX Runtime: numpy in, numpy out, no torch.

    >>> from mnet_vision.deploy.runtime import load_onnx
    >>> from mnet_vision.images import read_rgb
    >>> model = load_onnx("ssd.onnx")                  # its metadata: model.meta (ExportedModel)
    >>> model.detect([read_rgb("photo.jpg")])[0]       # {"boxes", "scores", "labels"} as the checkpoint's

:func:`load_onnx` opens the file, reads its metadata (:func:`mnet_vision.deploy.metadata.read_exported`)
and starts one ONNX Runtime session (CPU, ``threads`` intra-op threads, one inter-op thread).
:meth:`OnnxModel.run` runs the graph on an already preprocessed ``(N, 3, S, S)`` float32 batch;
the task helpers take RGB ``uint8`` ``(H, W, 3)`` images, preprocess them as the PyTorch eval path
does (:mod:`mnet_vision.deploy.preprocess`) and post-process as our PyTorch models do
(:mod:`mnet_vision.deploy.postprocess`, the geolocation head's hierarchical probabilities).
face-api's face nets (tasks ``FaceLandmarks``, ``FaceDescriptor``, ``FaceExpression``, ``FaceAgeGender``) run
through :meth:`OnnxModel.run` on crops the face pipeline prepares (:mod:`mnet_vision.faces.pipeline`).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from mnet_vision.deploy.metadata import DETECTOR_KEY, GEO_KEY, PREPROCESS_KEY, ExportedModel, read_exported
from mnet_vision.deploy.postprocess import ssd_detections, to_original
from mnet_vision.deploy.preprocess import check_image, model_input, normalisation_table, smallest_side_resize

#: ONNX Runtime intra-op threads when ``threads`` is None (the project's shared rule for sessions).
DEFAULT_THREADS = 2
PROVIDERS = ("CPUExecutionProvider",)
#: The crops of the geolocation test protocol (TIB's FiveCrop); 1 is the central crop.
CROPS = (1, 5)


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """``threads`` intra-op threads (``None``: :data:`DEFAULT_THREADS`), one inter-op thread."""
    threads = DEFAULT_THREADS if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


class OnnxModel:
    """An exported model in an ONNX Runtime session (:func:`load_onnx`).

    ``meta``: its :class:`~mnet_vision.deploy.metadata.ExportedModel`; ``session``: the
    ``onnxruntime.InferenceSession``; ``input_size``: the static ``S``, ``None`` for a foreign model
    whose graph leaves it dynamic."""

    def __init__(self, path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None,
                 task: str | None = None):
        self.path = Path(path)
        self.meta: ExportedModel = read_exported(self.path, task)
        self.session = ort.InferenceSession(str(self.path), sess_options=session_options(threads),
                                            providers=list(providers or PROVIDERS))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.input_size = self.meta.input_size

    @property
    def task(self) -> str:
        return self.meta.task

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, task={self.task}, outputs={self.output_names})"

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs by name for a preprocessed ``(N, 3, S, S)`` float32 batch; a batch of
        another shape is an error naming the file and the shape it expects."""
        images = np.asarray(images)
        size = self.input_size
        expected = f"(N, 3, {size}, {size})" if size else "(N, 3, H, W)"
        if images.ndim != 4 or images.shape[1] != 3 or (size and images.shape[2:] != (size, size)):
            raise ValueError(f"{self.path}: input images of shape {images.shape}; this model takes {expected} float32 "
                             "(preprocessed as its metadata says: OnnxModel.preprocess)")
        if images.dtype != np.float32:
            raise ValueError(f"{self.path}: input images are {images.dtype}; this model takes float32")
        outputs = self.session.run(None, {self.input_name: np.ascontiguousarray(images)})
        return dict(zip(self.output_names, outputs))

    def _settings(self, key: str, entry: dict[str, Any] | None) -> dict[str, Any]:
        if not entry:
            raise ValueError(f"{self.path} has no {key!r} metadata entry (a foreign model, or not exported by "
                             "mnet_vision: tools/export.py): run it with OnnxModel.run on images you preprocess")
        return entry

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, 3, S, S)`` float32 input of RGB ``uint8`` ``(H, W, 3)`` images (the metadata's
        ``mnet_vision.preprocess``). face-api's face nets (kind ``faceapi``) are refused: their input is a
        face crop padded to a square and resized by TF's legacy bilinear, which needs torch
        (``mnet_vision.pretrained.faceapi_input.faceapi_net_input``; then :meth:`run`)."""
        settings = self._settings(PREPROCESS_KEY, self.meta.preprocess)
        if settings.get("kind") == "faceapi":
            raise ValueError(f"{self.path} is face-api's {self.task} net: preprocess its face crops with "
                             "mnet_vision.pretrained.faceapi_input.faceapi_net_input (or run it through "
                             "mnet_vision.faces.pipeline.FacePipeline) and call OnnxModel.run")
        return model_input(images, settings)

    def _output(self, outputs: dict[str, np.ndarray], name: str) -> np.ndarray:
        if name not in outputs:
            raise ValueError(f"{self.path} has no output {name!r} (it has {list(outputs)}): a {self.task} model")
        return outputs[name]

    def classify(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, C)`` logits (classification, attributes) of RGB uint8 images."""
        return self._output(self.run(self.preprocess(images)), "logits")

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """``(N, D)`` float32 embeddings of RGB uint8 images (as the PyTorch model returns them)."""
        return self._output(self.run(self.preprocess(images)), "embedding").astype(np.float32, copy=False)

    def detect(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Detections of RGB uint8 images, as our PyTorch detectors return them: per image
        ``{"boxes": (K, 4) float32 xyxy in that image's pixels, "scores": (K,) float32, "labels": (K,)
        int64 model labels (1..C; 0 the background)}``, best first, every detection above the
        model's ``score_thresh`` (callers filter by their own threshold). A file exported with
        ``nms_in_graph`` is post-processed the same way, from its raw outputs (its in-graph
        ``detection_*`` outputs, which have no top-k pre-selection, are in :meth:`run`'s dict)."""
        settings = self._settings(DETECTOR_KEY, self.meta.detector)
        preprocess = self._settings(PREPROCESS_KEY, self.meta.preprocess)
        if not images:
            return []
        outputs = self.run(self.preprocess(images))
        deltas, logits = self._output(outputs, "bbox_regression"), self._output(outputs, "cls_logits")
        anchors, size = self.meta.anchors(), int(preprocess["size"])
        if deltas.shape[1] != len(anchors):
            raise ValueError(f"{self.path}: the graph gives {deltas.shape[1]} box codes per image, its metadata "
                             f"{len(anchors)} anchors")
        detections = []
        for image, codes, scores in zip(images, deltas, logits):
            found = ssd_detections(codes, scores, anchors, size, settings)
            found["boxes"] = to_original(found["boxes"], size, image.shape[0], image.shape[1],
                                         str(preprocess.get("resize", "squash")))
            detections.append(found)
        return detections

    def _crops(self, images: Sequence[np.ndarray], crops: int) -> np.ndarray:
        """``(N * 5, 3, S, S)``: :class:`mnet_vision.data.transforms.FiveCropEval`'s crops of each
        image (top-left, top-right, bottom-left, bottom-right, centre of the resized image)."""
        settings = self._settings(PREPROCESS_KEY, self.meta.preprocess)
        size, fraction = int(settings["size"]), float(settings.get("crop_fraction", 0.875))
        table = normalisation_table(settings["mean"], settings["std"])
        out = np.empty((len(images) * crops, 3, size, size), dtype=np.float32)
        for n, image in enumerate(images):
            resized = smallest_side_resize(check_image(image, n), round(size / fraction))
            h, w = resized.shape[:2]
            corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
            for k, (y, x) in enumerate(corners):
                crop = resized[y:y + size, x:x + size]
                for c in range(3):
                    out[n * crops + k, c] = table[c][crop[:, :, c]]
        return out

    def geo_probabilities(self, images: Sequence[np.ndarray], crops: int = 1) -> np.ndarray:
        """``(N, C)`` probabilities of the finest cells (the hierarchical product of the partitions,
        as :meth:`mnet_vision.heads.geocells.GeoCellHead.log_probabilities`); ``crops`` 5: each
        cell's highest log-probability over the five crops per partition first (TIB's protocol)."""
        geo = self._settings(GEO_KEY, self.meta.geo)
        if crops not in CROPS:
            raise ValueError(f"crops must be 1 (central crop) or 5 (FiveCrop), got {crops}")
        batch = self.preprocess(images) if crops == 1 else self._crops(images, crops)
        outputs = self.run(batch)
        partitions = len(geo["partitions"])
        logits = [self._output(outputs, f"logits_{p}") for p in range(partitions)]
        scores = [_log_softmax(part) for part in logits]
        if crops > 1:  # mnet_vision.heads.geocells.crop_log_probabilities
            scores = [part.reshape(-1, crops, part.shape[-1]).max(axis=1) for part in scores]
        # mnet_vision.heads.geocells.hierarchical_log_probabilities
        if partitions == 1:
            return np.exp(_log_softmax(scores[0]))
        ancestors = np.asarray(geo["ancestors"], dtype=np.int64)
        combined = sum(_log_softmax(part)[:, ancestors[:, p]] for p, part in enumerate(scores))
        return np.exp(_log_softmax(combined))

    def geolocate(self, images: Sequence[np.ndarray], top_k: int = 5,
                  crops: int = 1) -> tuple[np.ndarray, list[list[dict[str, Any]]]]:
        """Probabilities ``(N, C)`` of RGB uint8 images and each image's top-k finest cells, best
        first: ``{"class", "token", "probability", "lat", "lon"}`` with the cell's mean photo
        location, as :meth:`mnet_vision.inference.geolocate.Geolocator.locate`."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        finest = self._settings(GEO_KEY, self.meta.geo)["partitions"][-1]
        probs = self.geo_probabilities(images, crops)
        k = min(top_k, probs.shape[1])
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        cells = [[{"class": int(c), "token": finest["tokens"][c], "probability": float(row[c]),
                   "lat": float(finest["cell_points"][c][0]), "lon": float(finest["cell_points"][c][1])}
                  for c in top] for row, top in zip(probs, order)]
        return probs, cells


def load_onnx(path: str | Path, threads: int | None = None, providers: Sequence[str] | None = None,
              task: str | None = None) -> OnnxModel:
    """The exported model ``path`` in an ONNX Runtime session (:class:`OnnxModel`).

    ``threads``: intra-op threads (``None``: :data:`DEFAULT_THREADS`); ``providers``: ONNX Runtime
    execution providers (``None``: CPU); ``task``: the task class name the caller expects
    (``DetectionTask``): a file of another task is an error naming both, and a foreign ONNX model
    (no metadata of ours) runs as that task through :meth:`OnnxModel.run`. A file that is not ONNX,
    or a foreign one without ``task``, is an error naming the file
    (:mod:`mnet_vision.deploy.metadata`)."""
    return OnnxModel(path, threads, providers, task)


def is_onnx_path(model: Any) -> bool:
    """Whether a tool's model argument names an exported ONNX file (by its ``.onnx`` suffix)."""
    return isinstance(model, (str, Path)) and Path(model).suffix.lower() == ".onnx"
