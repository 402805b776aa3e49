"""Small helpers shared by the batch augmentations: draws from ``ctx.generator``, rectangles, masks, fills.

Every random draw is made on the CPU from the context's generator and then moved to the images' device, so the
same seed gives the same batch whatever the device.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

Batch = Dict[str, Any]


def check_batch(batch: Batch, who: str) -> torch.Tensor:
    """Return ``batch["images"]`` after checking it is a float N×3×H×W tensor."""
    if not isinstance(batch, dict) or "images" not in batch:
        raise ValueError(f"{who}: the batch must be a dict with an 'images' entry (float N×3×H×W in [0, 1])")
    x = batch["images"]
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: batch['images'] must be a float tensor N×3×H×W in [0, 1], got {got}")
    return x


def rand(g: torch.Generator, *shape: int, device=None) -> torch.Tensor:
    """U[0, 1) of ``shape`` from ``g`` (CPU), moved to ``device``."""
    out = torch.rand(*shape, generator=g, dtype=torch.float64)
    return out.to(device) if device is not None else out


def uniform(g: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * rand(g, *shape)


def randint(g: torch.Generator, lo: int, hi: int) -> int:
    """One integer uniformly in [lo, hi] (both inclusive, like Python's ``random.randint``)."""
    if hi < lo:
        raise ValueError(f"randint: empty range [{lo}, {hi}]")
    return int(torch.randint(int(lo), int(hi) + 1, (1,), generator=g).item())


def randint_upto(g: torch.Generator, hi: torch.Tensor) -> torch.Tensor:
    """Per element an integer uniformly in [0, hi] (inclusive); ``hi`` is an int64 tensor >= 0."""
    u = rand(g, *hi.shape)
    return torch.minimum((u * (hi.double() + 1)).floor().long(), hi.long())


def beta_a1(g: torch.Generator, a: float, *shape: int) -> torch.Tensor:
    """Beta(a, 1) draws: the CDF is x**a, so ``U ** (1/a)`` (exact inverse transform)."""
    return rand(g, *shape) ** (1.0 / float(a))


def dirichlet_ones(g: torch.Generator, n: int, k: int) -> torch.Tensor:
    """Dirichlet(1, ..., 1) with ``k`` components, ``n`` rows: normalised Exp(1) draws."""
    e = -torch.log1p(-rand(g, n, k))  # Exp(1), finite because U < 1
    e = e.clamp_min(1e-12)
    return e / e.sum(dim=1, keepdim=True)


def rect_mask(top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor, H: int, W: int,
              device=None) -> torch.Tensor:
    """Float N×1×H×W mask, 1 inside rectangle i (rows [top, top+h), cols [left, left+w)), by broadcasting."""
    ys = torch.arange(H, device=device).view(1, H, 1)
    xs = torch.arange(W, device=device).view(1, 1, W)
    t, l_ = top.to(device).view(-1, 1, 1), left.to(device).view(-1, 1, 1)
    hh, ww = h.to(device).view(-1, 1, 1), w.to(device).view(-1, 1, 1)
    inside = (ys >= t) & (ys < t + hh) & (xs >= l_) & (xs < l_ + ww)
    return inside.unsqueeze(1).float()


def sample_rects(g: torch.Generator, n: int, H: int, W: int, area: Tuple[float, float],
                 aspect: Tuple[float, float], attempts: int = 10, log_aspect: bool = False):
    """Per sample a rectangle of area fraction U(area) and aspect h/w ~ U(aspect) that fits in H×W.

    Like random erasing, each sample tries up to ``attempts`` draws and keeps the first that fits (strictly
    smaller than the image, as the reference implementations require); ``ok`` is False where none fit.
    Returns int64 tensors ``top, left, h, w`` and bool ``ok`` (on the CPU).
    """
    a = uniform(g, area[0], area[1], n, attempts) * (H * W)
    if log_aspect:
        r = torch.exp(uniform(g, math.log(aspect[0]), math.log(aspect[1]), n, attempts))
    else:
        r = uniform(g, aspect[0], aspect[1], n, attempts)
    hs = torch.round(torch.sqrt(a * r)).long()
    ws = torch.round(torch.sqrt(a / r)).long()
    fits = (hs < H) & (ws < W) & (hs > 0) & (ws > 0)
    ok = fits.any(dim=1)
    first = torch.where(fits, torch.arange(attempts).expand(n, attempts), attempts).min(dim=1).values
    first = first.clamp_max(attempts - 1)
    h = hs.gather(1, first.view(-1, 1)).squeeze(1)
    w = ws.gather(1, first.view(-1, 1)).squeeze(1)
    h = torch.where(ok, h, torch.zeros_like(h))
    w = torch.where(ok, w, torch.zeros_like(w))
    top = randint_upto(g, (H - h).clamp_min(0))
    left = randint_upto(g, (W - w).clamp_min(0))
    return top, left, h, w, ok


def normal_fill(g: torch.Generator, shape: Sequence[int], mean: Sequence[float], std: Sequence[float],
                device=None) -> torch.Tensor:
    """Per-pixel noise N(0, 1) in the model's normalised space, mapped to pixels (v·std + mean) and clipped to
    [0, 1]: what ``per_pixel`` erasing fills with when it works after normalisation."""
    v = torch.randn(*shape, generator=g, dtype=torch.float32)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    out = (v * s + m).clamp_(0.0, 1.0)
    return out.to(device) if device is not None else out


def channel_fill(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(list(values), dtype=like.dtype, device=like.device).view(1, 3, 1, 1)


def as_triple(v: Optional[Sequence[float]], default: Sequence[float], name: str) -> Tuple[float, float, float]:
    if v is None:
        v = default
    if isinstance(v, (int, float)):
        v = (float(v),) * 3
    v = tuple(float(x) for x in v)
    if len(v) != 3:
        raise ValueError(f"{name}: expected 3 values (one per RGB channel), got {len(v)}")
    return v  # type: ignore[return-value]


def as_range(v: Sequence[float], name: str, lo: float = 0.0, hi: float = float("inf")) -> Tuple[float, float]:
    try:
        a, b = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected [min, max], got {v!r}") from None
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name}: expected {lo} <= min <= max <= {hi}, got [{a}, {b}]")
    return a, b


def check_prob(p: float, name: str = "p") -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: a probability in [0, 1] is expected, got {p}")
    return p


def merge_mask(batch: Batch, mask: torch.Tensor) -> torch.Tensor:
    """Union of a new occlusion mask with one already in the batch (several occluding augmentations)."""
    old = batch.get("occ_mask")
    if isinstance(old, torch.Tensor) and old.shape == mask.shape:
        return torch.maximum(old.to(mask), mask)
    return mask


def fill_region(batch: Batch, x: torch.Tensor, mask: torch.Tensor, mean: Sequence[float]) -> Batch:
    """A new batch whose images are ``x`` with the mask's region (1 = occluded; N×1×H×W) set to the per-channel
    ``mean``, and whose ``occ_mask`` is that mask merged with any already there; ``batch`` is not modified."""
    fill = channel_fill(mean, x)
    new = dict(batch)
    new["images"] = torch.where(mask.bool(), fill.expand_as(x), x)
    new["occ_mask"] = merge_mask(batch, mask)
    return new
