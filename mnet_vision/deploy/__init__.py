"""Preparing trained models for inference and export."""
from mnet_vision.deploy.fuse import fold_batchnorm, prepare_for_inference

__all__ = ["fold_batchnorm", "prepare_for_inference"]
