"""MobileNet V1 body: Table 1 layout, width rounding, Table 4/5 variants, taps and errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnet_vision.backbones import MobileNetV1
from mnet_vision.backbones.mobilenet_v1 import ConvBNAct, DepthwiseSeparable, TFSameConv2d, same_padding
from mnet_vision.inference.fuse import prepare_for_inference

ALL_TAPS = [f"conv{i}" for i in range(14)]

# Table 1 at alpha 1: (output channels, stride) of conv0..conv13.
TABLE1 = [(32, 2), (64, 2), (128, 4), (128, 4), (256, 8), (256, 8)] + [(512, 16)] * 6 + [(1024, 32), (1024, 32)]


def test_table1_taps_channels_and_strides():
    net = MobileNetV1(alpha=1.0)
    assert list(net.tap_info) == ALL_TAPS
    assert [(t.channels, t.stride) for t in net.tap_info.values()] == TABLE1
    assert net.tap_info["conv13"].stride == 32


def test_table1_layer13_depthwise_has_stride_1():
    # The paper prints s2 for layer 13's depthwise conv; its input is already 7x7 (stride 1 in
    # the published model and in every count of the paper).
    net = MobileNetV1(alpha=1.0)
    assert net.features.conv13.dw.conv.stride == (1, 1)
    assert net.features.conv12.dw.conv.stride == (2, 2)
    assert net.features.conv0.conv.stride == (2, 2)
    for i in range(1, 14):
        block = getattr(net.features, f"conv{i}")
        assert isinstance(block, DepthwiseSeparable)
        assert block.pw.conv.stride == (1, 1) and block.pw.conv.kernel_size == (1, 1)
        assert block.dw.conv.groups == block.dw.conv.in_channels == block.dw.conv.out_channels


def test_table1_output_shapes_at_224():
    net = MobileNetV1(alpha=1.0, taps=ALL_TAPS).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 224, 224))
    assert list(out) == ALL_TAPS
    for name, (channels, stride) in zip(ALL_TAPS, TABLE1):
        assert out[name].shape == (1, channels, 224 // stride, 224 // stride), name
    assert out["conv13"].shape == (1, 1024, 7, 7)


@pytest.mark.parametrize("alpha", [1.0, 0.75, 0.5, 0.25, 0.1])
def test_width_multiplier_rounding(alpha):
    net = MobileNetV1(alpha=alpha)
    expected = [max(int(c * alpha), 8) for c, _ in TABLE1]
    assert [t.channels for t in net.tap_info.values()] == expected
    assert [t.stride for t in net.tap_info.values()] == [s for _, s in TABLE1]


def test_width_multiplier_examples():
    quarter = MobileNetV1(alpha=0.25)
    assert quarter.tap_info["conv0"].channels == 8
    assert quarter.tap_info["conv13"].channels == 256
    tenth = MobileNetV1(alpha=0.1)
    # int(32 * 0.1) = 3, int(64 * 0.1) = 6: both lifted to min_depth 8
    assert tenth.tap_info["conv0"].channels == 8
    assert tenth.tap_info["conv1"].channels == 8
    assert tenth.tap_info["conv2"].channels == 12
    assert tenth.tap_info["conv13"].channels == 102
    assert MobileNetV1(alpha=0.1, min_depth=16).tap_info["conv2"].channels == 16


def test_module_channels_follow_taps():
    net = MobileNetV1(alpha=0.5)
    in_ch = 3
    for name, tap in net.tap_info.items():
        convs = [m for m in getattr(net.features, name).modules() if isinstance(m, nn.Conv2d)]
        assert convs[0].in_channels == in_ch
        assert convs[-1].out_channels == tap.channels
        in_ch = tap.channels


def test_conv_variant_uses_full_3x3_convs_only():
    net = MobileNetV1(alpha=0.25, variant="conv")
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 14
    assert all(c.groups == 1 and c.kernel_size == (3, 3) for c in convs)
    assert not any(isinstance(m, DepthwiseSeparable) for m in net.modules())
    assert all(isinstance(getattr(net.features, n), ConvBNAct) for n in ALL_TAPS)
    assert [(t.channels, t.stride) for t in net.tap_info.values()] == [
        (max(int(c * 0.25), 8), s) for c, s in TABLE1]
    assert net.features.conv13.conv.stride == (1, 1)
    out = net(torch.randn(1, 3, 64, 64))
    assert out["conv13"].shape == (1, 256, 2, 2)


def test_shallow_variant_drops_layers_7_to_11():
    net = MobileNetV1(alpha=0.25, variant="shallow", taps=["conv6", "conv12", "conv13"])
    names = [f"conv{i}" for i in (0, 1, 2, 3, 4, 5, 6, 12, 13)]
    assert list(net.tap_info) == names
    assert [n for n, _ in net.features.named_children()] == names
    assert net.features.conv12.dw.conv.in_channels == net.tap_info["conv6"].channels == 128
    assert net.tap_info["conv13"] == MobileNetV1(alpha=0.25).tap_info["conv13"]
    for removed in ("conv7", "conv11"):
        with pytest.raises(ValueError, match=removed):
            MobileNetV1(alpha=0.25, variant="shallow", taps=[removed])
    out = net(torch.randn(2, 3, 64, 64))
    assert out["conv6"].shape == (2, 128, 4, 4)
    assert out["conv12"].shape == (2, 256, 2, 2)
    assert out["conv13"].shape == (2, 256, 2, 2)


@pytest.mark.parametrize("activation, cls, other", [("relu", nn.ReLU, nn.ReLU6), ("relu6", nn.ReLU6, nn.ReLU)])
def test_activation_types(activation, cls, other):
    net = MobileNetV1(alpha=0.25, activation=activation)
    acts = [m for m in net.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    assert len(acts) == 27  # conv0 + 13 x (dw, pw)
    assert all(type(m) is cls for m in acts)
    assert not any(isinstance(m, other) for m in net.modules())


def test_default_activation_is_relu6():
    assert isinstance(MobileNetV1(alpha=0.25).features.conv0.act, nn.ReLU6)


@pytest.mark.parametrize("size", [(225, 225), (100, 130), (64, 64), (33, 31)])
def test_any_input_size(size):
    h, w = size
    net = MobileNetV1(alpha=0.25).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, h, w))
    assert list(out) == ["conv13"]
    assert out["conv13"].shape == (1, 256, math.ceil(h / 32), math.ceil(w / 32))


def test_multiple_taps_returned_in_a_dict():
    taps = ["conv11", "conv5", "conv13", "conv0"]
    net = MobileNetV1(alpha=0.25, taps=taps).eval()
    assert list(net.out_taps) == taps
    with torch.no_grad():
        out = net(torch.randn(2, 3, 100, 130))
    assert set(out) == set(taps)
    for name in taps:
        tap = net.tap_info[name]
        assert out[name].shape == (2, tap.channels, math.ceil(100 / tap.stride), math.ceil(130 / tap.stride))


def test_forward_stops_after_deepest_tap():
    net = MobileNetV1(alpha=0.25, taps=["conv5"]).eval()
    reached = []
    for name, layer in net.features.named_children():
        layer.register_forward_hook(lambda m, i, o, name=name: reached.append(name))
    out = net(torch.randn(1, 3, 64, 64))
    assert list(out) == ["conv5"]
    assert reached == [f"conv{i}" for i in range(6)]


def test_single_tap_as_string():
    net = MobileNetV1(alpha=0.25, taps="conv12")
    assert list(net.out_taps) == ["conv12"]


@pytest.mark.parametrize("alpha", [0, -1, 4.5])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        MobileNetV1(alpha=alpha)


def test_unknown_variant():
    with pytest.raises(ValueError, match="deep"):
        MobileNetV1(variant="deep")


def test_unknown_activation():
    with pytest.raises(ValueError, match="swish"):
        MobileNetV1(activation="swish")


def test_unknown_tap_lists_available():
    with pytest.raises(ValueError) as err:
        MobileNetV1(alpha=0.25, taps=["conv14"])
    message = str(err.value)
    assert "conv14" in message and "available" in message
    assert all(f"'{name}'" in message for name in ALL_TAPS)


def test_no_taps_is_an_error():
    with pytest.raises(ValueError, match="tap"):
        MobileNetV1(alpha=0.25, taps=[])


@pytest.mark.parametrize("size", [6, 7, 8, 9])
def test_tf_same_padding_pads_the_odd_pixel_at_the_bottom_right(size):
    torch.manual_seed(0)
    conv = TFSameConv2d(2, 3, 3, 2, bias=False)
    x = torch.randn(1, 2, size, size + 1)
    # by hand: TF's total padding (ceil(n / 2) - 1) * 2 + 3 - n, the odd pixel after
    pads = [(0, 1) if n % 2 == 0 else (1, 1) for n in (size, size + 1)]
    assert same_padding(size, 3, 2) == pads[0] and same_padding(size + 1, 3, 2) == pads[1]
    by_hand = F.conv2d(F.pad(x, (*pads[1], *pads[0])), conv.weight, stride=2)
    torch.testing.assert_close(conv(x), by_hand, rtol=0, atol=0)
    assert conv(x).shape[-2:] == (math.ceil(size / 2), math.ceil((size + 1) / 2))
    symmetric = F.conv2d(x, conv.weight, stride=2, padding=1)
    assert symmetric.shape == by_hand.shape
    assert torch.equal(symmetric, by_hand) == (size % 2 == 1 and (size + 1) % 2 == 1)  # differ on an even side


def test_tf_same_backbone_keeps_the_shapes_and_folds():
    torch.manual_seed(0)
    tf = MobileNetV1(0.25, taps=("conv2", "conv13"), padding="tf_same").eval()
    plain = MobileNetV1(0.25, taps=("conv2", "conv13")).eval()
    plain.load_state_dict(tf.state_dict())  # same parameters: only the padding differs
    x = torch.randn(1, 3, 64, 64)
    a, b = tf(x), plain(x)
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert not torch.allclose(a["conv2"], b["conv2"])  # (deeper maps of a random net are ~0)
    strided = [m for m in tf.modules() if isinstance(m, nn.Conv2d) and m.stride[0] > 1]
    assert len(strided) == 5 and all(isinstance(m, TFSameConv2d) for m in strided)
    folded = prepare_for_inference(tf)
    torch.testing.assert_close(folded(x.contiguous(memory_format=torch.channels_last))["conv2"], a["conv2"],
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="padding 'reflect'"):
        MobileNetV1(0.25, padding="reflect")
