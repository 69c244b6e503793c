"""The DataModules of the synthetic sets: each is the reader's DataModule of the set's layout, with
the generator's settings as keywords (the ``data=shapes`` ... configs) turned into the reader's
``generate`` hook, which writes the set on first use in ``prepare_data``. They live here, not
beside the readers, so that reading real data never loads a renderer. ``generator_args`` holds
the generator's keyword arguments.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from mnet_vision.data.attributes import CelebADataModule
from mnet_vision.data.base import SPLITS
from mnet_vision.data.cell_files import make_cells
from mnet_vision.data.coco import CocoDetectionDataModule
from mnet_vision.data.geolocation import GeotaggedDataModule
from mnet_vision.data.identities import IdentityFolderDataModule
from mnet_vision.data.image_folder import ImageFolderDataModule
from mnet_vision.data.synthetic.attributes import DEFAULT_ATTRIBUTE_SPLITS, make_attributes_dataset
from mnet_vision.data.synthetic.geo import make_geo_dataset
from mnet_vision.data.synthetic.identities import DEFAULT_IDENTITIES, DEFAULT_PER_IDENTITY, make_identity_dataset
from mnet_vision.data.synthetic.shapes import (DEFAULT_DETECTION_SPLITS, DEFAULT_SPLITS, make_shapes_dataset,
                                               make_shapes_detection_dataset)


class SyntheticShapesDataModule(ImageFolderDataModule):
    """:class:`~mnet_vision.data.image_folder.ImageFolderDataModule` over the synthetic shapes set,
    generated on first use.

    Args beyond the parent's: ``per_class`` images per class and split, ``image_size`` of the
    stored images, ``generator_seed`` of the images (see
    :func:`mnet_vision.data.synthetic.shapes.make_shapes_dataset`).
    """

    fixed_keywords = ("generate",)

    def __init__(self, root: str, num_classes: int = 10, per_class: dict | None = None, image_size: int = 64,
                 generator_seed: int = 0, **kwargs: Any):
        args = dict(num_classes=num_classes, splits=dict(per_class or DEFAULT_SPLITS), image_size=image_size,
                    seed=generator_seed)
        super().__init__(root, num_classes, generate=partial(make_shapes_dataset, **args), **kwargs)
        self.generator_args = args


class SyntheticDetectionDataModule(CocoDetectionDataModule):
    """:class:`~mnet_vision.data.coco.CocoDetectionDataModule` over the synthetic shapes detection
    set, generated on first use (see :func:`mnet_vision.data.synthetic.shapes.make_shapes_detection_dataset`
    for ``images``, ``image_size``, ``max_objects`` and ``generator_seed``)."""

    fixed_keywords = ("generate",)

    def __init__(self, root: str, num_classes: int = 10, images: dict | None = None, image_size: int = 160,
                 max_objects: int = 5, generator_seed: int = 0, **kwargs: Any):
        args = dict(num_classes=num_classes, splits=dict(images or DEFAULT_DETECTION_SPLITS), image_size=image_size,
                    max_objects=max_objects, seed=generator_seed)
        super().__init__(root, num_classes, generate=partial(make_shapes_detection_dataset, **args), **kwargs)
        self.generator_args = args


class SyntheticIdentityDataModule(IdentityFolderDataModule):
    """:class:`~mnet_vision.data.identities.IdentityFolderDataModule` over the synthetic
    face-identity set, generated on first use, with its val/test verification pairs.

    Args beyond the parent's (see :func:`mnet_vision.data.synthetic.identities.make_identity_dataset`):
    ``identities`` and ``per_identity`` per split, ``image_size`` of the stored images,
    ``generator_seed``, ``pairs_per_fold``. ``pairs`` defaults to the generated files.
    """

    fixed_keywords = ("generate",)

    def __init__(self, root: str, identities: Mapping[str, int] | None = None,
                 per_identity: Mapping[str, int] | None = None, image_size: int = 64, generator_seed: int = 0,
                 pairs_per_fold: int = 30, pairs: Mapping[str, str] | None = None, **kwargs: Any):
        splits = kwargs.get("splits", SPLITS)
        pairs = pairs or {role: f"pairs_{folder}.txt" for role, folder in zip(SPLITS, splits) if role != "train"}
        args = dict(identities=dict(identities or DEFAULT_IDENTITIES),
                    per_identity=dict(per_identity or DEFAULT_PER_IDENTITY), image_size=image_size,
                    pairs_per_fold=pairs_per_fold, seed=generator_seed)
        super().__init__(root, pairs=pairs, generate=partial(make_identity_dataset, **args), **kwargs)
        self.generator_args = args


class SyntheticAttributesDataModule(CelebADataModule):
    """:class:`~mnet_vision.data.attributes.CelebADataModule` over the synthetic multi-attribute
    set, generated on first use.

    Args beyond the parent's: ``images_per_split``, ``image_size``, ``unknown_rate`` (share of
    training labels written as unknown) and ``generator_seed`` (see
    :func:`mnet_vision.data.synthetic.attributes.make_attributes_dataset`).
    """

    fixed_keywords = ("generate",)

    def __init__(self, root: str, num_attributes: int, images_per_split: Mapping[str, int] | None = None,
                 image_size: int = 64, unknown_rate: float = 0.05, generator_seed: int = 0, **kwargs: Any):
        args = dict(splits=dict(images_per_split or DEFAULT_ATTRIBUTE_SPLITS), image_size=image_size,
                    unknown_rate=unknown_rate, seed=generator_seed)
        super().__init__(root, num_attributes, generate=partial(make_attributes_dataset, **args), **kwargs)
        self.generator_args = args


class SyntheticGeotaggedDataModule(GeotaggedDataModule):
    """:class:`~mnet_vision.data.geolocation.GeotaggedDataModule` over the synthetic geotagged set,
    generated on first use with its partitions built from its training photos
    (``<root>/cells/cells_<t_min>_<t_max>.csv``).

    Args beyond the parent's: ``images_per_split``, ``image_size``, ``landmark_rate``,
    ``generator_seed`` (see :func:`mnet_vision.data.synthetic.geo.make_geo_dataset`) and
    ``cells`` (``t_max`` list, coarsest first, ``t_min``, ``min_level``, ``max_level``). With
    ``partitions`` null those are the partitions used.
    """

    fixed_keywords = ("generate",)

    def __init__(self, root: str, num_cells: Sequence[int], partitions: Sequence[str] | None = None,
                 cells: Mapping[str, Any] | None = None, images_per_split: Mapping[str, int] | None = None,
                 image_size: int = 64, landmark_rate: float = 0.25, generator_seed: int = 0, **kwargs: Any):
        cells = dict(cells or {})
        cell_args = dict(t_maxes=list(cells.get("t_max", [1000])), t_min=int(cells.get("t_min", 20)),
                         min_level=int(cells.get("min_level", 2)), max_level=int(cells.get("max_level", 20)))
        built = [str(Path(root) / "cells" / f"cells_{cell_args['t_min']}_{t}.csv") for t in cell_args["t_maxes"]]
        args: dict[str, Any] = dict(image_size=image_size, landmark_rate=landmark_rate, seed=generator_seed)
        if images_per_split:
            args["splits"] = dict(images_per_split)
        super().__init__(root, partitions or built, num_cells, generate=partial(make_geo_dataset, **args), **kwargs)
        self.generator_args, self.cell_args = args, cell_args
        self.builds_cells = partitions is None

    def prepare_data(self) -> None:
        super().prepare_data()  # the photos
        if self.builds_cells and not all(Path(p).is_file() for p in self.partition_files):
            make_cells(self.root / self.files["train"], self.root / "cells", draw_map=True, **self.cell_args)
