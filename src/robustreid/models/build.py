"""``build_model(cfg, num_classes)`` and ``build_backbone(cfg)``: config -> modules, with readable errors."""

from __future__ import annotations

import logging
from typing import Any, Mapping, Union

from torch import nn

from ..config.loader import ConfigError, from_dict
from .config import ModelConfig
from .registry import BACKBONES, MODELS, POOLINGS

log = logging.getLogger(__name__)


def _as_config(cfg: Union[ModelConfig, Mapping[str, Any]]) -> ModelConfig:
    if isinstance(cfg, ModelConfig):
        return cfg
    if isinstance(cfg, Mapping):
        return from_dict(ModelConfig, cfg, where="model")
    raise TypeError(f"model config: expected a ModelConfig or a mapping, got {type(cfg).__name__}")


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """``BACKBONES[cfg.backbone](last_stride=..., input_size=..., **cfg.backbone_kwargs)``."""
    if cfg.backbone not in BACKBONES:
        raise ConfigError(f"model.backbone: unknown backbone {cfg.backbone!r}; known: {', '.join(sorted(BACKBONES))}")
    kwargs = dict(last_stride=cfg.last_stride, input_size=tuple(cfg.input_size))
    kwargs.update(cfg.backbone_kwargs)
    try:
        return BACKBONES.build(cfg.backbone, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model.backbone_kwargs: backbone {cfg.backbone!r} with {dict(cfg.backbone_kwargs)}: {e}") from None


def build_pooling(name: str, in_channels: int) -> nn.Module:
    if name not in POOLINGS:
        raise ConfigError(f"model.pooling: unknown pooling {name!r}; known: {', '.join(sorted(POOLINGS))}, cls (ViT)")
    return POOLINGS.build(name, in_channels)


def build_model(cfg: Union[ModelConfig, Mapping[str, Any]], num_classes: int, *, load_weights: bool = True):
    """Build ``MODELS[cfg.name](cfg, num_classes)``; when ``cfg.pretrained`` names a file (and ``load_weights``),
    its backbone weights are loaded by key mapping (:func:`load_pretrained`) and the report is kept as
    ``model.pretrained_report``; then the model's ``after_pretrained_load()`` runs if it has one. Pass
    ``load_weights=False`` when a full checkpoint is loaded right after (the pretrained file is then not needed)."""
    cfg = _as_config(cfg)
    if cfg.name not in MODELS:
        raise ConfigError(f"model.name: unknown model {cfg.name!r}; known: {', '.join(sorted(MODELS))}")
    model = MODELS.build(cfg.name, cfg, int(num_classes))
    model.pretrained_report = None
    if cfg.pretrained and load_weights:
        from .pretrained import load_pretrained

        report = load_pretrained(model, cfg.pretrained)
        model.pretrained_report = report
        if callable(getattr(model, "after_pretrained_load", None)):  # IGOAS: copy the last stage to branch 2
            model.after_pretrained_load()
        log.info("pretrained %s: %s", cfg.pretrained, report.summary())
    return model
