"""Heads: small modules built from a backbone's tap attributes."""
from mnet_vision.heads.classifier import ClassifierHead

__all__ = ["ClassifierHead"]
