"""ID loss: cross-entropy with label smoothing (BoT, epsilon 0.1).

With K classes, the target is ``(1 - eps)`` on the true class plus ``eps / K`` everywhere, so
``loss = (1 - eps) * (-log p_y) + eps * mean_k(-log p_k)``, averaged over the batch."""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import LOSSES
from .utils import get_output, get_targets


class CrossEntropyLabelSmooth(nn.Module):
    def __init__(self, epsilon: float = 0.1, logits_key: str = "logits", pids_key: str = "pids"):
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"ce: epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = float(epsilon)
        self.logits_key, self.pids_key = logits_key, pids_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        logits = get_output(outputs, self.logits_key, "ce")
        targets = get_targets(batch, self.pids_key, logits.shape[0], "ce")
        if logits.dim() != 2:
            raise ValueError(f"ce: outputs[{self.logits_key!r}] must be N×num_classes, got {tuple(logits.shape)}")
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
            raise ValueError(f"ce: {self.pids_key} must be in [0, {logits.shape[1]}) (train pids relabelled 0..K-1), "
                             f"got {int(targets.min())}..{int(targets.max())}")
        return F.cross_entropy(logits.float(), targets, label_smoothing=self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}, logits_key={self.logits_key!r}"


@LOSSES.register("ce")
def build_ce(epsilon: float = 0.1, logits_key: str = "logits", pids_key: str = "pids",
             num_classes: Optional[int] = None, feat_dim: Optional[int] = None) -> CrossEntropyLabelSmooth:
    """``{"name": "ce", "epsilon": 0.1, "logits_key": "logits"}`` (num_classes / feat_dim are accepted and unused)."""
    return CrossEntropyLabelSmooth(epsilon, logits_key, pids_key)
