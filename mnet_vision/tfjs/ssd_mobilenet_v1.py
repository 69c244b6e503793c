"""The TF Object Detection API's ``ssd_mobilenet_v1`` names, as TF.js exports carry them, mapped onto
our modules: ``MobileNetV1`` (``backbone.*``) and ``SSD300Head`` (``head.detector.*``).

=======================================================  =============================================
TF tensor                                                ours
=======================================================  =============================================
``MobilenetV1/Conv2d_0_pointwise/weights`` (the 3x3 stem) ``backbone.features.conv0.conv.weight``
``MobilenetV1/Conv2d_<i>_depthwise/depthwise_weights``   ``backbone.features.conv<i>.dw.conv.weight``
``MobilenetV1/Conv2d_<i>_depthwise/BatchNorm/*``         ``backbone.features.conv<i>.dw.bn.*``
``MobilenetV1/Conv2d_<i>_pointwise/weights``             ``backbone.features.conv<i>.pw.conv.weight``
``Prediction/Conv2d_<j>_pointwise/weights``              ``head.detector.backbone.extras.<j//2>.<j%2>``
``Prediction/BoxPredictor_<k>/BoxEncodingPredictor/*``   ``head.detector.head.regression_head.module_list.<k>``
``Prediction/BoxPredictor_<k>/ClassPredictor/*``         ``head.detector.head.classification_head...<k>``
=======================================================  =============================================

Layouts: conv filters HWIO -> OIHW, depthwise ``(H, W, C, 1)`` -> ``(C, 1, H, W)``. A BatchNorm that
the export folded into its conv (``convolution_bn_offset``, what is left of it: an offset) loads as
an identity BatchNorm (scale 1, mean 0, variance ``1 - eps``) whose bias is the offset, so the module
tree stays ours. TF's box encodings are ``(ty, tx, th, tw)`` per anchor, torchvision's ``(tx, ty,
tw, th)``: the predictor's output channels are permuted. Class logits keep their first
``num_classes + 1`` columns (background first).

Graph constants are not weights: the anchors (``Output/extra_dim``, ``[ymin, xmin, ymax, xmax]``
relative to the input), the input size and the ``x * mul - sub`` input scaling are returned as
``constants`` for the model to check against its own configuration; shape constants of the graph
(reshape/stack/concat/slice arguments) are listed as ``ignored``. Anything else is an error naming it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

BACKBONE_PREFIX = "MobilenetV1/"
BOX_CODE_ORDER = (1, 0, 3, 2)  # torchvision's (tx, ty, tw, th) from TF's (ty, tx, th, tw)
#: Graph constants the model checks (SSD300Head.check_tf_constants), by TF name.
CONSTANTS = {"Output/extra_dim": "anchors", "Preprocessor/ResizeImage/size": "input_size",
             "Preprocessor/mul/x": "input_scale", "Preprocessor/sub/y": "input_offset",
             "Postprocessor/Slice/begin": "score_slice_begin"}
_SHAPE_CONSTANT = re.compile(r"^(Prediction/BoxPredictor_\d+/(stack(_\d+)?/\d+|strided_slice/stack(_\d+)?)"
                             r"|Postprocessor/(stack/\d+|Slice/size)|concat(_\d+)?/axis)$")
_BACKBONE = re.compile(r"^MobilenetV1/Conv2d_(\d+)_(depthwise|pointwise)/"
                       r"(weights|depthwise_weights|convolution_bn_offset|BatchNorm/(gamma|beta|moving_mean|moving_variance))$")
_EXTRA = re.compile(r"^Prediction/Conv2d_(\d+)_pointwise/(weights|convolution_bn_offset)$")
_PREDICTOR = re.compile(r"^Prediction/BoxPredictor_(\d+)/(BoxEncodingPredictor|ClassPredictor)/(weights|biases)$")
_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}


class TFNameError(ValueError):
    """A TF.js file whose tensors are not (all) those of an ``ssd_mobilenet_v1``."""


@dataclass
class Conversion:
    """What :func:`ssd_mobilenet_v1_state_dict` made of a file: our ``state`` (numpy arrays, keys of
    a ``DetectorModel``), the graph ``constants`` to check (see :data:`CONSTANTS`), and the TF
    names ``ignored`` as graph shape constants."""

    state: dict[str, np.ndarray] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)


def _filters(value: np.ndarray, depthwise: bool) -> np.ndarray:
    if value.ndim != 4:
        raise ValueError(f"expected a 4-D filter, got shape {value.shape}")
    return np.ascontiguousarray(value.transpose(2, 3, 0, 1) if depthwise else value.transpose(3, 2, 0, 1))


def _identity_bn(prefix: str, offset: np.ndarray, eps: float) -> dict[str, np.ndarray]:
    n = offset.shape[0]
    return {f"{prefix}.weight": np.ones(n, np.float32), f"{prefix}.bias": offset.astype(np.float32),
            f"{prefix}.running_mean": np.zeros(n, np.float32),
            f"{prefix}.running_var": np.full(n, 1.0 - eps, np.float32),
            f"{prefix}.num_batches_tracked": np.zeros((), np.int64)}


_PART = {"weights": "weight", "biases": "bias"}


def _box_predictor(value: np.ndarray, part: str) -> np.ndarray:
    channels = value.shape[-1]
    if channels % 4:
        raise ValueError(f"{channels} box-encoding channels are not 4 per anchor")
    order = np.array([a * 4 + c for a in range(channels // 4) for c in BOX_CODE_ORDER])
    value = value[..., order]
    return _filters(value, False) if part == "weights" else np.ascontiguousarray(value)


def _cut_logits(value: np.ndarray, anchors: int, num_classes: int | None, name: str) -> np.ndarray:
    channels = value.shape[-1]
    if anchors <= 0 or channels % anchors:
        raise TFNameError(f"{name}: {channels} output channels do not split over {anchors} anchors")
    columns = channels // anchors
    if num_classes is None:
        return np.ascontiguousarray(value)
    if columns < num_classes + 1:
        raise TFNameError(f"{name}: {columns} logit columns per anchor, fewer than the {num_classes + 1} "
                          f"(background + {num_classes} classes) the model is configured with")
    order = np.array([a * columns + c for a in range(anchors) for c in range(num_classes + 1)])
    return np.ascontiguousarray(value[..., order])


def ssd_mobilenet_v1_state_dict(weights: Mapping[str, np.ndarray], num_classes: int | None, source: str,
                                eps: float = 1e-3) -> Conversion:
    """Our ``DetectorModel`` state dict (MobileNetV1 + SSD300Head) from the tensors of a TF.js
    ``ssd_mobilenet_v1`` export (:func:`mnet_vision.tfjs.weights.read_weights`).

    Args:
        weights: TF name -> array, as read from the file.
        num_classes: object classes the model has (background excluded); the file's logits must
            have at least ``num_classes + 1`` columns, the rest are dropped (face-api's detector
            carries a third column that face-api never reads). None keeps them all.
        source: the file's name, for messages.
        eps: the BatchNorm epsilon of the model (TF's 1e-3), which an identity BatchNorm's variance
            ``1 - eps`` cancels.

    Raises :class:`TFNameError` when the file is not an ``ssd_mobilenet_v1`` (no ``MobilenetV1/``
    tensor: e.g. face-api's landmark model) or holds tensors this mapping cannot place (named).
    """
    if not any(name.startswith(BACKBONE_PREFIX) for name in weights):
        sample = ", ".join(list(weights)[:4])
        raise TFNameError(f"{source} is not a TF ssd_mobilenet_v1 model: none of its {len(weights)} tensors is "
                          f"named {BACKBONE_PREFIX}... (it holds {sample}, ...)")
    out = Conversion()
    unplaced = []
    box_anchors: dict[int, int] = {}
    logits: dict[tuple[int, str], tuple[str, np.ndarray]] = {}
    for name, value in weights.items():
        try:
            if name in CONSTANTS:
                out.constants[CONSTANTS[name]] = value
            elif _SHAPE_CONSTANT.match(name):
                out.ignored.append(name)
            elif m := _BACKBONE.match(name):
                prefix = f"backbone.features.conv{int(m[1])}" + ("" if m[1] == "0" else
                                                                   ".dw" if m[2] == "depthwise" else ".pw")
                if m[3] in ("weights", "depthwise_weights"):
                    out.state[f"{prefix}.conv.weight"] = _filters(value, m[3] == "depthwise_weights")
                elif m[3] == "convolution_bn_offset":
                    out.state.update(_identity_bn(f"{prefix}.bn", value, eps))
                else:
                    out.state[f"{prefix}.bn.{_BN[m[4]]}"] = value.astype(np.float32)
                    out.state.setdefault(f"{prefix}.bn.num_batches_tracked", np.zeros((), np.int64))
            elif m := _EXTRA.match(name):
                j = int(m[1])
                prefix = f"head.detector.backbone.extras.{j // 2}.{j % 2}"
                if m[2] == "weights":
                    out.state[f"{prefix}.conv.weight"] = _filters(value, False)
                else:
                    out.state.update(_identity_bn(f"{prefix}.bn", value, eps))
            elif m := _PREDICTOR.match(name):
                k, kind, part = int(m[1]), m[2], m[3]
                if kind == "BoxEncodingPredictor":
                    box_anchors[k] = value.shape[-1] // 4
                    out.state[f"head.detector.head.regression_head.module_list.{k}.{_PART[part]}"] = (
                        _box_predictor(value, part))
                else:
                    logits[(k, part)] = (name, value)
            else:
                unplaced.append(name)
        except (ValueError, IndexError) as err:
            raise TFNameError(f"{source}: tensor {name} of shape {tuple(value.shape)}: {err}") from err
    for (k, part), (name, value) in logits.items():
        if k not in box_anchors:
            raise TFNameError(f"{source}: {name} has no BoxEncodingPredictor beside it to count its anchors")
        cut = _cut_logits(value, box_anchors[k], num_classes, f"{source}: {name}")
        out.state[f"head.detector.head.classification_head.module_list.{k}.{_PART[part]}"] = (
            _filters(cut, False) if part == "weights" else cut)
    if unplaced:
        raise TFNameError(f"{source}: {len(unplaced)} tensors have no place in MobileNetV1 + SSD300Head: {unplaced}")
    return out
