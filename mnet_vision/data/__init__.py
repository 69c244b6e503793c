"""Datasets and LightningDataModules per on-disk format, transforms, synthetic default sets."""
from mnet_vision.data.image_folder import ImageFolderDataModule, ImageFolderDataset, SyntheticShapesDataModule
from mnet_vision.data.images import ImageReadError, read_rgb

__all__ = ["ImageFolderDataModule", "ImageFolderDataset", "ImageReadError", "SyntheticShapesDataModule", "read_rgb"]
