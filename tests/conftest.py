import pytest
import torch

from mnet_vision.data.synthetic.shapes import make_shapes_dataset
from tests.helpers.configs import (
    TINY_IMAGE,
    TINY_SPLITS,
    tiny_attribute_overrides,
    tiny_detection_overrides,
    tiny_geo_cell_counts,
    tiny_geo_overrides,
    tiny_identity_overrides,
)

# Tiny tensors: one thread is faster and does not oversubscribe the 2 CI cores while subprocess
# tests (the tools, DDP) run their own threads.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A tiny synthetic shapes set (10 classes), generated once per test session."""
    root = tmp_path_factory.mktemp("data") / "shapes"
    return make_shapes_dataset(root, splits=TINY_SPLITS, image_size=TINY_IMAGE)


@pytest.fixture(scope="session")
def detection_run(tmp_path_factory):
    """One seconds-long run of the default detection job (SSD) on a tiny synthetic COCO set:
    its metrics dict (``run_dir``, ``best_checkpoint``, ``test/AP`` ...); data under ``<run>/../data``."""
    from mnet_vision.config import compose
    from mnet_vision.training import train

    root = tmp_path_factory.mktemp("det")
    return train(compose(tiny_detection_overrides(root / "data")), run_dir=root / "run")


@pytest.fixture(scope="session")
def embedding_run(tmp_path_factory):
    """One seconds-long triplet run (task=facenet_triplet) on a tiny synthetic identity set: its
    metrics dict (``run_dir``, ``best_checkpoint`` ...); data under ``<run>/../data``."""
    from mnet_vision.config import compose
    from mnet_vision.training import train

    root = tmp_path_factory.mktemp("faces")
    return train(compose(tiny_identity_overrides(root / "data")), run_dir=root / "run")


@pytest.fixture(scope="session")
def attribute_run(tmp_path_factory):
    """One seconds-long run of task=attributes on a tiny synthetic attribute set: its metrics dict
    (``run_dir``, ``best_checkpoint``, ``test/mean_ap`` ...); data under ``<run>/../data``."""
    from mnet_vision.config import compose
    from mnet_vision.training import train

    root = tmp_path_factory.mktemp("attributes")
    return train(compose(tiny_attribute_overrides(root / "data")), run_dir=root / "run")


@pytest.fixture(scope="session")
def geo_run(tmp_path_factory):
    """One seconds-long PlaNet run (task=planet, two partitions) on a tiny synthetic geotagged set:
    its metrics dict (``run_dir``, ``best_checkpoint`` ...); data under ``<run>/../data``."""
    from mnet_vision.config import compose
    from mnet_vision.training import train

    root = tmp_path_factory.mktemp("geo")
    counts = tiny_geo_cell_counts(root / "data")
    return train(compose(tiny_geo_overrides(root / "data", counts)), run_dir=root / "run")
