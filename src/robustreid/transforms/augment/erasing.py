"""Random erasing (per sample) with the fill modes in use, CIL's soft / self "mixing erasing", and batch random
erasing (one rectangle shared by the whole batch).

Per-sample erasing is vectorised over the batch: each sample draws up to ``attempts`` (area, aspect) pairs and keeps
the first rectangle that fits; masks come from broadcasting coordinate grids, no Python loop over images.

Fill modes of :func:`random_erasing` (``fill``):

- ``"mean"``: the dataset mean per channel (``mean``, default ``ctx.mean``), i.e. 0 in normalised space;
- ``"random"``: per-pixel noise N(0, 1) in normalised space, i.e. pixel ``mean + std·ε`` clipped to [0, 1];
- ``"soft"`` (CIL): ``(1 - m)·x + m·noise`` inside the rectangle, noise as for ``"random"``, one m ~ Beta(0.5, 1)
  per sample (so m is 1/3 on average: mostly the image, partly noise);
- ``"self"`` (CIL): ``(1 - m)·x + m·x[other rectangle]``, the other rectangle of the same size at another random
  position of the same image, same law for m.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ._util import (
    Batch, as_range, as_triple, beta_a1, channel_fill, check_batch, check_prob, fill_region, merge_mask, normal_fill,
    rand, randint_upto, rect_mask, sample_rects,
)
from .base import AUGMENTATIONS, AugContext

FILLS = ("mean", "random", "soft", "self")


class RandomErasing:
    """Erase one rectangle per sample with probability ``p``; adds/extends ``occ_mask``."""

    def __init__(self, p: float = 0.5, area: Sequence[float] = (0.02, 0.4), aspect: Sequence[float] = (0.3, 3.3),
                 fill: str = "mean", mean: Optional[Sequence[float]] = None, beta_a: float = 0.5,
                 attempts: int = 10):
        self.p = check_prob(p)
        self.area = as_range(area, "random_erasing.area", 0.0, 1.0)
        self.aspect = as_range(aspect, "random_erasing.aspect", 1e-6)
        if fill not in FILLS:
            raise ValueError(f"random_erasing.fill: expected one of {', '.join(FILLS)}, got {fill!r}")
        self.fill = fill
        self.mean = None if mean is None else as_triple(mean, mean, "random_erasing.mean")
        if beta_a <= 0:
            raise ValueError(f"random_erasing.beta_a must be > 0, got {beta_a}")
        self.beta_a = float(beta_a)
        self.attempts = max(1, int(attempts))

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "random_erasing")
        n, _, H, W = x.shape
        g = ctx.generator
        top, left, h, w, ok = sample_rects(g, n, H, W, self.area, self.aspect, self.attempts)
        ok = ok & (rand(g, n) < self.p)
        h = torch.where(ok, h, torch.zeros_like(h))
        w = torch.where(ok, w, torch.zeros_like(w))
        mask = rect_mask(top, left, h, w, H, W, device=x.device).to(x.dtype)
        mean = self.mean or tuple(ctx.mean)
        if self.fill == "mean":
            filled = channel_fill(mean, x).expand_as(x)
        elif self.fill == "random":
            filled = normal_fill(g, x.shape, mean, ctx.std, device=x.device).to(x.dtype)
        else:
            m = beta_a1(g, self.beta_a, n).to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)
            if self.fill == "soft":
                noise = normal_fill(g, x.shape, mean, ctx.std, device=x.device).to(x.dtype)
            else:  # self: another rectangle of the same size in the same image
                top2 = randint_upto(g, (H - h).clamp_min(0))
                left2 = randint_upto(g, (W - w).clamp_min(0))
                noise = shifted(x, top2 - top, left2 - left, mask)
            filled = (1 - m) * x + m * noise
        out = torch.where(mask.bool(), filled, x)
        new = dict(batch)
        new["images"] = out
        new["occ_mask"] = merge_mask(batch, mask)
        return new

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, area={self.area}, aspect={self.aspect}, fill={self.fill!r})"


def shifted(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Image whose pixel (y, x) inside ``mask`` is the input's pixel (y + dy, x + dx) (per sample offsets)."""
    n, c, H, W = x.shape
    inside = mask[:, 0].bool()
    ys = torch.arange(H, device=x.device).view(1, H, 1).expand(n, H, W)
    xs = torch.arange(W, device=x.device).view(1, 1, W).expand(n, H, W)
    ys = torch.where(inside, ys + dy.to(x.device).view(n, 1, 1), ys).clamp(0, H - 1)
    xs = torch.where(inside, xs + dx.to(x.device).view(n, 1, 1), xs).clamp(0, W - 1)
    idx = torch.arange(n, device=x.device).view(n, 1, 1)
    return x[idx, :, ys, xs].permute(0, 3, 1, 2)


class BatchRandomErasing:
    """One rectangle per batch (same size and position for every image), filled with the dataset mean.

    Defaults follow the batch-erasing baseline of the IGOAS code: area 25–50 % of the image, aspect h/w in
    [0.25, 4], rectangle strictly inside the image (up to ``attempts`` draws, else no erasing)."""

    def __init__(self, p: float = 1.0, area: Sequence[float] = (0.25, 0.5), aspect: Sequence[float] = (0.25, 4.0),
                 mean: Optional[Sequence[float]] = None, attempts: int = 100):
        self.p = check_prob(p)
        self.area = as_range(area, "batch_random_erasing.area", 0.0, 1.0)
        self.aspect = as_range(aspect, "batch_random_erasing.aspect", 1e-6)
        self.mean = None if mean is None else as_triple(mean, mean, "batch_random_erasing.mean")
        self.attempts = max(1, int(attempts))

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "batch_random_erasing")
        n, _, H, W = x.shape
        g = ctx.generator
        top, left, h, w, ok = sample_rects(g, 1, H, W, self.area, self.aspect, self.attempts)
        if not bool(ok[0]) or float(rand(g, 1)[0]) >= self.p:
            h = w = torch.zeros(1, dtype=torch.long)
        mask = rect_mask(top, left, h, w, H, W, device=x.device).to(x.dtype).expand(n, 1, H, W).contiguous()
        return fill_region(batch, x, mask, self.mean or tuple(ctx.mean))

    def __repr__(self) -> str:
        return f"BatchRandomErasing(p={self.p}, area={self.area}, aspect={self.aspect})"


@AUGMENTATIONS.register("random_erasing")
def build_random_erasing(**kw) -> RandomErasing:
    return RandomErasing(**kw)


@AUGMENTATIONS.register("soft_erasing")
def build_soft_erasing(p: float = 0.5, **kw) -> RandomErasing:
    """CIL's soft mixing erasing (random erasing with ``fill="soft"``)."""
    return RandomErasing(p=p, fill="soft", **kw)


@AUGMENTATIONS.register("self_erasing")
def build_self_erasing(p: float = 0.5, **kw) -> RandomErasing:
    """CIL's self mixing erasing (random erasing with ``fill="self"``)."""
    return RandomErasing(p=p, fill="self", **kw)


@AUGMENTATIONS.register("batch_random_erasing")
def build_batch_random_erasing(**kw) -> BatchRandomErasing:
    return BatchRandomErasing(**kw)


__all__ = ["RandomErasing", "BatchRandomErasing", "FILLS", "shifted"]
