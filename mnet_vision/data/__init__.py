"""Datasets and LightningDataModules per on-disk format, transforms, synthetic default sets."""
from mnet_vision.data.attributes import (AttributeCSVDataModule, AttributeDataModule, AttributeDataset,
                                         CelebADataModule, SyntheticAttributesDataModule)
from mnet_vision.data.coco import (CocoDetectionDataModule, CocoDetectionDataset, SyntheticDetectionDataModule,
                                   collate_detection, read_coco)
from mnet_vision.data.geolocation import GeotaggedDataModule, GeotaggedDataset, SyntheticGeotaggedDataModule
from mnet_vision.data.geotagged import read_geotagged_csv
from mnet_vision.data.identities import IdentityFolderDataModule, IdentityFolderDataset, SyntheticIdentityDataModule
from mnet_vision.data.image_folder import ImageFolderDataModule, ImageFolderDataset, SyntheticShapesDataModule
from mnet_vision.data.images import ImageReadError, read_rgb

__all__ = ["AttributeCSVDataModule", "AttributeDataModule", "AttributeDataset", "CelebADataModule",
           "CocoDetectionDataModule", "CocoDetectionDataset", "GeotaggedDataModule", "GeotaggedDataset",
           "IdentityFolderDataModule", "IdentityFolderDataset", "ImageFolderDataModule", "ImageFolderDataset",
           "ImageReadError", "SyntheticAttributesDataModule", "SyntheticDetectionDataModule",
           "SyntheticGeotaggedDataModule", "SyntheticIdentityDataModule", "SyntheticShapesDataModule",
           "collate_detection", "read_coco", "read_geotagged_csv", "read_rgb"]
