"""Jensen–Shannon consistency loss (AugMix / CIL) between the softmax outputs of the clean batch and its views.

With p_0 = softmax(clean logits) and p_1, …, p_k the views' softmax outputs (``outputs["views"][i]["logits"]``)
and M = (p_0 + … + p_k)/(k + 1), the loss is ``(1/(k+1)) Σ_i KL(p_i ‖ M)`` averaged over the batch (natural
log), which is the generalised Jensen–Shannon divergence: 0 when all distributions agree, at most log(k+1).
M is clamped to [1e-7, 1] before the log, as in the AugMix code. CIL weights it by 12 (``weight: 12`` in the
config). Works with any model whose train-mode outputs carry ``logits`` (a tensor, or a list of tensors: then
the loss is averaged over the heads).
"""

from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from .base import LOSSES


def jsd_from_logits(logits: List[torch.Tensor], eps: float = 1e-7) -> torch.Tensor:
    """Generalised JS divergence between ``softmax(l)`` for each ``l`` in ``logits`` (each N×C), batch mean."""
    if len(logits) < 2:
        raise ValueError("jsd: need at least two sets of logits (clean + at least one view)")
    probs = [F.softmax(l.float(), dim=1) for l in logits]
    m = torch.clamp(sum(probs) / len(probs), eps, 1.0).log()
    return sum(F.kl_div(m, p, reduction="batchmean") for p in probs) / len(probs)


class JSDLoss(nn.Module):
    def __init__(self, key: str = "logits", eps: float = 1e-7):
        super().__init__()
        self.key, self.eps = key, float(eps)

    def _get(self, out: Dict[str, Any], where: str):
        if not isinstance(out, dict) or self.key not in out:
            raise ValueError(f"jsd: {where} has no {self.key!r} output (keys: "
                             f"{', '.join(out) if isinstance(out, dict) else type(out).__name__})")
        v = out[self.key]
        return list(v) if isinstance(v, (list, tuple)) else [v]

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        views = outputs.get("views") if isinstance(outputs, dict) else None
        if not views:
            raise ValueError("jsd: the model outputs carry no 'views'; add an augmentation that makes views "
                             "(e.g. {name: augmix} in data.augs)")
        clean = self._get(outputs, "outputs")
        per_view = [self._get(v, f"outputs['views'][{i}]") for i, v in enumerate(views)]
        losses = []
        for h, c in enumerate(clean):
            losses.append(jsd_from_logits([c] + [v[h] for v in per_view], self.eps))
        return sum(losses) / len(losses)


@LOSSES.register("jsd")
def build_jsd(**kw) -> JSDLoss:
    return JSDLoss(**kw)


__all__ = ["JSDLoss", "jsd_from_logits"]
