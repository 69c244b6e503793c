"""The tiny run settings as Hydra overrides: ``debug=tiny_<family>`` (``conf/debug/``, what a user
runs too) plus the data root and the caller's extras, so runs take seconds."""
from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from mnet_vision.config import CONF_DIR, compose
from mnet_vision.geo.cells import GeoCellPartition


def _debug(name: str) -> dict:
    """``conf/debug/<name>.yaml``'s own keys (its ``tiny`` defaults left out), as plain data."""
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / "debug" / f"{name}.yaml"))


# The tiny sets' sizes, read from the debug configs so a fixture that generates a set by hand
# (conftest.shapes_root) and the runs that read it agree.
TINY_SPLITS: dict[str, int] = _debug("tiny_shapes")["data"]["per_class"]
TINY_IMAGE: int = _debug("tiny_shapes")["data"]["image_size"]
TINY_DETECTION_IMAGES: dict[str, int] = _debug("tiny_detection")["data"]["images"]
TINY_IDENTITIES: dict[str, int] = _debug("tiny_faces")["data"]["identities"]
TINY_PER_IDENTITY: dict[str, int] = _debug("tiny_faces")["data"]["per_identity"]
TINY_ATTRIBUTE_IMAGES: dict[str, int] = _debug("tiny_attributes")["data"]["images_per_split"]
TINY_GEO_IMAGES: dict[str, int] = _debug("tiny_geo")["data"]["images_per_split"]


def tiny_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of shapes classification on the tiny shapes set."""
    return ["experiment=shapes", "debug=tiny_shapes", f"data.root={root}", *extra]


def tiny_detection_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of the default detection job (SSD) on a tiny set."""
    return ["debug=tiny_detection", f"data.root={root}", *extra]


def tiny_identity_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long triplet run (task=facenet_triplet) on a tiny synthetic
    identity set: 8 training identities x 4 images, 6 x 3 for val and test, 32x32, 16-D embeddings,
    20 epochs of 2 steps."""
    return ["task=facenet_triplet", "debug=tiny_faces", f"data.root={root}", *extra]


def tiny_attribute_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of task=attributes on a tiny synthetic attribute set:
    48 training images at 32x32, 10 epochs of 3 steps (BatchNorm's running statistics must settle
    before the eval-mode network ranks images apart). ``task=attributes`` comes first."""
    return ["task=attributes", "debug=tiny_attributes", f"data.root={root}", *extra]


def tiny_geo_overrides(root: Path | str, num_cells: list[int] | None = None, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of task=planet on a tiny synthetic geotagged set with
    two partitions (t_max 80 and 25, t_min 3); ``num_cells`` as :func:`tiny_geo_cell_counts` finds them."""
    return ["task=planet", "debug=tiny_geo", f"data.root={root}",
            f"data.num_cells=[{','.join(str(n) for n in num_cells or [1, 1])}]", *extra]


def tiny_geo_cell_counts(root: Path | str, *extra: str) -> list[int]:
    """Generate the tiny geotagged set (with ``extra`` overrides) and its partitions (as a user runs
    make_cells before training: the model is built for the partitions' cell counts); their counts."""
    data = instantiate(compose(tiny_geo_overrides(root, None, *extra)).data)
    data.prepare_data()
    return [len(GeoCellPartition.read_csv(path)) for path in data.partition_files]
