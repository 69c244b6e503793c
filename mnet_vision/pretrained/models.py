"""Ready pretrained models: a named model is a pinned package's weight file, the experiment config
that builds our module tree for it, and the metadata serving needs.

    >>> from mnet_vision.pretrained.models import load_pretrained
    >>> detector = load_pretrained("faceapi_ssd")          # fetched into the cache on first use
    >>> detections = detector.model([image_0to1_chw])      # torchvision's detector API, input pixels

A model with an ``experiment`` is built from ``conf/experiment/<experiment>.yaml`` (so training can start
from the same definition: ``experiment=faceapi_ssd task.init_from.path=<the manifest>``) and its weights
are loaded through ``task.init_from``'s own path (:func:`mnet_vision.checkpoints.init_from`), strictly.
face-api's face nets (``faceapi_landmarks68``, ``faceapi_expression``, ``faceapi_age_gender``,
``faceapi_descriptor``) name a ``net`` instead: :mod:`mnet_vision.pretrained.faceapi_nets` builds and loads
them, and their config records what was built.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from mnet_vision.checkpoints import init_from
from mnet_vision.config import compose
from mnet_vision.heads.faceapi import EXPRESSIONS, GENDERS
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.inference.load import LoadedModel, ModelMeta
from mnet_vision.model import build_model
from mnet_vision.pretrained.faceapi_input import INPUT_SIZES
from mnet_vision.pretrained.faceapi_nets import ARCHITECTURES, load_faceapi_net
from mnet_vision.pretrained.fetch import package_file


@dataclass(frozen=True)
class PretrainedModel:
    """One ready model: ``file`` inside pinned ``package`` (:data:`mnet_vision.pretrained.fetch.PACKAGES`)
    in ``format`` (an ``init_from`` format), built by ``experiment`` or, for face-api's face nets, as
    ``net`` (a key of :data:`mnet_vision.pretrained.faceapi_nets.ARCHITECTURES`); ``class_names`` per model
    label (0 the background for a detector); ``outputs``: the model's output name; ``about``: one line
    for listings."""

    package: str
    file: str
    format: str
    experiment: str | None
    task: str
    class_names: tuple[str, ...] | None
    about: str
    net: str | None = None
    outputs: str | None = None


PRETRAINED: dict[str, PretrainedModel] = {
    "faceapi_ssd": PretrainedModel(
        package="faceapi", file="model/ssd_mobilenetv1_model-weights_manifest.json", format="tfjs",
        experiment="faceapi_ssd", task="DetectionTask", class_names=("__background__", "face"),
        about="face detector: TF OD API ssd_mobilenet_v1 (MobileNet V1 1.0, 512x512) as face-api ships it"),
    "faceapi_landmarks68": PretrainedModel(
        package="faceapi", file="model/face_landmark_68_model-weights_manifest.json", format="tfjs", experiment=None,
        task="FaceLandmarks", class_names=None, net="landmarks68", outputs="landmarks",
        about="68-point face landmarks (N, 68, 2) in fractions of a 112x112 face crop, face-api's dense-block net"),
    "faceapi_expression": PretrainedModel(
        package="faceapi", file="model/face_expression_model-weights_manifest.json", format="tfjs", experiment=None,
        task="FaceExpression", class_names=EXPRESSIONS, net="expression", outputs="probabilities",
        about="7 face expressions (softmax) of a 112x112 face crop, face-api's dense-block net"),
    "faceapi_age_gender": PretrainedModel(
        package="faceapi", file="model/age_gender_model-weights_manifest.json", format="tfjs", experiment=None,
        task="FaceAgeGender", class_names=GENDERS, net="age_gender", outputs="age_gender",
        about="age in years and gender (softmax: male, female) of a 112x112 face crop, face-api's TinyXception"),
    "faceapi_descriptor": PretrainedModel(
        package="faceapi", file="model/face_recognition_model-weights_manifest.json", format="tfjs", experiment=None,
        task="FaceDescriptor", class_names=None, net="descriptor", outputs="embedding",
        about="128-D face descriptor of a 150x150 face crop (Euclidean, 0.6 same person): dlib's ResNet as face-api "
              "ported it"),
}


def pretrained_weights(name: str, cache: str | Path | None = None, download: bool = True) -> Path:
    """The weight file of pretrained model ``name`` in the cache, fetched with ``download``."""
    return package_file(_spec(name).package, _spec(name).file, cache=cache, download=download)


def load_pretrained(name: str, fast: bool = True, device: str = "cpu", cache: str | Path | None = None,
                    download: bool = True) -> LoadedModel:
    """Pretrained model ``name`` (a key of :data:`PRETRAINED`) in eval mode on ``device``, as
    :func:`mnet_vision.inference.load.load_model` returns a checkpoint's: BatchNorm folded and
    channels_last with ``fast``; its run config; its :class:`~mnet_vision.inference.load.ModelMeta`.

    The package is fetched into the cache on first use (``download=False``: only from the cache;
    :class:`~mnet_vision.pretrained.fetch.FetchError` says how to fetch it)."""
    spec = _spec(name)
    weights = pretrained_weights(name, cache, download)
    if spec.net is not None:
        return _load_faceapi_net(name, spec, weights, fast, device)
    cfg = compose([f"experiment={spec.experiment}"])
    cfg.task.init_from.path = str(weights)  # set, not an override: a cache path may hold '=' or spaces
    model = build_model(cfg)
    init_from(model, str(weights), "model", spec.format)
    meta = ModelMeta(task=spec.task, outputs=None, class_names=list(spec.class_names),
                     category_ids=list(range(len(spec.class_names))), input_size=int(cfg.task.input_size))
    model = prepare_for_inference(model) if fast else model.eval()
    return LoadedModel(model.to(device), cfg, meta, device, fast, f"pretrained:{name} ({weights})")


def _load_faceapi_net(name: str, spec: PretrainedModel, weights: Path, fast: bool, device: str) -> LoadedModel:
    model = load_faceapi_net(spec.net, weights)
    backbone, tap, head = ARCHITECTURES[spec.net]
    size = INPUT_SIZES[spec.net]
    cfg = OmegaConf.create({"pretrained": {"name": name, "net": spec.net, "weights": str(weights)},
                            "backbone": {"_target_": _qualname(backbone), "taps": [tap]},
                            "task": {"input_size": size, "head": {"_target_": _qualname(head)}}})
    meta = ModelMeta(task=spec.task, outputs=spec.outputs,
                     class_names=list(spec.class_names) if spec.class_names else None, input_size=size,
                     embedding_dim=128 if spec.net == "descriptor" else None,
                     transform={"kind": "faceapi", "input_size": size})
    model = prepare_for_inference(model) if fast else model.eval()
    return LoadedModel(model.to(device), cfg, meta, device, fast, f"pretrained:{name} ({weights})")


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _spec(name: str) -> PretrainedModel:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}: expected one of {sorted(PRETRAINED)}")
    return PRETRAINED[name]
