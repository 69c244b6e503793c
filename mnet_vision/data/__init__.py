"""Datasets and LightningDataModules per on-disk format, transforms, synthetic default sets.

The package init imports nothing, so Lightning-free users (:mod:`mnet_vision.images`,
:mod:`mnet_vision.data.transforms`) do not pay for the DataModules and ``lightning``: import
each name from the module that defines it (``mnet_vision.data.coco.CocoDetectionDataModule``).
"""
