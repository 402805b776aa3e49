"""FED's losses, as its released training sums them (model: ``robustreid.models.fed``)::

    fed_oem        MSE(clean OEM scores, 1) + MSE(occluded OEM scores, NPO stripe targets)
    fed_id         mean of CE(f′ logits) over the clean and the occluded view
    fed_fdm_id     mean of CE(FDM-output logits) over both views
    fed_global_id  mean of CE(global-feature logits) over both views
    fed_bank       memory-bank CE of f′: clean + 0.3 × occluded
    fed_fdm_bank   memory-bank CE of the FDM output: clean + occluded (weight 0.5 in the presets)

The CEs have no label smoothing by default (the released config turns it off); the bank CE is a plain cross-entropy
over ``cos / T`` logits (the released code adds 1e-6 inside the log, which only caps the loss of a sample whose true
centre has probability < 1e-6). A triplet loss on f′ is the generic ``triplet`` (it reads ``feat``, the clean f′).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import LOSSES
from .utils import get_output, get_targets


class OEMLoss(nn.Module):
    """``MSE(clean scores, 1) + MSE(occluded scores, stripe targets)``; scores and targets N×S."""

    def __init__(self, clean_key: str = "oem_scores", occluded_key: str = "oem_scores_occ",
                 targets_key: str = "stripe_targets"):
        super().__init__()
        self.clean_key, self.occluded_key, self.targets_key = clean_key, occluded_key, targets_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        clean = get_output(outputs, self.clean_key, "fed_oem").float()
        occ = get_output(outputs, self.occluded_key, "fed_oem").float()
        if self.targets_key not in batch:
            raise KeyError(f"fed_oem: the batch has no {self.targets_key!r} (the NPO augmentation writes them: "
                           f"data.augs: [{{name: npo}}]); it has {', '.join(sorted(batch))}")
        target = torch.as_tensor(batch[self.targets_key]).to(occ.device, torch.float32)
        if target.shape != occ.shape:
            raise ValueError(f"fed_oem: stripe targets {tuple(target.shape)} do not match the OEM scores "
                             f"{tuple(occ.shape)} (model.method_kwargs.num_stripes and npo's num_stripes must agree)")
        return F.mse_loss(clean, torch.ones_like(clean)) + F.mse_loss(occ, target)


class ViewsCE(nn.Module):
    """``Σ_i w_i · CE(outputs[keys[i]], pids)`` (``mean=True``: divided by the number of keys)."""

    def __init__(self, name: str, keys: Sequence[str], weights: Optional[Sequence[float]] = None,
                 epsilon: float = 0.0, mean: bool = True, pids_key: str = "pids"):
        super().__init__()
        self.name, self.keys = name, [str(k) for k in keys]
        self.weights = [1.0] * len(self.keys) if weights is None else [float(w) for w in weights]
        if not self.keys or len(self.weights) != len(self.keys):
            raise ValueError(f"{name}: expected as many weights as keys, got {self.weights} for {self.keys}")
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"{name}: epsilon must be in [0, 1), got {epsilon}")
        self.epsilon, self.mean, self.pids_key = float(epsilon), bool(mean), pids_key

    def forward(self, outputs: Dict[str, Any], batch: Dict[str, Any]) -> torch.Tensor:
        total = None
        for key, w in zip(self.keys, self.weights):
            logits = get_output(outputs, key, self.name).float()
            targets = get_targets(batch, self.pids_key, logits.shape[0], self.name).to(logits.device)
            value = w * F.cross_entropy(logits, targets, label_smoothing=self.epsilon)
            total = value if total is None else total + value
        return total / len(self.keys) if self.mean else total

    def extra_repr(self) -> str:
        return f"keys={self.keys}, weights={self.weights}, epsilon={self.epsilon}, mean={self.mean}"


@LOSSES.register("fed_oem")
def build_fed_oem(**kw) -> OEMLoss:
    return OEMLoss(**kw)


def _views_builder(name: str, keys: Sequence[str], weights: Optional[Sequence[float]], mean: bool):
    def build(keys: Sequence[str] = tuple(keys), weights: Optional[Sequence[float]] = weights, epsilon: float = 0.0,
              mean: bool = mean, pids_key: str = "pids", num_classes: Optional[int] = None,
              feat_dim: Optional[int] = None) -> ViewsCE:
        return ViewsCE(name, keys, weights, epsilon, mean, pids_key)

    build.__doc__ = f"{name}: CE over {list(keys)} (weights {weights}, {'mean' if mean else 'sum'})."
    return build


for _name, _keys, _weights, _mean in (
    ("fed_id", ("logits", "logits_occ"), None, True),
    ("fed_fdm_id", ("fdm_logits", "fdm_logits_occ"), None, True),
    ("fed_global_id", ("global_logits", "global_logits_occ"), None, True),
    ("fed_bank", ("bank_logits", "bank_logits_occ"), (1.0, 0.3), False),
    ("fed_fdm_bank", ("fdm_bank_logits", "fdm_bank_logits_occ"), (1.0, 1.0), False),
):
    LOSSES.add(_name, _views_builder(_name, _keys, _weights, _mean))

__all__ = ["OEMLoss", "ViewsCE"]
