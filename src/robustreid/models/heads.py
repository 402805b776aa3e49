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

    p = 1 is average pooling; as p grows it tends to max pooling. The exponent used is ``max(p, p_min)`` (ours, not
    in the CIL / fast-reid code, which leave p free): below 1 GeM stops being a mean between average and max pooling
    and, on sparse maps (ReLU6 heads where most cells are 0), a p driven to or below 0 turns the output into a
    function of ``eps`` alone — the same feature for every image. That collapse was hit on real data (CIL recipe on
    the pretrained EfficientNet-Lite0, SGD 0.008: p fell from 3 to −0.13 in 150 steps, after which the loss stayed at
    ln(751) + ln 2). With the floor, such a p pools as the average and the gradient that pushed it down stops."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6, learnable: bool = True, p_min: float = 1.0):
        super().__init__()
        if p < p_min:
            raise ValueError(f"GeM: p ({p}) must be >= p_min ({p_min})")
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps
        self.p_min = float(p_min)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.float().clamp(min=self.p_min)
        y = x.float().clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4g}, eps={self.eps}, p_min={self.p_min}"


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
