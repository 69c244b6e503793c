"""face-api's fc heads: output shapes and meanings, and a map of the wrong size refused naming it."""
import pytest
import torch

from mnet_vision.backbones.taps import Tap
from mnet_vision.heads.faceapi import EXPRESSIONS, AgeGenderHead, DescriptorHead, ExpressionHead, LandmarkHead


def test_heads_give_faceapis_outputs():
    torch.manual_seed(0)
    dense = {"dense3": torch.randn(2, 256, 7, 7)}
    assert LandmarkHead({"dense3": Tap(256, 16)})(dense).shape == (2, 68, 2)
    probabilities = ExpressionHead({"dense3": Tap(256, 16)})(dense)
    assert probabilities.shape == (2, len(EXPRESSIONS))
    torch.testing.assert_close(probabilities.sum(1), torch.ones(2))
    out = AgeGenderHead({"exit_flow": Tap(512, 16)})({"exit_flow": torch.randn(2, 512, 7, 7)})
    assert out["age"].shape == (2,) and out["gender"].shape == (2, 2)
    head = DescriptorHead({"conv256_down_out": Tap(256, 64)})
    assert head.fc.bias is None
    assert head({"conv256_down_out": torch.randn(2, 256, 2, 2)}).shape == (2, 128)


def test_a_map_of_another_input_size_is_refused():
    head = LandmarkHead({"dense3": Tap(256, 16)})
    with pytest.raises(ValueError, match=r"LandmarkHead: the pooled \(9, 9\) map gives 1024 features, "
                                         r"the fc takes 256"):
        head({"dense3": torch.randn(1, 256, 9, 9)})
    with pytest.raises(ValueError, match=r"smaller than the 7x7 pool"):
        head({"dense3": torch.randn(1, 256, 4, 4)})
    with pytest.raises(ValueError, match="takes one tap"):
        LandmarkHead({"a": Tap(1, 1), "b": Tap(1, 1)})
