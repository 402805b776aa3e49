"""Shared helpers of the export / index / serve tests: tiny models of every family, with realistic BatchNorm
statistics (calibrated on images, then the affine parameters moved off 1/0 so that folding them matters), and
checkpoints on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
import torch
from torch import nn

from robustreid.engine.checkpoint import save_weights
from robustreid.models import BACKBONES, MODELS, ModelConfig, build_model, calibrate_batchnorm

SIZE = (32, 16)
TINY_RESNET = {"backbone": "resnet18", "backbone_kwargs": {"width": 0.125}}

#: family -> (model config keywords, what must be registered)
FAMILIES: Dict[str, dict] = {
    "bot_resnet": dict(TINY_RESNET),
    "bot_resnet_embed": dict(TINY_RESNET, embed_dim=16),  # BNNeck after a Linear: folded into it
    "cil_gem": dict(TINY_RESNET, pooling="gem", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    "vit": dict(backbone="vit_tiny_patch16", pooling="cls",
                backbone_kwargs={"depth": 1, "embed_dim": 32, "num_heads": 2}),
    "efficientnet_lite": dict(backbone="efficientnet_lite0"),
    "igoas": dict(TINY_RESNET, name="igoas", method_kwargs={"dim": 32}),
    "pcb": dict(TINY_RESNET, name="pcb", method_kwargs={"parts": 2, "part_dim": 16}),
    "fed": dict(TINY_RESNET, name="fed", input_size=(64, 32)),  # 4 stripes need >= 4 rows in the last map
}


def calibrate(model: nn.Module, seed: int = 0) -> nn.Module:
    """BatchNorm running statistics from a few image batches (the model stays in eval mode, only the norms
    update), then affine parameters moved off their init."""
    from robustreid.export.parity import parity_images

    size = tuple(model.input_size)
    calibrate_batchnorm(model, (parity_images(8, size, seed=100 + i) for i in range(2)))
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.data.mul_(0.75 + 0.5 * torch.rand(m.weight.shape, generator=g))
            m.bias.data.add_(0.1 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


def tiny_model(family: str, seed: int = 0, num_classes: int = 10) -> nn.Module:
    kw = dict(FAMILIES[family])
    name = kw.pop("name", "bot")
    method_kwargs = kw.pop("method_kwargs", None)
    if name not in MODELS:
        pytest.skip(f"model {name!r} is not in this checkout")
    if kw["backbone"] not in BACKBONES:
        pytest.skip(f"backbone {kw['backbone']!r} is not in this checkout")
    kw.setdefault("input_size", SIZE)
    cfg = ModelConfig(name=name, **kw)
    if method_kwargs is not None:
        if not hasattr(cfg, "method_kwargs"):
            pytest.skip("ModelConfig has no method_kwargs in this checkout")
        cfg.method_kwargs = method_kwargs
    torch.manual_seed(seed)
    return calibrate(build_model(cfg, num_classes), seed)


def save_checkpoint(model: nn.Module, path: Path) -> Path:
    from dataclasses import asdict

    return save_weights(path, model, config={"model": asdict(model.config)})
