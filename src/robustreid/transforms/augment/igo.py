"""IGO: Incremental Generative Occlusion (IGOAS, Zhao et al., TIP 2021), as the released code does it.

- One rectangle per batch: the same size and position for every image, redrawn at every call (iteration).
- Area schedule: ``area = H·W·(start + growth·epoch/epoch_scale)`` for ``epoch <= switch_epoch`` (defaults
  0.1, 0.4, 90, 55), then ``H·W·final_area`` (default 1/3). With the defaults the area grows from 10 % at epoch 0
  to 34.4 % at epoch 55 and then drops to 33.3 %.
- Shape: if ``sqrt(area) <= W``: aspect r ~ U(0.5, 1), ``h = round(sqrt(area·r))``, ``w = round(sqrt(area/r))``,
  redrawn until it fits (``h <= H`` and ``w <= W``; after ``attempts`` failures we fall back to the band below);
  otherwise a full-width band: ``w = W``, ``h = round(area / W)`` (clipped to H). Top-left corner uniform over the
  valid integer positions (both ends inclusive, like Python's ``random.randint``).
- Fill: one value per channel, ``v ~ U(0, 1)`` drawn in the model's *normalised* space (the released code erases
  the tensor after ``Normalize``). In our [0, 1] pixel space that is ``pixel = v·std + mean``, i.e. channel c is
  uniform in ``[mean_c, mean_c + std_c]`` (ImageNet constants: R 0.485–0.714, G 0.456–0.680, B 0.406–0.631; with
  CIL's mean = std = 0.5: 0.5–1.0). We clip to [0, 1], a no-op for these constants. ``ctx.mean`` / ``ctx.std``
  are the model's constants.
- Returns ``occ_mask`` (1 inside the rectangle; the released code's mask is the complement, 0 inside) and, with
  ``keep_clean`` (default), ``clean_images``: IGOAS feeds both the clean and the occluded batch to its two branches.

One detail of the released code: its model calls the block without passing the epoch, so the default ``epoch=-1``
is used and the area stays at ``H·W·(0.1 - 0.4/90)`` ≈ 9.6 % for the whole run, unlike the paper's description.
We follow the schedule as written in the block (the paper's intent) and expose ``fixed_epoch`` (e.g. ``-1``) to
reproduce the released behaviour.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from ._util import Batch, check_batch, merge_mask, randint, rect_mask, uniform
from .base import AUGMENTATIONS, AugContext


def igo_area_fraction(epoch: float, *, start: float = 0.1, growth: float = 0.4, epoch_scale: float = 90.0,
                      switch_epoch: float = 55, final_area: float = 1.0 / 3.0) -> float:
    """Fraction of the image area IGO occludes at ``epoch`` (0-based)."""
    if epoch <= switch_epoch:
        return start + growth * epoch / epoch_scale
    return final_area


def igo_rect_size(g: torch.Generator, H: int, W: int, area: float, aspect: Tuple[float, float] = (0.5, 1.0),
                  attempts: int = 1000) -> Tuple[int, int]:
    """(h, w) of the IGO rectangle of ``area`` pixels, drawn as the released code does (see module doc)."""
    area = max(0.0, float(area))
    for _ in range(attempts):
        if math.sqrt(area) <= W:
            r = float(uniform(g, aspect[0], aspect[1], 1)[0])
            h = int(round(math.sqrt(area * r)))
            w = int(round(math.sqrt(area / r)))
        else:
            w = W
            h = int(round(area / w))
        if w <= W and h <= H:
            return h, w
    return min(H, int(round(area / W))), W


class IGO:
    def __init__(self, start: float = 0.1, growth: float = 0.4, epoch_scale: float = 90.0, switch_epoch: int = 55,
                 final_area: float = 1.0 / 3.0, aspect: Tuple[float, float] = (0.5, 1.0),
                 fixed_epoch: Optional[int] = None, keep_clean: bool = True, attempts: int = 1000):
        if epoch_scale <= 0:
            raise ValueError(f"igo.epoch_scale must be > 0, got {epoch_scale}")
        if not 0 < aspect[0] <= aspect[1]:
            raise ValueError(f"igo.aspect: expected 0 < min <= max, got {aspect}")
        self.start, self.growth, self.epoch_scale = float(start), float(growth), float(epoch_scale)
        self.switch_epoch, self.final_area = switch_epoch, float(final_area)
        self.aspect = (float(aspect[0]), float(aspect[1]))
        self.fixed_epoch = fixed_epoch
        self.keep_clean = bool(keep_clean)
        self.attempts = int(attempts)

    def area_fraction(self, epoch: float) -> float:
        return igo_area_fraction(epoch, start=self.start, growth=self.growth, epoch_scale=self.epoch_scale,
                                 switch_epoch=self.switch_epoch, final_area=self.final_area)

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "igo")
        n, _, H, W = x.shape
        g = ctx.generator
        epoch = ctx.epoch if self.fixed_epoch is None else self.fixed_epoch
        area = H * W * self.area_fraction(epoch)
        h, w = igo_rect_size(g, H, W, area, self.aspect, self.attempts)
        top = randint(g, 0, H - h)
        left = randint(g, 0, W - w)
        v = uniform(g, 0.0, 1.0, 3).float()
        mean = torch.tensor(ctx.mean, dtype=torch.float32)
        std = torch.tensor(ctx.std, dtype=torch.float32)
        fill = (v * std + mean).clamp(0.0, 1.0).to(device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        t = torch.tensor([top]), torch.tensor([left]), torch.tensor([h]), torch.tensor([w])
        mask = rect_mask(*t, H, W, device=x.device).to(x.dtype).expand(n, 1, H, W).contiguous()
        new = dict(batch)
        new["images"] = torch.where(mask.bool(), fill.expand_as(x), x)
        new["occ_mask"] = merge_mask(batch, mask)
        if self.keep_clean and "clean_images" not in batch:
            new["clean_images"] = x
        info = dict(batch.get("aug_info") or {})
        info["igo"] = {"epoch": epoch, "area_fraction": self.area_fraction(epoch), "box": (top, left, h, w),
                       "fill": [float(c) for c in fill.view(3).cpu()]}
        new["aug_info"] = info
        return new

    def __repr__(self) -> str:
        return (f"IGO(start={self.start}, growth={self.growth}, epoch_scale={self.epoch_scale}, "
                f"switch_epoch={self.switch_epoch}, final_area={self.final_area:.4f})")


@AUGMENTATIONS.register("igo")
def build_igo(**kw) -> IGO:
    return IGO(**kw)


__all__ = ["IGO", "igo_area_fraction", "igo_rect_size"]
