"""Procedurally generated frost textures, used by the ``frost`` corruption when the reference package's frost
photographs are not installed (see :func:`robustreid.corruptions.weather.frost_source`).

Each texture is drawn from fixed seeds, so every install generates the same six textures: a smooth, cloudy
multi-scale noise base (rime) plus ice-crystal needles — straight strokes with side branches at ±60° growing from
random nuclei, the dendritic look of window frost — lightly blurred, with fine grain. The result is mapped per
channel to the mean and standard deviation measured on the six reference photographs (bluish white, mean ≈ 70–215
per channel, std ≈ 15–47), so the frost corruption darkens/brightens images about as the photographs do. They are
not the photographs: per-image PSNR against the reference differs (see docs/corruptions_weather_occlusion.md).
"""

from __future__ import annotations

import math
from typing import List

import torch
import torch.nn.functional as F

#: (mean RGB, std RGB) of the six reference photographs (frost1..6), measured on 0..255
_TARGET_STATS = (
    ((77.7, 149.1, 165.7), (26.9, 16.5, 15.3)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((200.8, 205.4, 214.5), (21.4, 22.1, 22.6)),
    ((137.6, 152.8, 165.2), (28.5, 28.5, 29.9)),
    ((112.4, 123.4, 134.8), (44.4, 43.3, 41.7)),
    ((71.4, 95.4, 104.5), (35.2, 42.7, 47.4)),
)
#: texture sizes (h, w): about the photographs' sizes, so the crop statistics of a person crop are similar
_SIZES = ((600, 900), (315, 560), (315, 560), (350, 527), (495, 660), (323, 485))

_cache: List[torch.Tensor] = []


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(x, (r, r, 0, 0), mode="circular")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.pad(y, (0, 0, r, r), mode="circular")
    return F.conv2d(y, k.view(1, 1, -1, 1))


def _smooth_noise(g: torch.Generator, h: int, w: int, scale: float) -> torch.Tensor:
    """Noise with features about ``scale`` pixels wide: coarse Gaussian noise upsampled bicubically, 1×1×h×w."""
    ch, cw = int(math.ceil(h / scale)) + 3, int(math.ceil(w / scale)) + 3
    n = torch.randn(1, 1, ch, cw, generator=g)
    up = F.interpolate(n, size=(int(ch * scale), int(cw * scale)), mode="bicubic", align_corners=False)
    up = up[..., int(scale):int(scale) + h, int(scale):int(scale) + w]
    return up / up.std().clamp(min=1e-8)


def _cloud(g: torch.Generator, h: int, w: int) -> torch.Tensor:
    """Multi-scale smooth noise 1×1×h×w, zero mean, unit std."""
    out = torch.zeros(1, 1, h, w)
    for scale, amp in ((64.0, 1.0), (24.0, 0.6), (8.0, 0.35), (3.0, 0.2)):
        out += amp * _smooth_noise(g, h, w, scale)
    return (out - out.mean()) / out.std()


def _crystals(g: torch.Generator, h: int, w: int, nuclei: int) -> torch.Tensor:
    """Ice needles with ±60° side branches, rasterised by sampling points along every stroke at once."""
    canvas = torch.zeros(h * w)
    # main needles
    cy = torch.rand(nuclei, generator=g) * h
    cx = torch.rand(nuclei, generator=g) * w
    ang = torch.rand(nuclei, generator=g) * 2 * math.pi
    length = 20 + torch.rand(nuclei, generator=g) * 120
    strokes = [(cy, cx, ang, length, 1.0)]
    # side branches: 6 per needle, at random positions along it, ±60°, shorter
    nb = 6
    t = torch.rand(nuclei, nb, generator=g)
    side = torch.where(torch.rand(nuclei, nb, generator=g) < 0.5, -1.0, 1.0)
    by = cy[:, None] + t * length[:, None] * torch.sin(ang)[:, None]
    bx = cx[:, None] + t * length[:, None] * torch.cos(ang)[:, None]
    bang = ang[:, None] + side * math.pi / 3
    blen = (0.15 + 0.35 * torch.rand(nuclei, nb, generator=g)) * length[:, None] * (1 - 0.6 * t)
    strokes.append((by.flatten(), bx.flatten(), bang.flatten(), blen.flatten(), 0.7))
    for y0, x0, a, ln, inten in strokes:
        steps = torch.linspace(0, 1, 160).view(1, -1)
        ys = (y0[:, None] + steps * ln[:, None] * torch.sin(a)[:, None]).round().long() % h
        xs = (x0[:, None] + steps * ln[:, None] * torch.cos(a)[:, None]).round().long() % w
        # intensity fades along the needle; strokes overlap additively
        val = inten * (1.0 - 0.5 * steps).expand_as(ys)
        canvas.index_put_(((ys * w + xs).flatten(),), val.flatten(), accumulate=True)
    img = canvas.view(1, 1, h, w).clamp(max=2.0)
    return _blur(img, 0.8) + 0.5 * _blur(img, 2.5)


def generated_frost_textures() -> List[torch.Tensor]:
    """Six uint8 RGB frost textures 3×h×w (CPU), the same on every machine; generated once per process."""
    if _cache:
        return list(_cache)
    for i, ((mean, std), (h, w)) in enumerate(zip(_TARGET_STATS, _SIZES)):
        g = torch.Generator().manual_seed(90210 + 7919 * i)
        cloud = _cloud(g, h, w)
        cryst = _crystals(g, h, w, nuclei=int(h * w / 900))
        cryst = (cryst - cryst.mean()) / cryst.std().clamp(min=1e-8)
        grain = torch.randn(1, 1, h, w, generator=g)
        base = 0.55 * cloud + 0.8 * cryst + 0.15 * grain
        chans = []
        for c in range(3):
            # each channel: the shared structure plus a little channel-specific tint noise
            tint = _smooth_noise(g, h, w, 40.0)
            v = base + 0.1 * tint
            v = (v - v.mean()) / v.std()
            chans.append(v * std[c] + mean[c])
        tex = torch.cat(chans, dim=1)[0].round().clamp(0, 255).to(torch.uint8)
        _cache.append(tex)
    return list(_cache)
