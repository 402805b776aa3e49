"""CBAM (Woo et al., ECCV 2018), the attention IGOAS puts around its suppression branch's last stage.

- Channel attention: a shared MLP (C -> C/r -> C, ReLU between, biases) on the average- and the max-pooled
  feature; weights ``sigmoid(mlp(avg) + mlp(max))`` multiply the channels.
- Spatial attention: the channel-mean and channel-max maps, stacked (2×H×W) -> k×k conv (k = 3 in IGOAS) ->
  sigmoid, which multiplies every position.
- CBAM = channel attention, then spatial attention. Shapes are kept: N×C×H×W -> N×C×H×W. Out of place.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        if channels < 1 or reduction < 1:
            raise ValueError(f"ChannelAttention: channels and reduction must be >= 1, got {channels}, {reduction}")
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """N×C channel weights in (0, 1)."""
        mlp = lambda v: self.fc2(torch.relu(self.fc1(v)))  # noqa: E731
        return torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)[:, :, None, None]


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int = 3):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"SpatialAttention: kernel_size must be odd and >= 1, got {kernel_size}")
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """N×1×H×W position weights in (0, 1)."""
        stacked = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(stacked))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weights(x)


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 3):
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


__all__ = ["CBAM", "ChannelAttention", "SpatialAttention"]
