"""Weight conversion from timm's mobilenetv1_100 and torchvision's MobileNet V2/V3: logit parity."""
import pytest
import torch
import torchvision
from torch import nn

from mnet_vision.backbones import MobileNetV1, TorchvisionMobileNet
from mnet_vision.backbones.convert import timm_mobilenetv1_to_mnet, torchvision_mobilenet_to_mnet
from mnet_vision.checkpoints import init_from
from mnet_vision.heads import ClassifierHead
from mnet_vision.model import BackboneHeadModel
from tests.helpers.models import randomise_batchnorm

timm = pytest.importorskip("timm")


def _randomise(model: nn.Module) -> nn.Module:
    """Non-trivial BN running stats / affine params and a non-tiny classifier, so parity means something."""
    randomise_batchnorm(model)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.05)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def _v1_model(num_classes: int = 1000, alpha: float = 1.0) -> BackboneHeadModel:
    backbone = MobileNetV1(alpha=alpha, activation="relu6")
    return BackboneHeadModel(backbone, ClassifierHead(backbone.out_taps, num_classes))


def _v2_model(num_classes: int = 1000) -> BackboneHeadModel:
    backbone = TorchvisionMobileNet("mobilenet_v2", 1.0)
    return BackboneHeadModel(backbone, ClassifierHead(backbone.out_taps, num_classes))


@pytest.fixture(scope="module")
def timm_v1():
    torch.manual_seed(0)
    return _randomise(timm.create_model("mobilenetv1_100", pretrained=False))


def _max_logit_diff(a: nn.Module, b: nn.Module, size: int = 224) -> float:
    torch.manual_seed(1)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        la, lb = a.eval()(x), b.eval()(x)
    assert la.shape == lb.shape == (2, 1000)
    assert la.abs().max() > 0.1  # not a degenerate comparison
    return (la - lb).abs().max().item()


def test_timm_mobilenetv1_parity(timm_v1):
    converted = timm_mobilenetv1_to_mnet(timm_v1.state_dict())
    model = _v1_model()
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    assert _max_logit_diff(model, timm_v1) < 1e-4


def test_timm_block_numbering():
    state = {k: torch.zeros(1) for k in ("blocks.1.1.conv_dw.weight", "blocks.0.0.bn2.running_var",
                                           "blocks.1.0.conv_pw.weight", "blocks.10.0.bn1.bias")}
    out = timm_mobilenetv1_to_mnet(state)
    assert set(out) == {"backbone.features.conv3.dw.conv.weight", "backbone.features.conv1.pw.bn.running_var",
                        "backbone.features.conv2.pw.conv.weight", "backbone.features.conv4.dw.bn.bias"}


def test_timm_conversion_rejects_other_state_dicts():
    with pytest.raises(ValueError, match="unexpected keys"):
        timm_mobilenetv1_to_mnet({"features.0.0.weight": torch.zeros(1), "conv_stem.weight": torch.zeros(1)})


def test_init_from_timm_file(timm_v1, tmp_path):
    path = tmp_path / "mobilenetv1_100.pth"
    torch.save(timm_v1.state_dict(), path)
    model = _v1_model()
    init_from(model, str(path), scope="model", format="timm")
    assert _max_logit_diff(model, timm_v1) < 1e-4


def test_init_from_timm_file_backbone_scope(timm_v1, tmp_path):
    path = tmp_path / "mobilenetv1_100.pth"
    torch.save(timm_v1.state_dict(), path)
    model = _v1_model(num_classes=10)
    head_before = {k: v.clone() for k, v in model.head.state_dict().items()}
    init_from(model, str(path), scope="backbone", format="timm")
    torch.testing.assert_close(model.backbone.features.conv0.conv.weight, timm_v1.conv_stem.weight)
    torch.testing.assert_close(model.backbone.features.conv13.pw.bn.running_var, timm_v1.blocks[4][1].bn2.running_var)
    for k, v in model.head.state_dict().items():
        assert torch.equal(v, head_before[k])


def test_init_from_timm_file_wrong_width_fails(timm_v1, tmp_path):
    path = tmp_path / "mobilenetv1_100.pth"
    torch.save(timm_v1.state_dict(), path)
    with pytest.raises(ValueError, match="shape"):
        init_from(_v1_model(alpha=0.5), str(path), scope="model", format="timm")


@pytest.fixture(scope="module")
def tv_v2():
    torch.manual_seed(0)
    return _randomise(torchvision.models.mobilenet_v2(weights=None))


def test_torchvision_v2_conversion_parity(tv_v2):
    converted = torchvision_mobilenet_to_mnet(tv_v2.state_dict())
    model = _v2_model()
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    # torchvision's V2 classifier is Dropout + Linear: in eval mode the logits must match
    assert _max_logit_diff(model, tv_v2, size=128) < 1e-4


def test_init_from_torchvision_v2_file(tv_v2, tmp_path):
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(tv_v2.state_dict(), path)
    model = _v2_model()
    init_from(model, str(path), scope="model", format="torchvision")
    assert _max_logit_diff(model, tv_v2, size=128) < 1e-4


def test_torchvision_v3_classifier_dropped_backbone_loads(tmp_path):
    tv = _randomise(torchvision.models.mobilenet_v3_small(weights=None))
    converted = torchvision_mobilenet_to_mnet(tv.state_dict())
    assert converted and all(k.startswith("backbone.features.") for k in converted)
    path = tmp_path / "mobilenet_v3_small.pth"
    torch.save(tv.state_dict(), path)
    backbone = TorchvisionMobileNet("mobilenet_v3_small", 1.0)
    model = BackboneHeadModel(backbone, ClassifierHead(backbone.out_taps, 5))
    init_from(model, str(path), scope="backbone", format="torchvision")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().backbone(x)["conv13"], tv.features(x), rtol=0, atol=1e-5)
