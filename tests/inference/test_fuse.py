import pytest
import torch
from torch import nn

from mnet_vision.backbones import MobileNetV1, TorchvisionMobileNet
from mnet_vision.heads import ClassifierHead
from mnet_vision.inference.fuse import fold_batchnorm, prepare_for_inference
from mnet_vision.model import BackboneHeadModel
from tests.helpers.models import randomise_batchnorm


@pytest.mark.parametrize("backbone", [lambda: MobileNetV1(0.5, activation="relu6"), lambda: MobileNetV1(0.25, "conv"),
                                      lambda: TorchvisionMobileNet("mobilenet_v3_small", 0.5)])
def test_folded_channels_last_equals_eager(backbone):
    b = backbone()
    model = randomise_batchnorm(BackboneHeadModel(b, ClassifierHead(b.out_taps, 10))).eval()
    fast = prepare_for_inference(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        torch.testing.assert_close(fast(x.contiguous(memory_format=torch.channels_last)), model(x), rtol=0, atol=1e-4)


def test_fold_counts_every_conv_bn_pair():
    model = MobileNetV1(0.25).eval()
    assert fold_batchnorm(model) == 27  # conv0 + 13 x (dw + pw)
    assert fold_batchnorm(model) == 0
