"""Rain: the 20th corruption of the person-ReID corruption benchmark (not part of ImageNet-C).

The benchmark defines rain through albumentations' ``RandomRain`` followed by a fixed brightness shift; this is
the same definition in batched torch (see the reference page shared/reference/corruptions.md and
docs/corruptions_weather_occlusion.md):

====  ==========  ===============  ============  ========  =================
sev   type        drops            length (px)   box blur  brightness shift
====  ==========  ===============  ============  ========  =================
1     drizzle     area // 770      10            3×3       −0.10·255
2     heavy       area // 600      30            4×4       −0.15·255
3     heavy       area // 600      30            5×5       −0.20·255
4     torrential  area // 500      60            6×6       −0.25·255
5     torrential  area // 500      60            7×7       −0.30·255
====  ==========  ===============  ============  ========  =================

Per image: one integer slant ``int(U(−10, 10))`` (truncated toward zero, as the reference does); each drop starts
at x0 uniform in [slant, W] (slant < 0) or [0, W − slant], y0 uniform in [0, H − length] (inclusive bounds) and is
a 1-px, 8-connected line of colour (200, 200, 200) to (x0 + slant, y0 + length), clipped to the image. Then the
whole image is box-blurred (cv2.blur: anchor k//2, border reflect-101, rounded), the brightness shift is added,
clipped and truncated to uint8. Images of height <= 60 are first upscaled (bicubic) to height 65 keeping the
aspect (width ``int(W·65/H)``), so the longest drops fit; unlike the reference, which returns the upscaled image,
the result is resized back (bicubic, antialiased) to the input size so a corruption never changes the shape.

All segments of the batch are rasterised at once with index arithmetic: pixel t of a drop is
``(y0 + t, x0 + ceil(slant·t/length − 1/2))`` for t = 0..length (cv2.line's 8-connected Bresenham; segments
that cross the border are clipped pixel-wise, where cv2 clips the end points first, which can move a few pixels).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._ops import chunked
from .base import image_generator, register_corruption
from .weather import box_blur_fast

#: severity -> (area divisor, drop length, box blur size, brightness shift as a fraction of 255)
RAIN_PARAMS = {
    1: (770, 10, 3, -0.10),
    2: (600, 30, 4, -0.15),
    3: (600, 30, 5, -0.20),
    4: (500, 60, 6, -0.25),
    5: (500, 60, 7, -0.30),
}
DROP_COLOR = 200
MAX_SLANT = 10
MIN_HEIGHT = 60  # images of height <= MIN_HEIGHT are upscaled to UPSCALE_HEIGHT first
UPSCALE_HEIGHT = 65


def rain_canvas_size(h: int, w: int) -> Tuple[int, int]:
    """The size rain is drawn at: (h, w), or (65, int(w·65/h)) for images of height <= 60."""
    if h <= MIN_HEIGHT:
        return UPSCALE_HEIGHT, max(1, int(w * (UPSCALE_HEIGHT / h)))
    return h, w


def rain_drops(h: int, w: int, severity: int, seeds: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random drops of each image on an h×w canvas: ``(slant N, x0 N×D, y0 N×D)`` (long, CPU), D = area // div.

    Image i's draws come from ``seeds[i]`` alone: first the slant, then the D start points."""
    div, length, _, _ = RAIN_PARAMS[severity]
    d = (h * w) // div
    slants: List[int] = []
    xs, ys = [], []
    for s in seeds:
        g = image_generator(s)
        slant = int(float(torch.rand(1, generator=g, dtype=torch.float64)) * 2 * MAX_SLANT - MAX_SLANT)
        u = torch.rand(2, d, generator=g, dtype=torch.float64)
        lo, hi = (slant, w) if slant < 0 else (0, w - slant)
        xs.append(torch.floor(u[0] * (hi - lo + 1)).long() + lo)
        ys.append(torch.floor(u[1] * (max(h - length, 0) + 1)).long())
        slants.append(slant)
    return torch.tensor(slants, dtype=torch.long), torch.stack(xs), torch.stack(ys)


def rain_streak_mask(h: int, w: int, severity: int, seeds: Sequence[int], device=None) -> torch.Tensor:
    """Bool N×h×w: the pixels the drops of each image cover (before blurring), all segments rasterised at once."""
    _, length, _, _ = RAIN_PARAMS[severity]
    slant, x0, y0 = rain_drops(h, w, severity, seeds)
    n, d = x0.shape
    t = torch.arange(length + 1, dtype=torch.long)
    # x offset of pixel t: ceil(slant*t/length - 1/2) (Bresenham, ties towards the start), exact integer arithmetic
    dx = -torch.div(length - 2 * slant.view(n, 1) * t.view(1, -1), 2 * length, rounding_mode="floor")  # N×(L+1)
    ys = y0.unsqueeze(-1) + t.view(1, 1, -1)  # N×D×(L+1)
    xs = x0.unsqueeze(-1) + dx.view(n, 1, -1)
    ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    img = torch.arange(n, dtype=torch.long).view(n, 1, 1).expand_as(ys)
    flat = (img * (h * w) + ys * w + xs)[ok]
    mask = torch.zeros(n * h * w, dtype=torch.bool)
    mask[flat] = True
    mask = mask.view(n, h, w)
    return mask.to(device) if device is not None else mask


@register_corruption("rain")
@chunked(16)
def rain(images: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    _, _, k, shift = RAIN_PARAMS[severity]
    n, _, h, w = images.shape
    ch, cw = rain_canvas_size(h, w)
    x = images.float()
    if (ch, cw) != (h, w):
        x = F.interpolate(x, size=(ch, cw), mode="bicubic", align_corners=False).round().clamp(0, 255)
    mask = rain_streak_mask(ch, cw, severity, seeds, device=images.device).unsqueeze(1)
    x = torch.where(mask, torch.full_like(x, float(DROP_COLOR)), x)
    x = box_blur_fast(x, k).round()
    x = (x + shift * 255.0).clamp(0, 255).floor()
    if (ch, cw) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False, antialias=True).round()
    return x.clamp(0, 255).to(torch.uint8)
