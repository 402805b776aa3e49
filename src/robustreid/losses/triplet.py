"""Batch-hard triplet loss (Hermans et al.; BoT margin 0.3, CIL soft margin).

For each anchor a: d_ap = largest distance to a sample of the same identity (other than itself), d_an = smallest
distance to a sample of another identity; loss = mean over anchors of ``max(0, d_ap - d_an + margin)`` or, soft
margin, ``softplus(d_ap - d_an) = log(1 + exp(d_ap - d_an))``. Anchors without a positive or without a negative
in the batch are skipped; a batch with no valid anchor gives 0 (with a graph, so backward still works)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import LOSSES
from .utils import get_output, get_targets, pairwise_euclidean


def hard_mining(dist: torch.Tensor, labels: torch.Tensor):
    """-> (d_ap, d_an, valid) for every anchor (hardest positive other than itself, hardest negative)."""
    n = dist.shape[0]
    same = labels.view(-1, 1) == labels.view(1, -1)
    eye = torch.eye(n, dtype=torch.bool, device=dist.device)
    pos = same & ~eye
    neg = ~same
    d_ap = torch.where(pos, dist, torch.full_like(dist, float("-inf"))).amax(dim=1)
    d_an = torch.where(neg, dist, torch.full_like(dist, float("inf"))).amin(dim=1)
    valid = pos.any(dim=1) & neg.any(dim=1)
    return d_ap, d_an, valid


class TripletLoss(nn.Module):
    def __init__(self, margin: float = 0.3, soft: bool = False, normalize: bool = False, feat_key: str = "feat",
                 pids_key: str = "pids"):
        super().__init__()
        if margin < 0:
            raise ValueError(f"triplet: margin must be >= 0, got {margin}")
        self.margin = float(margin)
        self.soft = bool(soft) or self.margin == 0.0
        self.normalize = bool(normalize)
        self.feat_key, self.pids_key = feat_key, pids_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        feat = get_output(outputs, self.feat_key, "triplet").float()
        if feat.dim() != 2:
            feat = feat.flatten(1)
        labels = get_targets(batch, self.pids_key, feat.shape[0], "triplet").to(feat.device)
        if self.normalize:
            feat = F.normalize(feat, dim=1)
        dist = pairwise_euclidean(feat)
        d_ap, d_an, valid = hard_mining(dist, labels)
        if not bool(valid.any()):
            return feat.sum() * 0.0
        diff = d_ap[valid] - d_an[valid]
        if self.soft:
            return F.softplus(diff).mean()
        return F.relu(diff + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, soft={self.soft}, normalize={self.normalize}, feat_key={self.feat_key!r}"


@LOSSES.register("triplet")
def build_triplet(margin: float = 0.3, soft: bool = False, normalize: bool = False, feat_key: str = "feat",
                  pids_key: str = "pids", num_classes: Optional[int] = None,
                  feat_dim: Optional[int] = None) -> TripletLoss:
    """``{"name": "triplet", "margin": 0.3}``; ``margin: 0`` or ``soft: true`` -> soft margin."""
    return TripletLoss(margin, soft, normalize, feat_key, pids_key)
