"""checkpoints.init_from with format=tfjs: the face detector loads whole into its experiment's
model, its body into any MobileNetV1 model, and a model configured otherwise is told what differs."""
import logging

import pytest
import torch

from mnet_vision.checkpoints import CheckpointMismatchError, init_from
from mnet_vision.config import compose
from mnet_vision.model import build_model
from tests.helpers.pretrained import faceapi_package

MANIFEST = "model/ssd_mobilenetv1_model-weights_manifest.json"


def test_tfjs_detector_loads_whole_and_passes_its_own_graph_checks():
    model = build_model(compose(["experiment=faceapi_ssd"]))
    init_from(model, str(faceapi_package() / MANIFEST), "model", "tfjs")
    conv0 = model.backbone.features.conv0
    assert conv0.bn.running_mean.abs().max() == 0 and conv0.bn.weight.eq(1).all()  # folded BN: identity + bias
    assert conv0.bn.bias.abs().max() > 0


def test_tfjs_body_starts_any_mobilenet_task(caplog):
    model = build_model(compose(["experiment=imagenet", "backbone.padding=tf_same", "backbone.bn_eps=1e-3"]))
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    init_from(model, str(faceapi_package() / MANIFEST), "backbone", "tfjs")
    assert model.backbone.features.conv1.dw.bn.running_var.min() > 0
    assert all(torch.equal(v, model.head.state_dict()[k]) for k, v in head_before.items())
    with caplog.at_level(logging.WARNING):
        init_from(build_model(compose(["experiment=imagenet"])), str(faceapi_package() / MANIFEST), "backbone", "tfjs")
    assert "backbone.padding=tf_same" in caplog.text


def test_tfjs_into_a_model_configured_otherwise_names_the_difference():
    manifest = str(faceapi_package() / MANIFEST)
    with pytest.raises(ValueError, match="interpolated_anchor"):
        init_from(build_model(compose(["experiment=faceapi_ssd", "task.head.interpolated_anchor=last"])), manifest,
                  "model", "tfjs")
    with pytest.raises(ValueError, match="exported for \\[512, 512\\].*size 300"):
        init_from(build_model(compose(["experiment=faceapi_ssd", "task.input_size=300"])), manifest, "model", "tfjs")
    with pytest.raises(CheckpointMismatchError, match="shape differences"):
        init_from(build_model(compose(["experiment=faceapi_ssd", "backbone.alpha=0.5"])), manifest, "model", "tfjs")
    with pytest.raises(ValueError, match="SSD300Head, not ClassifierHead"):
        init_from(build_model(compose(["experiment=imagenet", "backbone.padding=tf_same", "backbone.bn_eps=1e-3"])),
                  manifest, "model", "tfjs")
