"""Contract of the losses: each is an ``nn.Module`` called as ``loss(outputs, batch) -> scalar tensor``.

``outputs`` is the dict the model returns in train mode (e.g. ``logits``, ``feat`` = pooled feature before the
BNNeck, ``feat_bn``, ``feat_map``); when the batch carried extra views (AugMix), ``outputs["views"]`` is a list of
such dicts, one per view. ``batch`` is the training batch dict (``pids``, optional ``occ_mask``,
``stripe_targets``...). Losses are combined by weight from the config (``[{"name": "ce", "weight": 1.0,
"epsilon": 0.1}, {"name": "triplet", "margin": 0.3}]``) and each part is logged separately.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Tuple

import torch
from torch import nn

from ..registry import Registry

#: name -> builder(**kwargs) -> nn.Module with forward(outputs: dict, batch: dict) -> scalar tensor
LOSSES = Registry("loss")


class CombinedLoss(nn.Module):
    """Weighted sum of named losses; returns ``(total, {name: unweighted value})``."""

    def __init__(self, parts: Sequence[Tuple[str, float, nn.Module]]):
        super().__init__()
        self.names = [n for n, _, _ in parts]
        self.weights = [float(w) for _, w, _ in parts]
        self.losses = nn.ModuleList([m for _, _, m in parts])

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]):
        total = None
        logs: Dict[str, torch.Tensor] = {}
        for name, w, loss in zip(self.names, self.weights, self.losses):
            value = loss(outputs, batch)
            logs[name] = value.detach()
            total = w * value if total is None else total + w * value
        if total is None:
            raise ValueError("no loss configured")
        return total, logs


def build_losses(specs: Sequence[Mapping[str, Any]]) -> CombinedLoss:
    """``[{"name": "ce", "weight": 1.0, ...kwargs}, ...]`` -> :class:`CombinedLoss`.

    Two losses of the same name get suffixes (``ce``, ``ce_1``) in the logs; ``num_classes`` / ``feat_dim`` may
    be passed in the spec by the engine for losses that need them (center loss)."""
    parts = []
    seen: Dict[str, int] = {}
    for i, spec in enumerate(specs):
        spec = dict(spec)
        if "name" not in spec:
            raise ValueError(f"loss #{i}: missing 'name' (known: {', '.join(LOSSES.names())})")
        name = spec.pop("name")
        weight = spec.pop("weight", 1.0)
        try:
            module = LOSSES.build(name, **spec)
        except TypeError as e:
            raise ValueError(f"loss {name!r}: bad arguments {spec}: {e}") from None
        key = name if name not in seen else f"{name}_{seen[name]}"
        seen[name] = seen.get(name, 0) + 1
        parts.append((key, weight, module))
    return CombinedLoss(parts)
