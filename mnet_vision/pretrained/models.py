"""Ready pretrained models: a named model is a pinned package's weight file, the experiment config
that builds our module tree for it, and the metadata serving needs.

    >>> from mnet_vision.pretrained.models import load_pretrained
    >>> detector = load_pretrained("faceapi_ssd")          # fetched into the cache on first use
    >>> detections = detector.model([image_0to1_chw])      # torchvision's detector API, input pixels

The model is built from ``conf/experiment/<experiment>.yaml`` (so training can start from the same
definition: ``experiment=faceapi_ssd task.init_from.path=<the manifest>``) and its weights are
loaded through ``task.init_from``'s own path (:func:`mnet_vision.checkpoints.init_from`), strictly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mnet_vision.checkpoints import init_from
from mnet_vision.config import compose
from mnet_vision.inference.fuse import prepare_for_inference
from mnet_vision.inference.load import LoadedModel, ModelMeta
from mnet_vision.model import build_model
from mnet_vision.pretrained.fetch import package_file


@dataclass(frozen=True)
class PretrainedModel:
    """One ready model: ``file`` inside pinned ``package`` (:data:`mnet_vision.pretrained.fetch.PACKAGES`)
    in ``format`` (an ``init_from`` format), built by ``experiment``; ``class_names`` per model label
    (0 the background for a detector); ``about``: one line for listings."""

    package: str
    file: str
    format: str
    experiment: str
    task: str
    class_names: tuple[str, ...]
    about: str


PRETRAINED: dict[str, PretrainedModel] = {
    "faceapi_ssd": PretrainedModel(
        package="faceapi", file="model/ssd_mobilenetv1_model-weights_manifest.json", format="tfjs",
        experiment="faceapi_ssd", task="DetectionTask", class_names=("__background__", "face"),
        about="face detector: TF OD API ssd_mobilenet_v1 (MobileNet V1 1.0, 512x512) as face-api ships it"),
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
    cfg = compose([f"experiment={spec.experiment}"])
    cfg.task.init_from.path = str(weights)  # set, not an override: a cache path may hold '=' or spaces
    model = build_model(cfg)
    init_from(model, str(weights), "model", spec.format)
    meta = ModelMeta(task=spec.task, outputs=None, class_names=list(spec.class_names),
                     category_ids=list(range(len(spec.class_names))), input_size=int(cfg.task.input_size))
    model = prepare_for_inference(model) if fast else model.eval()
    return LoadedModel(model.to(device), cfg, meta, device, fast, f"pretrained:{name} ({weights})")


def _spec(name: str) -> PretrainedModel:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}: expected one of {sorted(PRETRAINED)}")
    return PRETRAINED[name]
