"""ClassifierHead: avg pool -> dropout -> FC, built from a backbone's tap attributes."""
import pytest
import torch

from mnet_vision.backbones import MobileNetV1, Tap
from mnet_vision.heads import ClassifierHead
from mnet_vision.heads.classifier import AttributeOutputsHead


def test_output_shape():
    head = ClassifierHead({"conv13": Tap(16, 32)}, num_classes=7)
    out = head({"conv13": torch.randn(3, 16, 2, 5)})
    assert out.shape == (3, 7)


def test_uses_only_its_tap_and_average_pools():
    head = ClassifierHead({"conv13": Tap(4, 32)}, num_classes=2, dropout=0.0).eval()
    x = torch.randn(2, 4, 3, 3)
    out = head({"conv11": torch.randn(2, 99, 1, 1), "conv13": x})
    expected = x.mean(dim=(2, 3)) @ head.fc.weight.T + head.fc.bias
    torch.testing.assert_close(out, expected)


def test_small_initial_logits():
    head = ClassifierHead({"conv13": Tap(256, 32)}, num_classes=1000)
    assert torch.count_nonzero(head.fc.bias) == 0
    assert head.fc.weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_requires_exactly_one_tap():
    with pytest.raises(ValueError, match="exactly one tap"):
        ClassifierHead({"conv11": Tap(512, 16), "conv13": Tap(1024, 32)}, num_classes=10)
    with pytest.raises(ValueError, match="exactly one tap"):
        ClassifierHead({}, num_classes=10)


@pytest.mark.parametrize("num_classes", [0, -3])
def test_num_classes_must_be_positive(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        ClassifierHead({"conv13": Tap(8, 32)}, num_classes=num_classes)


def test_single_class_is_allowed():
    assert ClassifierHead({"conv13": Tap(8, 32)}, num_classes=1)({"conv13": torch.randn(2, 8, 1, 1)}).shape == (2, 1)


@pytest.mark.parametrize("alpha, channels", [(1.0, 1024), (0.75, 768), (0.5, 512), (0.25, 256), (0.1, 102)])
def test_built_from_backbone_taps(alpha, channels):
    backbone = MobileNetV1(alpha=alpha)
    head = ClassifierHead(backbone.out_taps, num_classes=10)
    assert head.tap == "conv13"
    assert head.fc.in_features == channels == backbone.tap_info["conv13"].channels
    assert head.fc.out_features == 10


def test_built_from_a_non_default_tap():
    backbone = MobileNetV1(alpha=0.25, taps=["conv11"]).eval()
    head = ClassifierHead(backbone.out_taps, num_classes=3).eval()
    assert head.tap == "conv11" and head.fc.in_features == 128
    with torch.no_grad():
        assert head(backbone(torch.randn(2, 3, 48, 48))).shape == (2, 3)


def test_attribute_outputs_head_gives_each_named_output_from_the_pooled_features():
    head = AttributeOutputsHead({"conv13": Tap(8, 32)}, num_attributes=3,
                                regression={"age": {"center": 30, "scale": 15}},
                                categorical={"gender": ["male", "female"], "expression": list("abcdefg")},
                                dropout=0.0).eval()
    x = torch.randn(4, 8, 3, 3)
    out = head({"conv13": x})
    assert {k: tuple(v.shape) for k, v in out.items()} == {"logits": (4, 3), "age": (4,), "gender": (4, 2),
                                                           "expression": (4, 7)}
    pooled = x.mean(dim=(2, 3))
    torch.testing.assert_close(out["age"], 30 + 15 * (pooled @ head.fc["age"].weight.T + head.fc["age"].bias)[:, 0])
    torch.testing.assert_close(out["gender"], pooled @ head.fc["gender"].weight.T + head.fc["gender"].bias)
    # a fresh head answers the centre: the bias starts at 0 and the weights small
    assert out["age"].sub(30).abs().max() < 1.0
    assert set(AttributeOutputsHead({"conv13": Tap(8, 32)}, regression={"age": {"center": 0, "scale": 1}})(
        {"conv13": x})) == {"age"}  # no binary attributes: no logits


@pytest.mark.parametrize("kwargs, match", [
    ({}, "needs num_attributes >= 1 or a regression"),
    ({"categorical": {"logits": ["a", "b"]}}, "not 'logits'"),
    ({"regression": {"age": {"center": 1}}}, r"needs \{center, scale > 0\}"),
    ({"regression": {"age": {"center": 1, "scale": 0}}}, r"needs \{center, scale > 0\}"),
    ({"categorical": {"gender": ["male"]}}, "2 or more class names"),
    ({"regression": {"x": {"center": 0, "scale": 1}}, "categorical": {"x": ["a", "b"]}}, "must be distinct"),
])
def test_attribute_outputs_head_refuses_bad_outputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AttributeOutputsHead({"conv13": Tap(8, 32)}, **kwargs)
