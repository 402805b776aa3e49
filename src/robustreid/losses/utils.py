"""Helpers shared by the losses: fetch a named model output / batch target with a clear message."""

from __future__ import annotations

from typing import Any, Dict

import torch


def get_output(outputs: Dict[str, Any], key: str, loss: str) -> torch.Tensor:
    if not isinstance(outputs, dict):
        raise TypeError(f"{loss}: expected the model's train-mode output dict, got {type(outputs).__name__} "
                        "(is the model in eval mode?)")
    if key not in outputs:
        raise KeyError(f"{loss}: the model output has no {key!r}; it has {', '.join(sorted(outputs))}")
    return outputs[key]


def get_targets(batch: Dict[str, Any], key: str, n: int, loss: str) -> torch.Tensor:
    if key not in batch:
        raise KeyError(f"{loss}: the batch has no {key!r}; it has {', '.join(sorted(batch))}")
    t = torch.as_tensor(batch[key]).long().reshape(-1)
    if t.numel() != n:
        raise ValueError(f"{loss}: batch[{key!r}] has {t.numel()} labels for {n} samples")
    return t


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """N×N euclidean distances, ``sqrt(clamp(|a|² + |b|² - 2ab, 1e-12))`` (finite gradient at 0)."""
    sq = (x * x).sum(dim=1, keepdim=True)
    d2 = sq + sq.t() - 2.0 * (x @ x.t())
    return d2.clamp(min=1e-12).sqrt()
