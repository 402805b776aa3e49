"""Center loss (Wen et al.; BoT weight 5e-4): ``mean_i ||f_i - c_{y_i}||²`` with learnable centres.

The centres (``loss.centers``, num_classes × feat_dim) are parameters of the loss, not of the model. BoT trains
them with their own SGD at lr 0.5 and divides their gradient by the loss weight before stepping (so the weight
scales only the model's gradient): the engine puts ``loss.parameters()`` in their own optimiser / param group."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from .base import LOSSES
from .utils import get_output, get_targets


class CenterLoss(nn.Module):
    def __init__(self, num_classes: int, feat_dim: int, feat_key: str = "feat", pids_key: str = "pids"):
        super().__init__()
        if num_classes <= 0 or feat_dim <= 0:
            raise ValueError(f"center: num_classes and feat_dim must be positive, got {num_classes}, {feat_dim}")
        self.num_classes, self.feat_dim = int(num_classes), int(feat_dim)
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))
        self.feat_key, self.pids_key = feat_key, pids_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        feat = get_output(outputs, self.feat_key, "center").float()
        if feat.dim() != 2 or feat.shape[1] != self.feat_dim:
            raise ValueError(f"center: outputs[{self.feat_key!r}] must be N×{self.feat_dim}, got {tuple(feat.shape)}")
        labels = get_targets(batch, self.pids_key, feat.shape[0], "center").to(feat.device)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"center: {self.pids_key} must be in [0, {self.num_classes}), "
                             f"got {int(labels.min())}..{int(labels.max())}")
        c = self.centers[labels].float()
        return (feat - c).pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).mean()

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, feat_key={self.feat_key!r}"


@LOSSES.register("center")
def build_center(num_classes: Optional[int] = None, feat_dim: Optional[int] = None, feat_key: str = "feat",
                 pids_key: str = "pids") -> CenterLoss:
    """``{"name": "center", "weight": 5e-4}``; the engine adds ``num_classes`` and ``feat_dim``."""
    if num_classes is None or feat_dim is None:
        raise ValueError("center: needs num_classes and feat_dim (the engine passes the model's num_classes / feat_dim)")
    return CenterLoss(num_classes, feat_dim, feat_key, pids_key)
