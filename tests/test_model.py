"""build_model: backbone -> head from a composed config."""
import pytest
import torch

from mnet_vision.backbones import MobileNetV1, TorchvisionMobileNet
from mnet_vision.config import compose
from mnet_vision.heads import ClassifierHead
from mnet_vision.model import BackboneHeadModel, build_model


def test_shapes_task_logits():
    cfg = compose(["experiment=shapes", "backbone.alpha=0.25"])
    assert cfg.task.input_size == 64 and cfg.task.num_classes == 10
    model = build_model(cfg)
    assert isinstance(model, BackboneHeadModel)
    assert isinstance(model.backbone, MobileNetV1) and isinstance(model.head, ClassifierHead)
    assert model.backbone.alpha == 0.25
    logits = model.eval()(torch.randn(4, 3, 64, 64))
    assert logits.shape == (4, 10)
    assert torch.isfinite(logits).all()


def test_backbone_returns_only_the_head_tap():
    model = build_model(compose(["experiment=shapes", "backbone.alpha=0.25"])).eval()
    assert list(model.backbone.out_taps) == ["conv13"]
    with torch.no_grad():
        features = model.backbone(torch.randn(2, 3, 64, 64))
    assert list(features) == ["conv13"]
    assert features["conv13"].shape == (2, 256, 2, 2)
    assert model.head.fc.in_features == 256


def test_head_taps_decide_backbone_taps():
    model = build_model(compose(["experiment=shapes", "backbone.alpha=0.25", "task.head.taps=[conv11]"])).eval()
    assert list(model.backbone.out_taps) == ["conv11"]
    assert model.head.tap == "conv11" and model.head.fc.in_features == 128
    with torch.no_grad():
        features = model.backbone(torch.randn(2, 3, 64, 64))
        logits = model(torch.randn(2, 3, 64, 64))
    assert list(features) == ["conv11"] and features["conv11"].shape == (2, 128, 4, 4)
    assert logits.shape == (2, 10)


def test_torchvision_backbone_from_config():
    model = build_model(compose(["experiment=shapes", "backbone=mobilenet_v3_small", "backbone.alpha=0.5"])).eval()
    assert isinstance(model.backbone, TorchvisionMobileNet)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)


def test_unknown_head_tap_fails():
    with pytest.raises(Exception, match="conv99"):
        build_model(compose(["experiment=shapes", "backbone.alpha=0.25", "task.head.taps=[conv99]"]))
