"""Temporary re-export of :mod:`mnet_vision.inference.fuse` for the benchmarks being moved now
(issue 14); import from ``mnet_vision.inference.fuse`` instead. To be removed."""
from mnet_vision.inference.fuse import fold_batchnorm, prepare_for_inference

__all__ = ["fold_batchnorm", "prepare_for_inference"]
