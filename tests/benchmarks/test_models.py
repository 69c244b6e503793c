"""The benchmarks' models, built from the task recipes, are the networks the tables describe: the
same modules and state-dict shapes as backbone -> head built by hand, and Table 1's counts."""
import pytest

from mnet_vision.backbones import MobileNetV1
from mnet_vision.benchmarks.attributes import attribute_student
from mnet_vision.benchmarks.classification import mobilenet_v1_classifier
from mnet_vision.benchmarks.embedding import mobilenet_embedder
from mnet_vision.benchmarks.geo import planet_model
from mnet_vision.complexity import count_complexity
from mnet_vision.heads import ClassifierHead, EmbeddingHead, GeoCellHead
from mnet_vision.model import BackboneHeadModel


def _by_hand(head, *args):
    backbone = MobileNetV1(alpha=0.25, activation="relu6")
    return BackboneHeadModel(backbone, head(backbone.out_taps, *args))


def _shapes(model):
    return [(key, tuple(value.shape)) for key, value in model.state_dict().items()]


@pytest.mark.parametrize("built, by_hand", [
    (lambda: mobilenet_v1_classifier(0.25, 5), lambda: _by_hand(ClassifierHead, 5)),
    (lambda: attribute_student(0.25, 5), lambda: _by_hand(ClassifierHead, 5)),
    (lambda: mobilenet_embedder(0.25), lambda: _by_hand(EmbeddingHead, 128)),
    (lambda: planet_model(0.25, (3, 7)), lambda: _by_hand(GeoCellHead, (3, 7))),
], ids=["classifier", "attributes", "embedding", "planet"])
def test_recipe_models_are_the_hand_built_networks(built, by_hand):
    ours, reference = built(), by_hand()
    assert not ours.training
    assert repr(ours) == repr(reference) and _shapes(ours) == _shapes(reference)


def test_the_classifier_has_table_1s_counts():
    c = count_complexity(mobilenet_v1_classifier(), 224)
    assert round(c.mult_adds / 1e6) == 569 and round(c.params / 1e6, 1) == 4.2  # Table 1: 569 M, 4.2 M
