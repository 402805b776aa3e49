"""Query–gallery distances, computed block by block.

Two metrics (see docs/metrics.md):

* ``"cosine"``: features are L2-normalised; items are ranked by *decreasing* cosine similarity. Internally the
  block holds ``-cos`` (the negation is exact, so the ranking equals the ranking by ``1 - cos`` without the extra
  rounding of ``1 - x``); :func:`compute_distance` returns ``1 - cos`` for users who want distances.
* ``"euclidean"``: squared Euclidean distance ``|q|² + |g|² - 2 q·g`` in float32, as in BoT.

All functions take numpy arrays or torch tensors and never modify their inputs.
"""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

METRICS = ("cosine", "euclidean")

ArrayLike = Union[np.ndarray, torch.Tensor]


def as_tensor(x, name: str, *, dtype: Optional[torch.dtype] = None, device=None, ndim: Optional[int] = None):
    """numpy / torch / sequence -> torch tensor on ``device`` (no copy when nothing changes)."""
    try:
        t = torch.from_numpy(x) if isinstance(x, np.ndarray) else torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name}: expected a numpy array or torch tensor ({e})") from None
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name}: expected a {ndim}-d array, got shape {tuple(t.shape)}")
    if dtype is not None or device is not None:
        t = t.to(device=device if device is not None else t.device, dtype=dtype if dtype is not None else t.dtype)
    return t


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def prepare_features(features: ArrayLike, name: str, metric: str, device=None) -> torch.Tensor:
    """float32 2-d tensor on ``device``; L2-normalised (a new tensor) for cosine. Rejects non-finite values."""
    t = as_tensor(features, name, device=device, ndim=2)
    if not t.is_floating_point():
        t = t.float()
    elif t.dtype != torch.float32:
        t = t.float()
    # one pass: the row norms are finite iff the rows are (or a row is too large to square: also rejected)
    norms = torch.linalg.vector_norm(t, dim=1)
    if t.shape[0] and not bool(torch.isfinite(norms).all()):
        raise ValueError(f"{name}: features contain NaN or inf (or values too large for float32 distances)")
    if metric == "cosine":
        t = t / norms.clamp_min(1e-12).unsqueeze(1)
    return t


class BlockDistance:
    """Computes ranking keys for query blocks: smaller key = ranked earlier.

    cosine: key = -cos(q, g); euclidean: key = |q|² + |g|² - 2 q·g. ``qf``/``gf`` come from
    :func:`prepare_features`.
    """

    def __init__(self, qf: torch.Tensor, gf: torch.Tensor, metric: str):
        if qf.shape[1] != gf.shape[1]:
            raise ValueError(f"query features have dimension {qf.shape[1]} but gallery features {gf.shape[1]}")
        self.metric = check_metric(metric)
        self.gf_t = gf.t()
        if metric == "cosine":
            self.qf = -qf  # (-q)·g == -(q·g) exactly
        else:
            self.qf = qf
            self.qq = (qf * qf).sum(1)
            self.gg = (gf * gf).sum(1)

    def block(self, a: int, b: int, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        q = self.qf[a:b]
        if out is not None:
            out = out[: b - a]
        if self.metric == "cosine":
            return torch.mm(q, self.gf_t, out=out) if out is not None else torch.mm(q, self.gf_t)
        gg = self.gg.unsqueeze(0).expand(b - a, -1)
        if out is not None:
            d = torch.addmm(gg, q, self.gf_t, alpha=-2.0, out=out)
        else:
            d = torch.addmm(gg, q, self.gf_t, alpha=-2.0)
        d.add_(self.qq[a:b].unsqueeze(1))
        return d

    def to_distance(self, key: torch.Tensor) -> torch.Tensor:
        """Ranking key -> reported distance (1 - cos for cosine, in place)."""
        if self.metric == "cosine":
            return key.add_(1.0)
        return key


@torch.no_grad()
def compute_distance(query_features: ArrayLike, gallery_features: ArrayLike, metric: str = "cosine",
                     device=None) -> torch.Tensor:
    """The full q×g float32 distance matrix (``1 - cos`` or squared Euclidean). Only for small inputs: the
    evaluator itself never builds it."""
    check_metric(metric)
    qf = prepare_features(query_features, "query_features", metric, device)
    gf = prepare_features(gallery_features, "gallery_features", metric, device)
    bd = BlockDistance(qf, gf, metric)
    return bd.to_distance(bd.block(0, qf.shape[0]))
