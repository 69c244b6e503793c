"""The metadata an exported ``.onnx`` file carries (ONNX ``metadata_props``, every value a JSON
string) and its reader: what serving the file needs besides the graph, with no torch.

Keys (:data:`KEYS`; written by :func:`mnet_vision.inference.export.export_onnx`):

- ``mnet_vision.format``: ``"1"`` (:data:`FORMAT`); a file without it is a foreign model.
- ``mnet_vision.meta``: the source's :class:`mnet_vision.inference.load.ModelMeta` as a dict
  (``task``, ``outputs``, ``class_names``, ``category_ids``, ``input_size``, ``embedding_dim``,
  ``transform``).
- ``mnet_vision.preprocess``: how images become the graph's ``images`` input, ``(N, 3, S, S)``
  float32: ``{"kind": "classification"|"detection", "size", "crop_fraction", "mean", "std",
  "resize": "squash"|"letterbox", "method": "bilinear"|"tf_legacy_bilinear"}``; face-api's face nets:
  ``{"kind": "faceapi", "size", "resize": "pad_to_square_then_tf_legacy_bilinear", "pixel_scale"}``
  (``mnet_vision.pretrained.faceapi_input.faceapi_net_input``, RGB in [0, 1]).
- ``mnet_vision.detector`` (detectors): ``{"kind": "ssd", "score_converter", "score_thresh",
  "nms_thresh", "detections_per_img", "topk_candidates", "class_agnostic_nms", "box_coder_weights",
  "bbox_xform_clip", "anchors": (A, 4) xyxy input pixels, "nms_in_graph"}``.
- ``mnet_vision.geo`` (geolocation): ``{"partitions": [{"cell_ids", "tokens", "cell_points",
  "cell_counts"}, ...], "ancestors": (C_fine, P)}``, coarsest partition first.
- ``mnet_vision.source``: ``{"checkpoint", "exporter", "opset", "torch", "max_abs_diff"}``, and
  ``"weights_sha256"`` when the source's weights have a known digest (a pretrained model's shards).
- ``mnet_vision.quantization`` (INT8 files): ``{"mode", "per_channel", "reduce_range",
  "activation_type", "weight_type", "calibration_images", "gate"}``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

FORMAT = "1"
FORMAT_KEY = "mnet_vision.format"
META_KEY = "mnet_vision.meta"
PREPROCESS_KEY = "mnet_vision.preprocess"
DETECTOR_KEY = "mnet_vision.detector"
GEO_KEY = "mnet_vision.geo"
SOURCE_KEY = "mnet_vision.source"
QUANTIZATION_KEY = "mnet_vision.quantization"
KEYS = (FORMAT_KEY, META_KEY, PREPROCESS_KEY, DETECTOR_KEY, GEO_KEY, SOURCE_KEY, QUANTIZATION_KEY)
#: Keys every file of ours has (the others depend on the task or on quantization).
REQUIRED_KEYS = (FORMAT_KEY, META_KEY, PREPROCESS_KEY, SOURCE_KEY)

#: The graph's one input and each task's outputs (geolocation: ``logits_0`` .. ``logits_{P-1}``).
INPUT_NAME = "images"
TASK_OUTPUTS = {"ClassificationTask": ("logits",), "AttributeTask": ("logits",), "EmbeddingTask": ("embedding",),
                "DetectionTask": ("bbox_regression", "cls_logits"), "GeolocationTask": (),
                # face-api's face nets (mnet_vision.pretrained.faceapi_nets): (N, 68, 2) relative landmarks,
                # (N, 128) descriptors, (N, 7) expression probabilities, (N,) age in years and (N, 2) genders
                "FaceLandmarks": ("landmarks",), "FaceDescriptor": ("embedding",),
                "FaceExpression": ("probabilities",), "FaceAgeGender": ("age", "gender")}
#: The extra outputs of a detector exported with ``nms_in_graph``.
NMS_OUTPUTS = ("detection_boxes", "detection_scores", "detection_labels", "num_detections")
#: torchvision's SSD box coder (dx, dy, dw, dh weights) and its clip of dw/dh before exp.
BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


class ExportedModelError(ValueError):
    """An ``.onnx`` file this project cannot serve as asked; the message names the file."""


class NotOnnxError(ExportedModelError):
    """The file is not an ONNX model."""


class ForeignModelError(ExportedModelError):
    """An ONNX model without our metadata (not exported by mnet_vision)."""


class WrongTaskError(ExportedModelError):
    """A model of another task than the caller expects."""


@dataclass(frozen=True)
class ExportedModel:
    """The parsed metadata of an exported file (see the module docstring for each dict's keys).

    ``foreign``: the file has no metadata of ours and ``meta`` holds only the task the caller gave;
    ``input_shape``: the graph input's dims (``"batch"`` for the dynamic one, ints for static ones);
    ``outputs``: the graph's output names in order.
    """

    path: Path
    meta: dict[str, Any]
    preprocess: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    detector: dict[str, Any] | None = None
    geo: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    format: str | None = FORMAT
    input_name: str = INPUT_NAME
    input_shape: tuple[int | str | None, ...] = ()
    outputs: tuple[str, ...] = ()
    foreign: bool = False

    @property
    def task(self) -> str:
        return str(self.meta["task"])

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.get("class_names")

    @property
    def input_size(self) -> int | None:
        """The static ``S`` of the ``(N, 3, S, S)`` input (from the graph when the metadata lacks it)."""
        size = self.preprocess.get("size") or self.meta.get("input_size")
        if size is None and len(self.input_shape) == 4 and isinstance(self.input_shape[-1], int):
            size = self.input_shape[-1]
        return None if size is None else int(size)

    def anchors(self) -> np.ndarray:
        """``(A, 4)`` float32 xyxy anchors in input pixels (detectors)."""
        if not self.detector or "anchors" not in self.detector:
            raise ExportedModelError(f"{self.path}: {DETECTOR_KEY}.anchors is missing (a {self.task} model, "
                                     "or not exported by mnet_vision)")
        anchors = np.asarray(self.detector["anchors"], dtype=np.float32)
        if anchors.ndim != 2 or anchors.shape[1] != 4:
            raise ExportedModelError(f"{self.path}: {DETECTOR_KEY}.anchors has shape {anchors.shape}, expected (A, 4)")
        return anchors


def encode_props(values: Mapping[str, Any]) -> dict[str, str]:
    """``{key: JSON string}`` of ``values`` (numpy arrays and scalars as lists and numbers);
    a key outside :data:`KEYS` is an error."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown metadata keys {unknown}; known: {list(KEYS)}")
    return {key: json.dumps(_plain(value), separators=(",", ":")) for key, value in values.items()}


def set_metadata(model: onnx.ModelProto, values: Mapping[str, Any]) -> onnx.ModelProto:
    """Set ``values`` (:func:`encode_props`) in ``model.metadata_props``, replacing entries of the
    same keys and keeping the others; returns ``model``."""
    encoded = encode_props(values)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in encoded]
    del model.metadata_props[:]
    for key, value in [*kept, *encoded.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def read_exported(path: str | Path, task: str | None = None) -> ExportedModel:
    """The metadata of the ``.onnx`` file ``path`` (weights are not read).

    ``task``: the task class name the caller expects (``DetectionTask``); a file of ours with
    another task is a :class:`WrongTaskError` naming both, and a foreign file (no
    ``mnet_vision.format``) is accepted as that task (``foreign=True``, empty metadata dicts).
    Without ``task`` a foreign file is a :class:`ForeignModelError` naming the missing key.
    A file that is not ONNX is a :class:`NotOnnxError` naming it.
    """
    path = Path(path)
    model = _load_graph(path)
    props = {p.key: p.value for p in model.metadata_props}
    graph_input = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    shape = tuple(_dims(graph_input[0])) if graph_input else ()
    common = {"path": path, "input_name": graph_input[0].name if graph_input else INPUT_NAME, "input_shape": shape,
              "outputs": tuple(o.name for o in model.graph.output)}
    if FORMAT_KEY not in props:
        if task is None:
            raise ForeignModelError(f"{path} has no {FORMAT_KEY!r} metadata entry: it was not exported by mnet_vision "
                                    "(tools/export.py); give the task to run a foreign model")
        return ExportedModel(meta={"task": task}, format=None, foreign=True, **common)
    if props[FORMAT_KEY] != json.dumps(FORMAT) and props[FORMAT_KEY] != FORMAT:
        raise ExportedModelError(f"{path}: {FORMAT_KEY} is {props[FORMAT_KEY]}, this version reads format {FORMAT}")
    parsed = {key: _parse(path, key, props) for key in KEYS[1:] if key in props}
    missing = [key for key in REQUIRED_KEYS[1:] if key not in parsed]
    if missing:
        raise ExportedModelError(f"{path}: metadata entries {missing} are missing (a damaged export)")
    for key, value in parsed.items():
        if not isinstance(value, dict):
            raise ExportedModelError(f"{path}: {key} is a {type(value).__name__}, expected a JSON object")
    meta = parsed[META_KEY]
    if not isinstance(meta.get("task"), str):
        raise ExportedModelError(f"{path}: {META_KEY} has no task name")
    if task is not None and meta["task"] != task:
        raise WrongTaskError(f"{path} is a {meta['task']} model, expected a {task} model")
    return ExportedModel(meta=meta, preprocess=parsed[PREPROCESS_KEY], source=parsed[SOURCE_KEY],
                         detector=parsed.get(DETECTOR_KEY), geo=parsed.get(GEO_KEY),
                         quantization=parsed.get(QUANTIZATION_KEY), format=FORMAT, **common)


def _load_graph(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends: all mean "not ONNX"
        raise NotOnnxError(f"{path} is not an ONNX model ({type(error).__name__}: {error})") from error
    # protobuf parses many byte strings (an empty file, some text) as an empty message: a model has a graph
    if not model.ir_version or not model.HasField("graph") or not model.graph.node:
        raise NotOnnxError(f"{path} is not an ONNX model (no graph, or no IR version)")
    return model


def _dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    dims = value.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims]


def _parse(path: Path, key: str, props: Mapping[str, str]) -> Any:
    try:
        return json.loads(props[key])
    except json.JSONDecodeError as error:
        raise ExportedModelError(f"{path}: metadata entry {key} is not JSON ({error})") from error


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
