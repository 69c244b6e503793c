"""face-api's three bodies: taps, channels and map sizes at their input sizes (TF SAME / VALID as
face-api pads), the normalisation as face-api's, and unknown taps refused."""
import pytest
import torch

from mnet_vision.backbones.dlib_resnet import DlibResNet
from mnet_vision.backbones.faceapi_dense import FaceApiDenseNet
from mnet_vision.backbones.faceapi_layers import FACEAPI_MEAN_RGB, FaceApiNormalize, tf_same_max_pool
from mnet_vision.backbones.tiny_xception import TinyXception


def test_dense_net_halves_112_four_times():
    net = FaceApiDenseNet(taps=["dense0", "dense3"]).eval()
    out = net(torch.rand(2, 3, 112, 112))
    assert out["dense0"].shape == (2, 32, 56, 56) and out["dense3"].shape == (2, 256, 7, 7)
    assert [t.channels for t in net.tap_info.values()] == [32, 64, 128, 256]


def test_tiny_xception_gives_7x7x512():
    out = TinyXception(taps=["entry_flow", "exit_flow"]).eval()(torch.rand(1, 3, 112, 112))
    assert out["entry_flow"].shape == (1, 128, 14, 14) and out["exit_flow"].shape == (1, 512, 7, 7)


def test_dlib_resnet_sizes_follow_valid_padding():
    taps = ["conv32_down", "conv64_down", "conv128_down", "conv256_down", "conv256_down_out"]
    out = DlibResNet(taps=taps).eval()(torch.rand(1, 3, 150, 150))
    assert [tuple(out[t].shape[1:]) for t in taps] == [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4),
                                                       (256, 2, 2)]


def test_normalize_is_faceapis_mean_then_255():
    pixels = torch.tensor([[[[0.0]], [[128.0]], [[255.0]]]])
    expected = (pixels - torch.tensor(FACEAPI_MEAN_RGB).view(1, 3, 1, 1)) / 255
    torch.testing.assert_close(FaceApiNormalize()(pixels / 255), expected)


def test_same_max_pool_pads_after_and_never_wins():
    x = -torch.ones(1, 1, 4, 4)
    out = tf_same_max_pool(x, 3, 2)
    assert out.shape == (1, 1, 2, 2) and (out == -1).all()


@pytest.mark.parametrize("cls", [FaceApiDenseNet, TinyXception, DlibResNet])
def test_unknown_tap_is_refused(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: unknown tap"):
        cls(taps=["conv13"])
