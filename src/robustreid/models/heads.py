"""Poolings (GAP / GeM / GMP), the BNNeck and the classifier initialisations of BoT."""

from __future__ import annotations

import torch
from torch import nn

from .registry import POOLINGS


class GlobalAvgPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class GlobalMaxPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(2, 3))


class GeM(nn.Module):
    """Generalised mean pooling ``(mean(clamp(x, eps)^p))^(1/p)`` with a learnable p (init 3).

    p = 1 is average pooling; as p grows it tends to max pooling."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.float()
        y = x.float().clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4g}, eps={self.eps}"


@POOLINGS.register("gap")
def _gap(in_channels: int = 0) -> nn.Module:
    return GlobalAvgPool()


@POOLINGS.register("gmp")
def _gmp(in_channels: int = 0) -> nn.Module:
    return GlobalMaxPool()


@POOLINGS.register("gem")
def _gem(in_channels: int = 0, p: float = 3.0) -> nn.Module:
    return GeM(p)


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d whose bias is frozen at 0 (BoT): the pooled feature f_t -> f_i = BN(f_t)."""

    def __init__(self, dim: int):
        super().__init__(dim)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        self.bias.requires_grad_(False)


def init_classifier(linear: nn.Linear, std: float = 0.001) -> nn.Linear:
    """BoT's classifier init: normal(0, 0.001) weights, zero bias."""
    nn.init.normal_(linear.weight, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear


def init_kaiming(linear: nn.Linear) -> nn.Linear:
    nn.init.kaiming_normal_(linear.weight, a=0, mode="fan_out")
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return linear
