"""AugMix (Hendrycks et al.) in batched torch, restricted to operations that do not overlap the test corruptions.

Operations (as in CIL's recipe; no colour, contrast, brightness or sharpness ops since those are test
corruptions): autocontrast, equalize, posterize, rotate, solarize, shear_x, shear_y, translate_x, translate_y.
Each view of each image: ``width`` chains (default 3) of ``depth`` ops (default -1: 1–3 drawn per chain), each op
at a level ``U(0.1, severity)`` (severity 3, on AugMix's 0–10 scale); the chains are mixed with weights
Dirichlet(1, …, 1) and the mix blended with the original: ``(1 - m)·x + m·mix`` with m ~ Beta(1, 1).

Batched: at every step each image draws its op; images sharing an op are processed together (affine ops through
one ``affine_grid`` / ``grid_sample``, about the image centre, bilinear, zero fill; equalize through per-image,
per-channel 256-bin histograms; autocontrast / posterize / solarize on the 8-bit values). Output stays in [0, 1].

The augmentation returns ``"views": [aug1, aug2]`` (``num_views``) and leaves ``images`` (the clean view) as it
was; the JSD loss (:mod:`robustreid.losses.jsd`) compares the model's outputs on the three.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Sequence

import torch
import torch.nn.functional as F

from ._util import Batch, check_batch, dirichlet_ones, rand, uniform
from .base import AUGMENTATIONS, AugContext

#: the allowed operations; none of them is one of the 20 test corruptions
AUGMIX_OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y", "translate_x",
              "translate_y")


def _to8(x: torch.Tensor) -> torch.Tensor:
    return (x * 255.0).round().clamp(0, 255)


def autocontrast(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to the full [0, 1] range (PIL's autocontrast with cutoff 0)."""
    v = _to8(x)
    lo = v.amin(dim=(2, 3), keepdim=True)
    hi = v.amax(dim=(2, 3), keepdim=True)
    scale = torch.where(hi > lo, 255.0 / (hi - lo).clamp_min(1), torch.ones_like(hi))
    out = torch.where(hi > lo, ((v - lo) * scale).floor().clamp(0, 255), v)
    return out / 255.0


def equalize(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per image and channel (PIL's lookup table), on 8-bit values."""
    n, c, H, W = x.shape
    v = _to8(x).long().view(n * c, H * W)
    hist = torch.zeros(n * c, 256, dtype=torch.long, device=x.device).scatter_add_(1, v, torch.ones_like(v))
    # PIL: step = (count - count of the last non-empty bin) // 255; lut[i] = (step // 2 + cum_before[i]) // step
    idx = torch.arange(256, device=x.device).expand(n * c, 256)
    last = torch.where(hist > 0, idx, torch.zeros_like(idx)).amax(dim=1, keepdim=True)
    step = (H * W - hist.gather(1, last)) // 255
    cum_before = torch.cumsum(hist, dim=1) - hist
    lut = ((step // 2 + cum_before) // step.clamp_min(1)).clamp(max=255)
    lut = torch.where(step > 0, lut, idx)
    out = lut.gather(1, v).view(n, c, H, W).float()
    return (out / 255.0).to(x.dtype)


def posterize(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Keep the top ``4 - int(level·4/10)`` bits of each 8-bit value (AugMix's mapping)."""
    bits = (4 - (level * 4 / 10).long()).clamp(min=1, max=8).view(-1, 1, 1, 1)
    shift = (8 - bits).to(x.device)
    v = _to8(x).long()
    v = (v >> shift) << shift
    return (v.float() / 255.0).to(x.dtype)


def solarize(x: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Invert 8-bit values at or above ``256 - int(level·256/10)``."""
    thr = (256 - (level * 256 / 10).long()).view(-1, 1, 1, 1).to(x.device).float()
    v = _to8(x)
    return (torch.where(v >= thr, 255.0 - v, v) / 255.0).to(x.dtype)


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0.0, 1.0)


def _theta(n: int) -> torch.Tensor:
    t = torch.zeros(n, 2, 3, dtype=torch.float64)
    t[:, 0, 0] = 1
    t[:, 1, 1] = 1
    return t


def make_ops(H: int, W: int) -> Dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Ops as ``fn(x, level, sign)`` for images of size H×W (``level`` and ``sign`` per image, float64 CPU)."""

    def rotate(x, level, sign):
        deg = (level * 30 / 10).floor() * sign
        a = deg * math.pi / 180
        t = _theta(len(level))
        # output -> input mapping in normalised coordinates, corrected for the aspect ratio
        t[:, 0, 0], t[:, 0, 1] = torch.cos(a), -torch.sin(a) * H / W
        t[:, 1, 0], t[:, 1, 1] = torch.sin(a) * W / H, torch.cos(a)
        return _affine(x, t)

    def shear_x(x, level, sign):
        s = level * 0.3 / 10 * sign
        t = _theta(len(level))
        t[:, 0, 1] = s * H / W
        return _affine(x, t)

    def shear_y(x, level, sign):
        s = level * 0.3 / 10 * sign
        t = _theta(len(level))
        t[:, 1, 0] = s * W / H
        return _affine(x, t)

    def translate_x(x, level, sign):
        px = (level * (W / 3) / 10).floor() * sign
        t = _theta(len(level))
        t[:, 0, 2] = 2 * px / W
        return _affine(x, t)

    def translate_y(x, level, sign):
        px = (level * (H / 3) / 10).floor() * sign
        t = _theta(len(level))
        t[:, 1, 2] = 2 * px / H
        return _affine(x, t)

    def wrap(fn):
        return lambda x, level, sign: fn(x, level)

    return {"autocontrast": wrap(autocontrast), "equalize": wrap(equalize), "posterize": wrap(posterize),
            "rotate": rotate, "solarize": wrap(solarize), "shear_x": shear_x, "shear_y": shear_y,
            "translate_x": translate_x, "translate_y": translate_y}


class AugMix:
    def __init__(self, width: int = 3, depth: int = -1, severity: float = 3.0, alpha: float = 1.0,
                 num_views: int = 2, ops: Sequence[str] = AUGMIX_OPS):
        bad = [o for o in ops if o not in AUGMIX_OPS]
        if bad:
            raise ValueError(f"augmix.ops: {bad} not allowed; choose from {', '.join(AUGMIX_OPS)} (ops that overlap "
                             "the test corruptions are excluded on purpose)")
        if width < 1 or num_views < 1 or not (depth == -1 or depth >= 1) or not 0 < severity <= 10:
            raise ValueError(f"augmix: bad width={width} / depth={depth} / severity={severity} / "
                             f"num_views={num_views} (width>=1, depth -1 or >=1, 0<severity<=10)")
        if alpha != 1.0:
            raise ValueError("augmix.alpha: only alpha = 1 (Dirichlet(1) mixing, Beta(1, 1) blend) is implemented")
        self.width, self.depth, self.severity = int(width), int(depth), float(severity)
        self.num_views = int(num_views)
        self.ops = tuple(ops)
        self.used_ops: set = set()  # every op this instance has applied (tests and reports read it)

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, H, W = x.shape
        ops = make_ops(H, W)
        ws = dirichlet_ones(g, n, self.width).to(device=x.device, dtype=x.dtype)
        m = rand(g, n).to(device=x.device, dtype=x.dtype).view(n, 1, 1, 1)  # Beta(1, 1)
        mix = torch.zeros_like(x)
        for j in range(self.width):
            if self.depth > 0:
                depth = torch.full((n,), self.depth, dtype=torch.long)
            else:
                depth = torch.randint(1, 4, (n,), generator=g)
            img = x
            for step in range(int(depth.max())):
                choice = torch.randint(0, len(self.ops), (n,), generator=g)
                level = uniform(g, 0.1, self.severity, n)
                sign = torch.where(rand(g, n) < 0.5, -1.0, 1.0).double()
                active = depth > step
                nxt = img.clone()
                for k, name in enumerate(self.ops):
                    sel = torch.nonzero(active & (choice == k)).flatten()
                    if sel.numel() == 0:
                        continue
                    self.used_ops.add(name)
                    dsel = sel.to(x.device)
                    nxt[dsel] = ops[name](img[dsel], level[sel], sign[sel]).to(x.dtype)
                img = nxt
            mix = mix + ws[:, j].view(n, 1, 1, 1) * img
        return ((1 - m) * x + m * mix).clamp(0.0, 1.0)

    def __call__(self, batch: Batch, ctx: AugContext) -> Batch:
        x = check_batch(batch, "augmix")
        new = dict(batch)
        views: List[torch.Tensor] = list(batch.get("views") or [])
        views += [self.augment(x, ctx.generator) for _ in range(self.num_views)]
        new["views"] = views
        return new

    def __repr__(self) -> str:
        return f"AugMix(width={self.width}, depth={self.depth}, severity={self.severity}, views={self.num_views})"


@AUGMENTATIONS.register("augmix")
def build_augmix(**kw) -> AugMix:
    return AugMix(**kw)


__all__ = ["AugMix", "AUGMIX_OPS", "make_ops", "autocontrast", "equalize", "posterize", "solarize"]
