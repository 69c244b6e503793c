import pytest
import torch

from mnet_vision.data.synthetic import make_shapes_dataset
from tests.helpers import TINY_IMAGE, TINY_SPLITS


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A tiny synthetic shapes set (10 classes), generated once per test session."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    return make_shapes_dataset(root, splits=TINY_SPLITS, image_size=TINY_IMAGE)
