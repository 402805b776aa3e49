"""Batch DropBlock (Dai et al., "Batch DropBlock Network", ICCV 2019): zero the same feature-map region for every
sample of a batch. A model-side ``nn.Module``: put it on a feature map (e.g. after the last stage); it is active
only in training mode and the identity in eval mode.

The region is ``round(h_ratio·H)`` rows by ``round(w_ratio·W)`` columns (defaults 0.3 and 1.0: a horizontal band),
at a uniform position, redrawn at every forward pass. Randomness from ``generator`` when given, else from torch's
global generator (seeded by the engine). The last mask (1 kept, 0 dropped; 1×1×H×W) is kept in ``last_mask``.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class BatchDropBlock(nn.Module):
    def __init__(self, h_ratio: float = 0.3, w_ratio: float = 1.0, generator: Optional[torch.Generator] = None):
        super().__init__()
        if not (0.0 <= h_ratio <= 1.0 and 0.0 <= w_ratio <= 1.0):
            raise ValueError(f"BatchDropBlock: h_ratio and w_ratio must be in [0, 1], got {h_ratio}, {w_ratio}")
        self.h_ratio, self.w_ratio = float(h_ratio), float(w_ratio)
        self.generator = generator
        self.last_mask: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        H, W = x.shape[-2:]
        rh, rw = int(round(self.h_ratio * H)), int(round(self.w_ratio * W))
        top = int(torch.randint(0, H - rh + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, W - rw + 1, (1,), generator=self.generator))
        mask = x.new_ones((1, 1, H, W))
        mask[..., top:top + rh, left:left + rw] = 0
        self.last_mask = mask
        return x * mask

    def extra_repr(self) -> str:
        return f"h_ratio={self.h_ratio}, w_ratio={self.w_ratio}"


__all__ = ["BatchDropBlock"]
