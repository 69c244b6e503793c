"""Shared test settings: a tiny synthetic shapes set and the overrides that make runs take seconds."""
from __future__ import annotations

from pathlib import Path

TINY_SPLITS = {"train": 6, "val": 3, "test": 3}
TINY_IMAGE = 32


def tiny_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of shapes classification on the tiny shapes set."""
    return [
        "task=shapes",
        f"data.root={root}",
        *(f"data.per_class.{split}={n}" for split, n in TINY_SPLITS.items()),
        f"data.image_size={TINY_IMAGE}",
        f"task.input_size={TINY_IMAGE}",
        "data.batch_size=16",
        "data.num_workers=0",
        "backbone.alpha=0.25",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        *extra,
    ]


TINY_DETECTION_IMAGES = {"train2017": 8, "val2017": 4, "test2017": 4}
TINY_DETECTION_SIZE = 64


def tiny_detection_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of the default detection job (SSD) on a tiny set."""
    return [
        f"data.root={root}",
        "data.images={" + ",".join(f"{k}:{v}" for k, v in TINY_DETECTION_IMAGES.items()) + "}",
        f"data.image_size={TINY_DETECTION_SIZE}",
        "task.input_size=96",
        "data.batch_size=4",
        "data.num_workers=0",
        "backbone.alpha=0.25",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "task.module.pictures=2",
        "logger=csv",
        *extra,
    ]


def randomise_batchnorm(model):
    """Give every BatchNorm non-trivial running stats and affine parameters (in place), so an
    equality test between two implementations means something. Returns ``model``."""
    import torch
    from torch import nn

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


TINY_IDENTITIES = {"train": 8, "val": 6, "test": 6}
TINY_PER_IDENTITY = {"train": 4, "val": 3, "test": 3}


def tiny_identity_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long triplet run (task=facenet_triplet) on a tiny synthetic
    identity set: 8 training identities x 4 images, 6 x 3 for val and test, 32x32, 16-D embeddings,
    20 epochs of 2 steps."""
    return [
        "task=facenet_triplet",
        f"data.root={root}",
        "data.identities={" + ",".join(f"{k}:{v}" for k, v in TINY_IDENTITIES.items()) + "}",
        "data.per_identity={" + ",".join(f"{k}:{v}" for k, v in TINY_PER_IDENTITY.items()) + "}",
        "data.image_size=32",
        "data.pairs_per_fold=2",
        "task.input_size=32",
        "task.embedding_dim=16",
        "task.module.monitor=auc",  # 153 val pairs: too few for TAR at FAR 1e-3
        "data.batch_size=16",
        "data.images_per_identity=4",
        "data.num_workers=0",
        "backbone.alpha=0.25",
        # 40 steps, one validation: BatchNorm's running statistics must settle, or the eval-mode
        # network maps every image to nearly the same embedding and searches return ties
        "trainer.max_epochs=20",
        "trainer.check_val_every_n_epoch=20",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        *extra,
    ]


TINY_ATTRIBUTE_IMAGES = {"train": 48, "val": 24, "test": 24}


def tiny_attribute_overrides(root: Path | str, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of task=attributes on a tiny synthetic attribute set:
    48 training images at 32x32, 10 epochs of 3 steps (BatchNorm's running statistics must settle
    before the eval-mode network ranks images apart)."""
    return [
        "task=attributes",
        f"data.root={root}",
        "data.images_per_split={" + ",".join(f"{k}:{v}" for k, v in TINY_ATTRIBUTE_IMAGES.items()) + "}",
        "data.image_size=32",
        "task.input_size=32",
        "data.batch_size=16",
        "data.num_workers=0",
        "backbone.alpha=0.25",
        "task.module.optimizer.lr=0.002",
        "task.module.optimizer.eps=1.0e-3",
        "trainer.max_epochs=10",
        "trainer.check_val_every_n_epoch=5",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        *extra,
    ]


TINY_GEO_IMAGES = {"train": 240, "val": 40, "test": 40}


def tiny_geo_overrides(root: Path | str, num_cells: list[int] | None = None, *extra: str) -> list[str]:
    """Hydra overrides for a seconds-long run of task=planet on a tiny synthetic geotagged set with
    two partitions (t_max 80 and 25, t_min 3); ``num_cells`` as :func:`tiny_geo_cell_counts` finds them."""
    return [
        "task=planet",
        f"data.root={root}",
        "data.images_per_split={" + ",".join(f"{k}:{v}" for k, v in TINY_GEO_IMAGES.items()) + "}",
        "data.image_size=32",
        "data.cells.t_max=[80,25]",
        "data.cells.t_min=3",
        f"data.num_cells=[{','.join(str(n) for n in num_cells or [1, 1])}]",
        "task.input_size=32",
        "data.batch_size=32",
        "data.num_workers=0",
        "backbone.alpha=0.25",
        "trainer.max_epochs=6",
        "trainer.check_val_every_n_epoch=3",
        "trainer.enable_progress_bar=false",
        "trainer.num_sanity_val_steps=0",
        "logger=csv",
        *extra,
    ]


def tiny_geo_cell_counts(root: Path | str, *extra: str) -> list[int]:
    """Generate the tiny geotagged set (with ``extra`` overrides) and its partitions (as a user runs
    make_cells before training: the model is built for the partitions' cell counts); their counts."""
    from hydra.utils import instantiate

    from mnet_vision.config import compose
    from mnet_vision.geo.cells import GeoCellPartition

    data = instantiate(compose(tiny_geo_overrides(root, None, *extra)).data)
    data.prepare_data()
    return [len(GeoCellPartition.read_csv(path)) for path in data.partition_files]
