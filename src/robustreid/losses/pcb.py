"""PCB's ID loss: one cross-entropy per stripe classifier (label smoothing optional), averaged over the stripes
(torchreid's deep supervision; the paper sums them — a constant factor of 6, absorbed by the loss weight)."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import LOSSES
from .utils import get_output, get_targets


class PartsCE(nn.Module):
    def __init__(self, epsilon: float = 0.1, logits_key: str = "part_logits", pids_key: str = "pids"):
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"parts_ce: epsilon must be in [0, 1), got {epsilon}")
        self.epsilon, self.logits_key, self.pids_key = float(epsilon), logits_key, pids_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        logits = get_output(outputs, self.logits_key, "parts_ce")
        if logits.dim() != 3:
            raise ValueError(f"parts_ce: outputs[{self.logits_key!r}] must be N×parts×num_classes, "
                             f"got {tuple(logits.shape)}")
        n, s, k = logits.shape
        targets = get_targets(batch, self.pids_key, n, "parts_ce").to(logits.device)
        return F.cross_entropy(logits.float().reshape(n * s, k), targets.repeat_interleave(s),
                               label_smoothing=self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, logits_key={self.logits_key!r}"


@LOSSES.register("parts_ce")
def build_parts_ce(epsilon: float = 0.1, logits_key: str = "part_logits", pids_key: str = "pids",
                   num_classes: Optional[int] = None, feat_dim: Optional[int] = None) -> PartsCE:
    """``{"name": "parts_ce", "epsilon": 0.1}``: mean CE over PCB's stripe classifiers."""
    return PartsCE(epsilon, logits_key, pids_key)
