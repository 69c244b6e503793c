"""torchvision MobileNet V2 / V3 bodies behind the tap interface."""
import pytest
import torch
import torchvision
from torch import nn

from mnet_vision.backbones import TorchvisionMobileNet
from tests.helpers.models import randomise_batchnorm

CASES = [("mobilenet_v2", 0.5), ("mobilenet_v2", 1.0), ("mobilenet_v3_large", 0.5), ("mobilenet_v3_small", 0.5)]


def _head_in_features(arch: str, alpha: float) -> int:
    """Channels of the final feature map, read off torchvision's own classifier."""
    model = getattr(torchvision.models, arch)(weights=None, width_mult=alpha)
    first_linear = next(m for m in model.classifier if isinstance(m, nn.Linear))
    return first_linear.in_features


@pytest.mark.parametrize("arch, alpha", CASES)
def test_conv11_and_conv13_taps(arch, alpha):
    net = TorchvisionMobileNet(arch, alpha, taps=["conv11", "conv13"])
    info = net.tap_info
    assert info["conv11"].stride == 16
    assert info["conv13"].stride == 32
    n = len(net.features)
    assert info["conv13"] == info[f"features.{n - 1}"]
    assert info["conv13"].channels == _head_in_features(arch, alpha)
    # conv11 is the *last* stride-16 stage: the next one is stride 32
    stage = max(i for i in range(n) if info[f"features.{i}"].stride == 16)
    assert info["conv11"] == info[f"features.{stage}"]
    assert info[f"features.{stage + 1}"].stride == 32
    assert list(net.out_taps) == ["conv11", "conv13"]


@pytest.mark.parametrize("arch, alpha", CASES)
def test_output_shapes_match_tap_info(arch, alpha):
    n_stages = len(getattr(torchvision.models, arch)(weights=None, width_mult=alpha).features)
    taps = ["conv11", "conv13", "features.0", f"features.{n_stages - 2}"]
    net = TorchvisionMobileNet(arch, alpha, taps=taps).eval()
    size = 96
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert list(out) == taps
    for name in taps:
        tap = net.tap_info[name]
        assert out[name].shape == (2, tap.channels, size // tap.stride, size // tap.stride), name
    assert out["conv13"].shape[-1] == 3


def test_features_strides_are_powers_of_two_and_monotonic():
    net = TorchvisionMobileNet("mobilenet_v3_small", 0.5)
    strides = [net.tap_info[f"features.{i}"].stride for i in range(len(net.features))]
    assert strides == sorted(strides)
    assert set(strides) <= {2, 4, 8, 16, 32} and strides[0] == 2 and strides[-1] == 32


def test_alpha_is_torchvision_width_mult():
    half = TorchvisionMobileNet("mobilenet_v3_large", 0.5)
    full = TorchvisionMobileNet("mobilenet_v3_large", 1.0)
    assert full.tap_info["conv13"].channels == 960
    assert half.tap_info["conv13"].channels == 480


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_small"])
def test_torchvision_features_state_dict_loads_directly(arch):
    torch.manual_seed(0)
    tv = getattr(torchvision.models, arch)(weights=None)
    randomise_batchnorm(tv)
    tv.eval()
    ours = TorchvisionMobileNet(arch, 1.0, taps=["conv13"]).eval()
    result = ours.features.load_state_dict(tv.features.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = tv.features(x)
        got = ours(x)["conv13"]
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_forward_stops_after_deepest_tap():
    net = TorchvisionMobileNet("mobilenet_v3_small", 0.5, taps=["features.3"]).eval()
    reached = []
    for i, layer in enumerate(net.features):
        layer.register_forward_hook(lambda m, inp, out, i=i: reached.append(i))
    out = net(torch.randn(1, 3, 64, 64))
    assert list(out) == ["features.3"]
    assert reached == [0, 1, 2, 3]


def test_training_mode_is_kept_after_construction():
    net = TorchvisionMobileNet("mobilenet_v3_small", 0.5)
    assert net.training and all(m.training for m in net.modules())


def test_unknown_arch():
    with pytest.raises(ValueError, match="mobilenet_v4"):
        TorchvisionMobileNet("mobilenet_v4")


def test_unknown_tap_lists_available():
    with pytest.raises(ValueError) as err:
        TorchvisionMobileNet("mobilenet_v3_small", 0.5, taps=["conv12"])
    message = str(err.value)
    assert "conv12" in message and "available" in message
    assert all(f"'{name}'" in message for name in ("conv11", "conv13", "features.0", "features.12"))


@pytest.mark.parametrize("alpha", [0, -0.5, 5])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        TorchvisionMobileNet("mobilenet_v2", alpha)
