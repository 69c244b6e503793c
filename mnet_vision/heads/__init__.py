"""Heads: small modules built from a backbone's tap attributes."""
from mnet_vision.heads.classifier import ClassifierHead
from mnet_vision.heads.embedding import EmbeddingHead
from mnet_vision.heads.faster_rcnn import BackboneStagesBoxHead, FasterRCNNHead
from mnet_vision.heads.geocells import GeoCellHead
from mnet_vision.heads.ssd import SSD300Head, SSDAnchorGenerator

__all__ = ["BackboneStagesBoxHead", "ClassifierHead", "EmbeddingHead", "FasterRCNNHead", "GeoCellHead", "SSD300Head",
           "SSDAnchorGenerator"]
