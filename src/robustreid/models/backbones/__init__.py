"""Backbones in plain torch (no torchvision / timm), with their parameter names so pretrained files map 1:1."""

from . import resnet, vit  # noqa: F401  (registration)
from .resnet import ResNet
from .vit import VisionTransformer

__all__ = ["ResNet", "VisionTransformer"]
