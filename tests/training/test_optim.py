from torch import nn

from mnet_vision.backbones import MobileNetV1
from mnet_vision.heads import ClassifierHead
from mnet_vision.model import BackboneHeadModel
from mnet_vision.training.optim import is_depthwise, weight_decay_groups


def test_no_decay_on_depthwise_bn_and_bias():
    backbone = MobileNetV1(alpha=0.25)
    model = BackboneHeadModel(backbone, ClassifierHead(backbone.out_taps, 10))
    decay, no_decay = weight_decay_groups(model, 4e-5)
    assert decay["weight_decay"] == 4e-5 and no_decay["weight_decay"] == 0.0
    decay_ids = {id(p) for p in decay["params"]}
    assert len(decay_ids) + len(no_decay["params"]) == len(list(model.parameters()))
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            should_decay = name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear)) and not is_depthwise(module)
            assert (id(p) in decay_ids) == should_decay, (module, name)
    # conv0 + 13 pointwise convs + FC weight decay; 13 depthwise filters do not
    assert len(decay["params"]) == 15
    assert sum(is_depthwise(m) for m in model.modules()) == 13
