"""Models: backbones (ResNet / IBN-a / ViT in plain torch), poolings and BNNeck, method models (BoT, ...).

Public API::

    from robustreid.models import ModelConfig, build_model, load_pretrained, check_state_dict
    model = build_model(ModelConfig(backbone="resnet18", backbone_kwargs={"width": 0.5}), num_classes=751)
    model.train()(images)  # dict: logits, feat, feat_bn, feat_map
    model.eval()(images)   # N×D embedding

A new method is a new module here that registers a builder in ``MODELS`` (imported below).
"""

from . import backbones, heads  # noqa: F401  (registration)
from . import bot  # noqa: F401
from . import fed  # noqa: F401  (registration)
from . import igoas, pcb  # noqa: F401  (registration)
from .base import ReidModel, calibrate_batchnorm, count_parameters, to_normalized
from .bot import BoT
from .build import build_backbone, build_model, build_pooling
from .config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from .heads import BNNeck, GeM, GlobalAvgPool, GlobalMaxPool
from .pretrained import (
    CheckpointMismatchError,
    LoadReport,
    check_state_dict,
    diff_state_dict,
    load_pretrained,
    read_state_dict,
)
from .registry import BACKBONES, HEADS, MODELS, POOLINGS

__all__ = [
    "BACKBONES", "HEADS", "MODELS", "POOLINGS", "BNNeck", "BoT", "CheckpointMismatchError", "GeM", "GlobalAvgPool",
    "GlobalMaxPool", "IMAGENET_MEAN", "IMAGENET_STD", "LoadReport", "ModelConfig", "ReidModel", "build_backbone",
    "build_model", "build_pooling", "calibrate_batchnorm", "check_state_dict", "count_parameters",
    "diff_state_dict", "load_pretrained", "read_state_dict", "to_normalized",
]
