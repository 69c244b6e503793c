"""Exporting a model to ONNX: the BN-folded network of any task with a dynamic batch, its metadata
(:mod:`mnet_vision.deploy.metadata`) in the file, checked on export against PyTorch.

    >>> from mnet_vision.inference.export import export_onnx
    >>> export_onnx("outputs/shapes/<time>/checkpoints/last.ckpt", "shapes.onnx").max_abs_diff
    3.8e-06

The graph's input is ``images``: ``(N, 3, S, S)`` float32 already preprocessed as the PyTorch eval
path feeds the network (``mnet_vision.preprocess`` in the metadata says how). Outputs by task:
``logits`` (N, C) for classification and attributes, ``embedding`` (N, D) (L2-normalised by the
model) for embeddings, ``logits_0`` .. ``logits_{P-1}`` (N, C_p) for geolocation (coarsest
partition first), and for an SSD detector the network alone: ``bbox_regression`` (N, A, 4)
torchvision (dx, dy, dw, dh) deltas and ``cls_logits`` (N, A, C + 1) background first; its anchors,
box coder and post-processing settings are metadata (``mnet_vision.detector``). With
``nms_in_graph`` an SSD graph also decodes the boxes and runs ONNX ``NonMaxSuppression``
(:data:`NMS_GRAPH_OUTPUTS`).

Faster-RCNN is refused (:class:`ExportUnsupportedError`, the message says where each exporter
stops; see :func:`export_onnx`).
"""
from __future__ import annotations

import hashlib
import inspect
import io
import json
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper
from torch import nn
from torchvision.ops import batched_nms

from mnet_vision.atomic import atomic_write_bytes
from mnet_vision.data.synthetic.drawing import SHAPES
from mnet_vision.data.synthetic.shapes import draw_shape_image
from mnet_vision.data.transforms import apply_seeded, classification_eval_transform
from mnet_vision.deploy import metadata as md
from mnet_vision.heads.faster_rcnn import FasterRCNNHead
from mnet_vision.heads.geocells import GeoCellHead
from mnet_vision.heads.ssd import SSD300Head
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.inference.load import LoadedModel, load_model

log = logging.getLogger(__name__)

EXPORTERS = ("dynamo", "torchscript")
#: What :func:`export_onnx`'s ``nms_in_graph`` adds to an SSD graph: ``K`` detections of the whole
#: batch, grouped by image in batch order (``num_detections[i]`` rows for image ``i``), within an
#: image by class, then by descending score (ONNX Runtime's ``NonMaxSuppression`` order).
NMS_GRAPH_OUTPUTS = {
    "detection_boxes": "(K, 4) float32 xyxy in input pixels (decoded; clipped to the input for softmax models)",
    "detection_scores": "(K,) float32 (softmax or sigmoid, as the model's score_converter)",
    "detection_labels": "(K,) int64 model labels (1 .. C; 0 is the background)",
    "num_detections": "(N,) int64 detections per image",
}
# classification_eval_transform's defaults, for metadata whose transform leaves a key out.
_CLASSIFICATION_DEFAULTS = {name: p.default for name, p in
                            inspect.signature(classification_eval_transform).parameters.items()
                            if p.default is not inspect.Parameter.empty}
_CHECK_IMAGES = 3  # the default check batch: 3 images, so a batch dim that was frozen to 1 or 2 shows


class ExportError(RuntimeError):
    """An export that was refused; nothing was written."""


class ExportCheckError(ExportError):
    """The exported graph's outputs differ from PyTorch's by more than ``check_atol``."""


class ExportUnsupportedError(ExportError):
    """A model this exporter cannot put into one ONNX graph (the message says where it stops)."""


@dataclass(frozen=True)
class ExportResult:
    """``path``: the written ``.onnx``; ``max_abs_diff``: the largest |ORT - PyTorch| over every output
    on the check batch; ``exporter``: ``dynamo`` or ``torchscript``; ``outputs``: the graph's output
    names in order; ``size_bytes``: the file's size."""

    path: Path
    max_abs_diff: float
    exporter: str
    outputs: tuple[str, ...]
    size_bytes: int = 0


class TensorNetwork(nn.Module):
    """A classification-like model as a graph of tensors: ``images`` -> its output, or a tuple of
    per-partition logits for a geolocation model (a list does not name ONNX outputs), or for a model
    returning a dict (face-api's age/gender: ``{"age", "gender"}``) its values in the order of ``keys``."""

    def __init__(self, model: nn.Module, keys: Sequence[str] = ()):
        super().__init__()
        self.model = model
        self.keys = tuple(keys)

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        out = self.model(images)
        if isinstance(out, Mapping):
            return tuple(out[key] for key in self.keys)
        return tuple(out) if isinstance(out, (list, tuple)) else out


class SSDNetwork(nn.Module):
    """An SSD detector's network on transformed ``(N, 3, S, S)`` images: backbone taps and extra
    layers (``TapFeatures``), then the box predictor: ``(bbox_regression (N, A, 4), cls_logits
    (N, A, C + 1))``. With ``anchors`` ``(A, 4)`` xyxy pixels it also returns the decoded boxes
    ``(N, A, 4)`` and the object classes' scores ``(N, C, A)`` (``(N, 1, A)`` and the best labels
    ``(N, A)`` when class-agnostic), what ONNX ``NonMaxSuppression`` reads."""

    def __init__(self, head: SSD300Head, anchors: torch.Tensor | None = None):
        super().__init__()
        detector = head.detector
        self.features, self.predictor = detector.backbone, detector.head
        self.body = detector.backbone.body  # TapFeatures holds it unregistered: register its weights here
        self.score_converter = detector.score_converter
        self.class_agnostic = detector.class_agnostic_nms
        self.weights = tuple(float(w) for w in detector.box_coder.weights)
        self.clip = float(detector.box_coder.bbox_xform_clip)
        self.size = int(detector.transform.size)
        self.decode = anchors is not None
        if anchors is not None:
            self.register_buffer("anchors", anchors.float(), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.predictor(list(self.features(images).values()))
        deltas, logits = out["bbox_regression"], out["cls_logits"]
        if not self.decode:
            return deltas, logits
        boxes = self._decode(deltas)
        if self.score_converter == "sigmoid":
            scores = torch.sigmoid(logits[..., 1:])
        else:
            scores = torch.softmax(logits, dim=-1)[..., 1:]
            boxes = boxes.clamp(0, self.size)  # torchvision clips before NMS; TF's sigmoid path after
        if self.class_agnostic:
            best, labels = scores.max(-1)
            return deltas, logits, boxes, best.unsqueeze(1), labels + 1
        return deltas, logits, boxes, scores.transpose(1, 2)

    def _decode(self, deltas: torch.Tensor) -> torch.Tensor:
        """torchvision's ``BoxCoder.decode_single`` over a batch: ``(N, A, 4)`` deltas -> xyxy pixels."""
        wx, wy, ww, wh = self.weights
        widths = self.anchors[:, 2] - self.anchors[:, 0]
        heights = self.anchors[:, 3] - self.anchors[:, 1]
        ctr_x = self.anchors[:, 0] + 0.5 * widths
        ctr_y = self.anchors[:, 1] + 0.5 * heights
        dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
        dw = (deltas[..., 2] / ww).clamp(max=self.clip)
        dh = (deltas[..., 3] / wh).clamp(max=self.clip)
        cx, cy = dx * widths + ctr_x, dy * heights + ctr_y
        half_w, half_h = 0.5 * torch.exp(dw) * widths, 0.5 * torch.exp(dh) * heights
        return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def export_onnx(model: str | Path | LoadedModel, out: str | Path, images: torch.Tensor | None = None,
                nms_in_graph: bool = False, opset: int = 18, dynamo: bool = True,
                check_atol: float = 1e-4) -> ExportResult:
    """Export ``model`` (a checkpoint path or a :class:`~mnet_vision.inference.load.LoadedModel`,
    e.g. :func:`mnet_vision.pretrained.models.load_pretrained`'s) to the ONNX file ``out``.

    The BN-folded network is exported with a dynamic batch (dim ``batch``) and opset ``opset``,
    by the dynamo exporter (``dynamo``), falling back to the TorchScript exporter where dynamo
    fails (or with the TorchScript one alone when ``dynamo`` is false); the one used is in the
    metadata. ``images``: a preprocessed ``(N, 3, S, S)`` check batch; None: three synthetic shape
    images through the model's own eval transform. The file is checked before it is written:
    ``onnx.checker``, then every output of ONNX Runtime against PyTorch on ``images``; a largest
    difference above ``check_atol`` raises :class:`ExportCheckError` and writes nothing.

    ``nms_in_graph`` (SSD only): also decode the boxes and run ONNX ``NonMaxSuppression`` with the
    model's ``score_thresh``, ``nms_thresh`` and at most ``detections_per_img`` boxes per class and
    image (:data:`NMS_GRAPH_OUTPUTS`); unlike the PyTorch post-processing it has no
    ``topk_candidates`` pre-selection and no cap per image across classes.

    Faster-RCNN raises :class:`ExportUnsupportedError`: its RPN's proposal selection (top-k per
    level, NMS, then a data-dependent number of proposals per image) feeds RoIAlign and the box head.
    torch.export (dynamo) fails there; the TorchScript trace fixes the batch at 1 and its ONNX
    Runtime detections did not equal PyTorch's (tried on torch 2.14 / torchvision 0.29).
    """
    if check_atol < 0 or not math.isfinite(check_atol):
        raise ValueError(f"check_atol must be a finite number >= 0, got {check_atol}")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, fast=False)
    source = loaded.source or str(model)
    if source.startswith("pretrained:"):
        source = source.split(" ", 1)[0]  # the name, not this machine's cache path
    head = loaded.model.head
    if isinstance(head, FasterRCNNHead):
        raise ExportUnsupportedError(
            f"{source}: Faster-RCNN is not exported: the dynamo exporter stops at torch.export on the region "
            "proposal network (a data-dependent number of proposals per image feeds RoIAlign and the box head), "
            "and the TorchScript exporter's trace fixes the batch at 1 (a loop over images) and did not match "
            "PyTorch's detections under ONNX Runtime; export the backbone (a classification checkpoint) or run "
            "the PyTorch detector (tools/detect.py)")
    if nms_in_graph and not isinstance(head, SSD300Head):
        raise ValueError(f"{source}: nms_in_graph applies to SSD detectors, this is a {loaded.meta.task} model")
    folded = prepare_for_inference(loaded.model, channels_last=False).cpu().requires_grad_(False)
    network, names, extra = _network(folded, loaded, nms_in_graph, source)
    if images is None:
        images = default_images(loaded)
    images = _checked_images(images, _input_size(loaded), source)
    with torch.no_grad():
        expected = [t.detach().float().numpy() for t in _as_tuple(network(images))]
    graph_names = names + extra["internal"]
    proto, exporter = _export(network, images, graph_names, opset, dynamo, source)
    if nms_in_graph:
        _append_nms(proto, extra["nms"], extra["internal"])
    onnx.checker.check_model(proto, full_check=True)
    session = _session(proto.SerializeToString())
    output_names = [o.name for o in session.get_outputs()]
    got = session.run(None, {md.INPUT_NAME: images.numpy()})
    diffs = [float(np.abs(g.astype(np.float64) - e).max()) if e.size else 0.0
             for g, e in zip(got[:len(names)], expected)]
    diff = max(diffs)
    if nms_in_graph:
        _check_nms(dict(zip(output_names, got)), expected, extra["nms"], source)
    per_output = ", ".join(f"{n} {d:.3g}" for n, d in zip(names, diffs))
    print(f"export {source}: {exporter} exporter, opset {opset}, ORT vs PyTorch on {len(images)} images: "
          f"max abs diff {diff:.3g} ({per_output})")
    if not diff <= check_atol:  # NaN fails too
        raise ExportCheckError(f"{source}: ONNX Runtime's outputs differ from PyTorch's by up to {diff:.3g} "
                               f"({per_output}), above check_atol={check_atol:g}: {out} was not written")
    md.set_metadata(proto, {**export_metadata(loaded, folded, extra, nms_in_graph),
                            md.SOURCE_KEY: {"checkpoint": source, "exporter": exporter, "opset": opset,
                                            "torch": torch.__version__, "max_abs_diff": diff,
                                            **_weights_record(loaded)}})
    data = proto.SerializeToString()
    path = atomic_write_bytes(out, data)
    return ExportResult(Path(path), diff, exporter, tuple(output_names), len(data))


def weights_sha256(loaded: LoadedModel) -> str | None:
    """sha256 of a model's weights: the shards of a pretrained TF.js manifest (in its order), or the
    checkpoint file; None when the model came from neither (built in memory)."""
    pretrained = loaded.cfg.get("pretrained") if loaded.cfg is not None else None
    digest = hashlib.sha256()
    if pretrained is not None and pretrained.get("weights"):
        manifest = Path(str(pretrained.weights))
        for group in json.loads(manifest.read_text()):
            for shard in group["paths"]:
                digest.update((manifest.parent / shard).read_bytes())
        return digest.hexdigest()
    if loaded.source and Path(loaded.source).is_file():
        digest.update(Path(loaded.source).read_bytes())
        return digest.hexdigest()
    return None


def _weights_record(loaded: LoadedModel) -> dict[str, Any]:
    """``{"weights_sha256"}`` of a pretrained model's weights (what the face pipeline records of a
    describer, so its export can name the same weights); empty for a checkpoint, whose path is the record."""
    pretrained = loaded.cfg.get("pretrained") if loaded.cfg is not None else None
    if pretrained is None or not pretrained.get("weights"):
        return {}
    return {"weights_sha256": weights_sha256(loaded), "pretrained": str(pretrained.get("name", ""))}


def export_metadata(loaded: LoadedModel, folded: nn.Module, extra: dict[str, Any],
                    nms_in_graph: bool = False) -> dict[str, Any]:
    """The metadata entries of ``loaded``'s export but its source: format, meta, preprocess and
    the detector's or geolocation head's (:mod:`mnet_vision.deploy.metadata`)."""
    values: dict[str, Any] = {md.FORMAT_KEY: md.FORMAT, md.META_KEY: loaded.meta.as_dict(),
                              md.PREPROCESS_KEY: preprocess_settings(loaded)}
    head = folded.head
    if isinstance(head, SSD300Head):
        detector = head.detector
        values[md.DETECTOR_KEY] = {
            "kind": "ssd", "score_converter": detector.score_converter, "score_thresh": float(detector.score_thresh),
            "nms_thresh": float(detector.nms_thresh), "detections_per_img": int(detector.detections_per_img),
            "topk_candidates": int(detector.topk_candidates), "class_agnostic_nms": bool(detector.class_agnostic_nms),
            "box_coder_weights": [float(w) for w in detector.box_coder.weights],
            "bbox_xform_clip": float(detector.box_coder.bbox_xform_clip),
            "anchors": _float32_list(extra["anchors"]), "nms_in_graph": bool(nms_in_graph)}
    if isinstance(head, GeoCellHead):
        values[md.GEO_KEY] = geo_metadata(head)
    return values


def preprocess_settings(loaded: LoadedModel) -> dict[str, Any]:
    """How images become the graph's input (``mnet_vision.preprocess``). Classification-like: the
    DataModule's eval transform (shorter side to ``round(size / crop_fraction)`` with cv2
    INTER_LINEAR, centre crop, ``(x / 255 - mean) / std``). Detection: the model's transform
    (``order``: torchvision's squash normalises then resizes; letterbox and TF's resize first)."""
    head = loaded.model.head
    if isinstance(head, SSD300Head):
        transform = head.detector.transform
        resize = "letterbox" if transform.letterbox else "squash"
        order = "normalize_then_resize" if resize == "squash" and transform.method == "bilinear" \
            else "resize_then_normalize"
        return {"kind": "detection", "size": int(transform.size), "mean": [float(m) for m in transform.image_mean],
                "std": [float(s) for s in transform.image_std], "resize": resize, "method": transform.method,
                "order": order, "pixel_scale": 1 / 255}
    if loaded.meta.transform.get("kind") == "faceapi":  # face-api's nets: padToSquare + TF legacy bilinear
        return {"kind": "faceapi", "size": _input_size(loaded), "resize": "pad_to_square_then_tf_legacy_bilinear",
                "pixel_scale": 1 / 255}
    settings = {**_CLASSIFICATION_DEFAULTS, **{k: v for k, v in loaded.meta.transform.items() if k != "kind"}}
    return {"kind": "classification", "size": int(settings.get("input_size", loaded.meta.input_size)),
            "crop_fraction": float(settings["crop_fraction"]), "mean": [float(m) for m in settings["mean"]],
            "std": [float(s) for s in settings["std"]], "resize": "shorter_side_then_center_crop",
            "method": "cv2_inter_linear", "pixel_scale": 1 / 255}


def geo_metadata(head: GeoCellHead) -> dict[str, Any]:
    """``mnet_vision.geo``: per partition (coarsest first) the S2 cell ids (uint64 as JSON ints) and
    tokens, mean photo points ``[lat, lon]`` and training photo counts, and the ``(C_fine, P)``
    ancestor classes that combine the partitions
    (:func:`~mnet_vision.heads.geocells.hierarchical_log_probabilities`)."""
    partitions = []
    for p in range(len(head.num_cells)):
        partition = head.partition(p, "export")
        partitions.append({"cell_ids": [int(i) for i in partition.cell_ids], "tokens": list(partition.tokens),
                           "cell_points": head.cell_points(p).cpu().tolist(),
                           "cell_counts": head.cell_counts(p).cpu().tolist()})
    return {"partitions": partitions, "ancestors": head.ancestors.cpu().tolist()}


def default_images(loaded: LoadedModel, count: int = _CHECK_IMAGES, seed: int = 0) -> torch.Tensor:
    """A check batch ``(count, 3, S, S)``: synthetic shape images (twice the input size, not square
    for a detector, so resizing and letterboxing are exercised) through the model's own eval
    transform (the DataModule's for classification-like tasks, the detector's transform)."""
    size = _input_size(loaded)
    rng = np.random.default_rng(seed)
    arrays = [draw_shape_image(SHAPES[i % len(SHAPES)], rng, 2 * size) for i in range(count)]
    head = loaded.model.head
    if isinstance(head, SSD300Head):
        tensors = [torch.from_numpy(a[: 3 * size // 2].copy()).permute(2, 0, 1).float() / 255 for a in arrays]
        with torch.no_grad():
            return head.detector.transform.eval()(tensors)[0].tensors
    if loaded.meta.transform.get("kind") == "faceapi":  # its input: RGB in [0, 1], already square at its size
        return torch.stack([torch.from_numpy(draw_shape_image(SHAPES[i % len(SHAPES)], rng, size).copy())
                            .permute(2, 0, 1).float() / 255 for i in range(count)])
    transform = loaded.meta.eval_transform()
    return torch.stack([apply_seeded(transform, 0, image=a)["image"] for a in arrays])


def _network(folded: nn.Module, loaded: LoadedModel, nms_in_graph: bool,
             source: str) -> tuple[nn.Module, list[str], dict[str, Any]]:
    """The module to export, its public output names and what the metadata and NMS need."""
    head = folded.head
    extra: dict[str, Any] = {"internal": []}
    if isinstance(head, SSD300Head):
        anchors = head.anchors() * head.detector.transform.size  # relative -> input pixels
        extra["anchors"] = anchors
        detector = head.detector
        extra["nms"] = {"score_thresh": float(detector.score_thresh), "nms_thresh": float(detector.nms_thresh),
                        "max_per_class": int(detector.detections_per_img),
                        "class_agnostic": bool(detector.class_agnostic_nms)}
        if nms_in_graph:
            extra["internal"] = ["nms_boxes", "nms_scores"] + (["nms_labels"] if detector.class_agnostic_nms else [])
        return SSDNetwork(head, anchors if nms_in_graph else None).eval(), list(md.TASK_OUTPUTS["DetectionTask"]), extra
    task = loaded.meta.task
    if isinstance(head, GeoCellHead):
        if not head.has_partitions:
            raise ExportError(f"{source} holds no cells (saved before training started): a geolocation export needs "
                              "the partitions it answers with")
        return TensorNetwork(folded).eval(), [f"logits_{p}" for p in range(len(head.num_cells))], extra
    if task not in md.TASK_OUTPUTS or not md.TASK_OUTPUTS[task]:
        raise ExportUnsupportedError(f"{source}: no ONNX export for a {task} model ({type(head).__name__})")
    return TensorNetwork(folded, md.TASK_OUTPUTS[task]).eval(), list(md.TASK_OUTPUTS[task]), extra


def _input_size(loaded: LoadedModel) -> int:
    head = loaded.model.head
    if isinstance(head, SSD300Head):
        return int(head.detector.transform.size)
    size = loaded.meta.transform.get("input_size", loaded.meta.input_size)
    if size is None:
        raise ExportError(f"{loaded.source}: its metadata names no input size")
    return int(size)


def _checked_images(images: Any, size: int, source: str) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != (3, size, size):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"{source}: the check images must be a preprocessed (N, 3, {size}, {size}) tensor, "
                         f"got {shape}")
    if not len(images):
        raise ValueError(f"{source}: the check batch is empty")
    return images.detach().float().cpu().contiguous()


def _as_tuple(out: Any) -> tuple[torch.Tensor, ...]:
    return tuple(out) if isinstance(out, (list, tuple)) else (out,)


def _export(network: nn.Module, images: torch.Tensor, names: Sequence[str], opset: int, dynamo: bool,
            source: str) -> tuple[onnx.ModelProto, str]:
    """The exported graph and the exporter that made it: dynamo first (when asked), TorchScript if it fails."""
    failures = []
    for exporter in (EXPORTERS if dynamo else EXPORTERS[1:]):
        try:
            return _run_exporter(network, images, names, opset, exporter), exporter
        except Exception as error:  # any exporter failure: try the next one, report all if none works
            log.warning("%s: the %s exporter failed (%s: %s)", source, exporter, type(error).__name__, error)
            failures.append(f"{exporter}: {type(error).__name__}: {str(error)[:500]}")
    raise ExportError(f"{source}: no ONNX exporter could export the model: " + " | ".join(failures))


def _run_exporter(network: nn.Module, images: torch.Tensor, names: Sequence[str], opset: int,
                  exporter: str) -> onnx.ModelProto:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer notes, not ours to act on
        if exporter == "dynamo":
            program = torch.onnx.export(network, (images,), dynamo=True, input_names=[md.INPUT_NAME],
                                        output_names=list(names), opset_version=opset, verbose=False,
                                        dynamic_shapes={"images": {0: torch.export.Dim("batch")}})
            proto = program.model_proto
            for node in proto.graph.node:  # the exporter's per-node source notes: ~10 % of a small file
                del node.metadata_props[:]
        else:
            buffer = io.BytesIO()
            torch.onnx.export(network, (images,), buffer, dynamo=False, input_names=[md.INPUT_NAME],
                              output_names=list(names), opset_version=opset,
                              dynamic_axes={md.INPUT_NAME: {0: "batch"}})
            proto = onnx.load_from_string(buffer.getvalue())
    _name_batch_dim(proto)
    return proto


def _name_batch_dim(proto: onnx.ModelProto) -> None:
    """Call the input's dynamic first dim ``batch`` (dynamo names it after its symbol)."""
    for value in proto.graph.input:
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            old = dim.dim_param
            for v in [*proto.graph.input, *proto.graph.output]:
                for d in v.type.tensor_type.shape.dim:
                    if d.dim_param == old:
                        d.dim_param = "batch"


def _append_nms(proto: onnx.ModelProto, nms: dict[str, Any], internal: Sequence[str]) -> None:
    """Append ONNX ``NonMaxSuppression`` and the gathers of :data:`NMS_GRAPH_OUTPUTS` to an SSD graph
    whose extra outputs are ``internal`` (decoded boxes, scores (N, C, A) [, labels (N, A)]), and
    replace those outputs by the detections."""
    graph = proto.graph
    boxes, scores = internal[0], internal[1]
    constants = [helper.make_tensor("nms_max_per_class", TensorProto.INT64, [1], [nms["max_per_class"]]),
                 helper.make_tensor("nms_iou", TensorProto.FLOAT, [1], [nms["nms_thresh"]]),
                 helper.make_tensor("nms_score", TensorProto.FLOAT, [1], [nms["score_thresh"]]),
                 helper.make_tensor("nms_col0", TensorProto.INT64, [], [0]),
                 helper.make_tensor("nms_col1", TensorProto.INT64, [], [1]),
                 helper.make_tensor("nms_cols02", TensorProto.INT64, [2], [0, 2]),
                 helper.make_tensor("nms_one", TensorProto.INT64, [], [1]),
                 helper.make_tensor("nms_zero", TensorProto.INT64, [], [0]),
                 helper.make_tensor("nms_axis1", TensorProto.INT64, [1], [1]),
                 helper.make_tensor("nms_axis0", TensorProto.INT64, [1], [0])]
    graph.initializer.extend(constants)
    labels_node = (helper.make_node("GatherND", [internal[2], "nms_batch_anchor"], ["detection_labels"])
                   if nms["class_agnostic"]
                   else helper.make_node("Add", ["nms_class", "nms_one"], ["detection_labels"]))
    graph.node.extend([
        helper.make_node("NonMaxSuppression", [boxes, scores, "nms_max_per_class", "nms_iou", "nms_score"],
                         ["nms_selected"], center_point_box=0),  # (K, 3): batch, class, anchor
        helper.make_node("Gather", ["nms_selected", "nms_col0"], ["nms_batch"], axis=1),
        helper.make_node("Gather", ["nms_selected", "nms_col1"], ["nms_class"], axis=1),
        helper.make_node("Gather", ["nms_selected", "nms_cols02"], ["nms_batch_anchor"], axis=1),
        helper.make_node("GatherND", [boxes, "nms_batch_anchor"], ["detection_boxes"]),
        helper.make_node("GatherND", [scores, "nms_selected"], ["detection_scores"]),
        labels_node,
        # num_detections[i] = #(nms_batch == i): compare (K, 1) with (1, N) and sum over K
        helper.make_node("Shape", [boxes], ["nms_boxes_shape"], end=1),
        helper.make_node("Squeeze", ["nms_boxes_shape", "nms_axis0"], ["nms_n"]),
        helper.make_node("Range", ["nms_zero", "nms_n", "nms_one"], ["nms_images"]),
        helper.make_node("Unsqueeze", ["nms_batch", "nms_axis1"], ["nms_batch_column"]),
        helper.make_node("Unsqueeze", ["nms_images", "nms_axis0"], ["nms_images_row"]),
        helper.make_node("Equal", ["nms_batch_column", "nms_images_row"], ["nms_hits"]),
        helper.make_node("Cast", ["nms_hits"], ["nms_hits_int"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["nms_hits_int", "nms_axis0"], ["num_detections"], keepdims=0),
    ])
    kept = [o for o in graph.output if o.name not in set(internal)]
    del graph.output[:]
    graph.output.extend(kept)
    graph.output.extend([helper.make_tensor_value_info("detection_boxes", TensorProto.FLOAT, ["detections", 4]),
                         helper.make_tensor_value_info("detection_scores", TensorProto.FLOAT, ["detections"]),
                         helper.make_tensor_value_info("detection_labels", TensorProto.INT64, ["detections"]),
                         helper.make_tensor_value_info("num_detections", TensorProto.INT64, ["batch"])])


def _check_nms(got: dict[str, np.ndarray], expected: list[np.ndarray], nms: dict[str, Any], source: str) -> None:
    """The in-graph detections against torchvision's ``batched_nms`` on PyTorch's decoded boxes and
    scores, per image: the same number, then boxes and scores in the same order within 1e-4."""
    boxes, scores = torch.from_numpy(expected[2]), torch.from_numpy(expected[3])
    labels_all = torch.from_numpy(expected[4]) if nms["class_agnostic"] else None
    start = 0
    for i, count in enumerate(got["num_detections"].tolist()):
        rows = slice(start, start + count)
        start += count
        keep_b, keep_s, keep_l = [], [], []
        for c in range(scores.shape[1]):
            s = scores[i, c]
            idx = torch.nonzero(s > nms["score_thresh"]).squeeze(1)
            kept = idx[batched_nms(boxes[i, idx], s[idx], torch.zeros_like(idx), nms["nms_thresh"])]
            kept = kept[: nms["max_per_class"]]
            keep_b.append(boxes[i, kept])
            keep_s.append(s[kept])
            keep_l.append(labels_all[i, kept] if labels_all is not None else torch.full_like(kept, c + 1))
        want = np.concatenate([torch.cat(keep_b).numpy(), torch.cat(keep_s).numpy()[:, None]], axis=1)
        have = np.concatenate([got["detection_boxes"][rows], got["detection_scores"][rows, None]], axis=1)
        if len(want) != count or not _same_detections(have, got["detection_labels"][rows], want,
                                                      torch.cat(keep_l).numpy()):
            raise ExportCheckError(f"{source}: the in-graph NMS kept {count} detections in image {i}, torchvision's "
                                   f"batched_nms {len(want)} (or other boxes, scores or labels): the file was not "
                                   "written")


def _same_detections(have: np.ndarray, have_labels: np.ndarray, want: np.ndarray, want_labels: np.ndarray,
                     atol: float = 1e-3) -> bool:
    """Whether two sets of ``(K, 5)`` (box, score) rows are the same per label, in any order (scores
    equal to float rounding may be ranked either way), boxes and scores within ``atol``."""
    for label in np.union1d(have_labels, want_labels):
        a, b = have[have_labels == label], want[want_labels == label]
        if len(a) != len(b):
            return False
        if len(a) and (np.abs(a[:, None, :] - b[None, :, :]).max(-1).min(1) > atol).any():
            return False
    return True


def _session(model_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 2, 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _float32_list(values: torch.Tensor) -> list:
    """Nested lists of ``values`` rounded to float32 (short reprs that parse back to the same float32)."""
    return [[float(str(v)) for v in row] for row in values.float().numpy()]
