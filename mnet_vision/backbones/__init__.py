"""Backbones: every one returns named feature maps (taps) with known channels and stride."""
from mnet_vision.backbones.mobilenet_v1 import MobileNetV1
from mnet_vision.backbones.taps import Tap, select_taps
from mnet_vision.backbones.torchvision_mobilenets import TorchvisionMobileNet

__all__ = ["MobileNetV1", "Tap", "TorchvisionMobileNet", "select_taps"]
