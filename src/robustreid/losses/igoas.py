"""IGOAS's losses, as its released training computes them.

- ``igoas_ce``: three label-smoothed cross-entropies (classifier 1 on the global branch, 2 on the suppression
  branch, 3 on their concatenation), combined as ``sum_i softmax(l)_i · l_i`` with ``l = [l1, l2, l3]``: the
  largest loss gets the largest weight. The released code lets the gradient flow through the weights too
  (``detach_weights=False``, the default); ``detach_weights=True`` treats them as constants.
- ``mask``: the suppression (mask) loss. ``p`` is a branch's channel-mean map (N×1×h×w); the occlusion mask
  (``batch["occ_mask"]``, 1 inside the occluded region, N×1×H×W) is resized to h×w (bilinear, corners aligned, as
  the released code) and turned into the keep mask ``m = 1 - mask``; loss = ``MSE(p, p·m)`` = mean of
  ``p²·(1 - m)²``: zero where the map is kept, activations inside the occlusion pushed to zero (the gradient flows
  through both arguments, as in the released code). Summed over the branches (both by default).
  ``resize: area`` resizes the mask by averaging instead (each cell gets the occluded fraction of its pixels): on
  small maps bilinear resizing samples a few pixels only and can miss a small block entirely.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import LOSSES
from .utils import get_output, get_targets


def softmax_weighted(losses: torch.Tensor, detach_weights: bool = False) -> torch.Tensor:
    """``sum(softmax(l) · l)`` of a 1-D tensor of losses."""
    w = F.softmax(losses.detach() if detach_weights else losses, dim=0)
    return (w * losses).sum()


RESIZE = ("bilinear", "area")


def keep_mask(occ_mask: torch.Tensor, size: Sequence[int], resize: str = "bilinear") -> torch.Tensor:
    """N×1×H×W occlusion mask (1 = occluded) -> N×1×h×w keep mask (1 = visible): bilinear with corners aligned
    (the released code) or ``area`` (the occluded fraction of each cell)."""
    m = occ_mask.float()
    if tuple(m.shape[-2:]) != tuple(size):
        if resize == "area":
            m = F.adaptive_avg_pool2d(m, tuple(size))
        else:
            m = F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=True)
    return 1.0 - m


def mask_mse(p: torch.Tensor, occ_mask: torch.Tensor, resize: str = "bilinear") -> torch.Tensor:
    """``MSE(p, p·m)`` with ``m`` the keep mask resized to ``p`` (N×1×h×w)."""
    keep = keep_mask(occ_mask.to(p.device), p.shape[-2:], resize).to(p.dtype)
    return F.mse_loss(p.float(), (p * keep).float())


class SoftmaxWeightedCE(nn.Module):
    def __init__(self, epsilon: float = 0.1, logits_keys: Sequence[str] = ("logits_global", "logits_occ", "logits"),
                 detach_weights: bool = False, pids_key: str = "pids"):
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"igoas_ce: epsilon must be in [0, 1), got {epsilon}")
        if len(logits_keys) < 1:
            raise ValueError("igoas_ce: logits_keys must name at least one output")
        self.epsilon, self.logits_keys = float(epsilon), tuple(logits_keys)
        self.detach_weights, self.pids_key = bool(detach_weights), pids_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        parts = []
        for key in self.logits_keys:
            logits = get_output(outputs, key, "igoas_ce").float()
            targets = get_targets(batch, self.pids_key, logits.shape[0], "igoas_ce").to(logits.device)
            parts.append(F.cross_entropy(logits, targets, label_smoothing=self.epsilon))
        return softmax_weighted(torch.stack(parts), self.detach_weights)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, logits_keys={self.logits_keys}, detach_weights={self.detach_weights}"


class MaskLoss(nn.Module):
    def __init__(self, map_keys: Sequence[str] = ("map_global", "map_occ"), mask_key: str = "occ_mask",
                 resize: str = "bilinear"):
        super().__init__()
        if resize not in RESIZE:
            raise ValueError(f"mask: resize must be one of {', '.join(RESIZE)}, got {resize!r}")
        self.map_keys, self.mask_key, self.resize = tuple(map_keys), mask_key, resize

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        if self.mask_key not in batch:
            raise KeyError(f"mask loss: the batch has no {self.mask_key!r} (an occluding augmentation such as "
                           f"{{name: igo}} in data.augs makes it); it has {', '.join(sorted(batch))}")
        total = None
        for key in self.map_keys:
            p = get_output(outputs, key, "mask")
            if p.dim() != 4 or p.shape[1] != 1:
                raise ValueError(f"mask loss: outputs[{key!r}] must be a N×1×h×w map, got {tuple(p.shape)}")
            value = mask_mse(p, batch[self.mask_key], self.resize)
            total = value if total is None else total + value
        return total

    def extra_repr(self) -> str:
        return f"map_keys={self.map_keys}, mask_key={self.mask_key!r}, resize={self.resize!r}"


@LOSSES.register("igoas_ce")
def build_igoas_ce(epsilon: float = 0.1, logits_keys: Sequence[str] = ("logits_global", "logits_occ", "logits"),
                   detach_weights: bool = False, pids_key: str = "pids", num_classes: Optional[int] = None,
                   feat_dim: Optional[int] = None) -> SoftmaxWeightedCE:
    """``{"name": "igoas_ce", "epsilon": 0.1}`` (num_classes / feat_dim are accepted and unused)."""
    return SoftmaxWeightedCE(epsilon, logits_keys, detach_weights, pids_key)


@LOSSES.register("mask")
def build_mask(map_keys: Sequence[str] = ("map_global", "map_occ"), mask_key: str = "occ_mask",
               resize: str = "bilinear", num_classes: Optional[int] = None, feat_dim: Optional[int] = None) -> MaskLoss:
    """``{"name": "mask", "weight": 1.0}``: IGOAS's suppression loss on the branches' channel-mean maps."""
    return MaskLoss(map_keys, mask_key, resize)
