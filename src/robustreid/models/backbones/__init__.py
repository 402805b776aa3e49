"""Backbones in plain torch (no torchvision / timm), with their parameter names so pretrained files map 1:1."""

from . import efficientnet_lite, resnet, vit  # noqa: F401  (registration)
from .efficientnet_lite import EfficientNetLite
from .resnet import ResNet
from .vit import VisionTransformer

__all__ = ["EfficientNetLite", "ResNet", "VisionTransformer"]
