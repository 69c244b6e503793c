"""face-api's landmark, expression, age/gender and descriptor files (TF.js weight manifests whose
names are face-api's own ``paramPath``s) mapped onto our modules: a ``BackboneHeadModel`` whose
backbone is ``FaceApiDenseNet``, ``TinyXception`` or ``DlibResNet`` and whose head is one of
``heads.faceapi``.

=================================================  =================================================
TF name                                            ours
=================================================  =================================================
``<path>/filters`` (conv, HWIO)                    ``backbone.<path>.weight`` (OIHW)
``<path>/bias`` (conv)                             ``backbone.<path>.bias``
``<path>/depthwise_filter`` ``(3, 3, C, 1)``       ``backbone.<path>.depthwise.weight`` ``(C, 1, 3, 3)``
``<path>/pointwise_filter`` ``(1, 1, C, D)``       ``backbone.<path>.pointwise.weight`` ``(D, C, 1, 1)``
``<path>/bias`` beside a ``depthwise_filter``      ``backbone.<path>.pointwise.bias``
``<path>/scale/weights``, ``/scale/biases``        ``backbone.<path>.scale.weight``, ``.bias``
``middle_flow/main_block_<i>/...``                 ``backbone.middle_flow.<i>....``
``fc/weights`` ``(in, out)``, ``fc/bias``          ``head.fc.weight`` ``(out, in)``, ``head.fc.bias``
``fc/age/*``, ``fc/gender/*``                      ``head.age.*``, ``head.gender.*``
``fc`` ``(256, 128)`` (the descriptor's)           ``head.fc.weight`` ``(128, 256)``
=================================================  =================================================

Which net a file holds is read from its names (:func:`identify`); a file of another net (or of none
of them) is refused naming what it is, and a tensor no rule places is an error naming it. Shapes are
checked when the state dict is loaded (strictly) into the model.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

#: Our name for each net -> face-api's file stem and the names that mark its files.
NETS = {
    "landmarks68": ("face_landmark_68_model", "dense0/conv0/filters"),
    "expression": ("face_expression_model", "dense0/conv0/filters"),
    "age_gender": ("age_gender_model", "entry_flow/conv_in/filters"),
    "descriptor": ("face_recognition_model", "conv32_down/conv/filters"),
}
#: fc widths that tell the two dense-body files apart (their bodies share every name).
DENSE_FC_OUT = {136: "landmarks68", 7: "expression"}
_LEAF = re.compile(r"^(?P<path>.+)/"
                   r"(?P<leaf>filters|bias|depthwise_filter|pointwise_filter|scale/weights|scale/biases)$")
_MAIN_BLOCK = re.compile(r"^middle_flow/main_block_(\d+)/")


class FaceApiNameError(ValueError):
    """A TF.js file that is not (all) the face-api net it was loaded as."""


def identify(weights: Mapping[str, np.ndarray]) -> str | None:
    """Which of :data:`NETS` a file's tensors are (None: none of them); the landmark and expression files
    share their body's names and are told apart by the width of ``fc/weights``."""
    if "conv32_down/conv/filters" in weights:
        return "descriptor"
    if "entry_flow/conv_in/filters" in weights:
        return "age_gender"
    if "dense0/conv0/filters" in weights:
        fc = weights.get("fc/weights")
        return DENSE_FC_OUT.get(int(fc.shape[-1])) if fc is not None and fc.ndim == 2 else None
    return None


def _filters(value: np.ndarray, name: str) -> np.ndarray:
    if value.ndim != 4:
        raise FaceApiNameError(f"{name}: expected a 4-D HWIO filter, got shape {value.shape}")
    return np.ascontiguousarray(value.transpose(3, 2, 0, 1))


def _fc(value: np.ndarray, name: str) -> np.ndarray:
    if value.ndim != 2:
        raise FaceApiNameError(f"{name}: expected a 2-D (in, out) fc weight, got shape {value.shape}")
    return np.ascontiguousarray(value.T)


def _head_key(name: str, value: np.ndarray) -> tuple[str, np.ndarray] | None:
    if name == "fc":  # the descriptor's bias-free fc
        return "head.fc.weight", _fc(value, name)
    if m := re.fullmatch(r"fc(/age|/gender)?/(weights|bias)", name):
        module = m[1][1:] if m[1] else "fc"
        return (f"head.{module}.weight", _fc(value, name)) if m[2] == "weights" else (f"head.{module}.bias", value)
    return None


def _backbone_key(name: str, value: np.ndarray, separable: set[str]) -> tuple[str, np.ndarray] | None:
    m = _LEAF.match(name)
    if not m:
        return None
    path = _MAIN_BLOCK.sub(lambda b: f"middle_flow/{b[1]}/", m["path"]).replace("/", ".")
    leaf = m["leaf"]
    if leaf == "filters":
        return f"backbone.{path}.weight", _filters(value, name)
    if leaf == "depthwise_filter":
        if value.ndim != 4 or value.shape[3] != 1:
            raise FaceApiNameError(f"{name}: expected a (3, 3, C, 1) depthwise filter, got shape {value.shape}")
        return f"backbone.{path}.depthwise.weight", np.ascontiguousarray(value.transpose(2, 3, 0, 1))
    if leaf == "pointwise_filter":
        return f"backbone.{path}.pointwise.weight", _filters(value, name)
    if leaf == "bias":
        return f"backbone.{path}.pointwise.bias" if m["path"] in separable else f"backbone.{path}.bias", value
    return f"backbone.{path}.scale.{'weight' if leaf == 'scale/weights' else 'bias'}", value


def faceapi_state_dict(net: str, weights: Mapping[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Our ``BackboneHeadModel`` state dict (numpy, float32) for face-api net ``net`` (a key of
    :data:`NETS`) from a file's tensors (:func:`mnet_vision.tfjs.weights.read_weights`).

    Raises :class:`FaceApiNameError` naming ``source`` when the file is another net (named) or none of
    face-api's, or holds tensors no rule places (listed)."""
    if net not in NETS:
        raise ValueError(f"unknown face-api net {net!r}: expected one of {sorted(NETS)}")
    found = identify(weights)
    if found != net:
        what = (f"face-api's {NETS[found][0]} ({found})" if found else
                f"none of face-api's nets (it holds {', '.join(list(weights)[:4])}, ...)")
        raise FaceApiNameError(f"{source} is not face-api's {NETS[net][0]} ({net}): its {len(weights)} tensors are "
                               f"{what}; a {net} file has a {NETS[net][1]} tensor")
    separable = {n.rsplit("/", 1)[0] for n in weights if n.endswith("/depthwise_filter")}
    state, unplaced = {}, []
    for name, value in weights.items():
        placed = _head_key(name, value) or _backbone_key(name, value, separable)
        if placed is None:
            unplaced.append(name)
            continue
        key, array = placed
        if key in state:
            raise FaceApiNameError(f"{source}: {name} lands on {key}, which another tensor already filled")
        state[key] = np.asarray(array, dtype=np.float32)
    if unplaced:
        raise FaceApiNameError(f"{source}: {len(unplaced)} tensors have no place in face-api's {net} net: {unplaced}")
    return state
