"""Blur corruptions (ImageNet-C parameters): defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur.

Re-expressed in torch from the semantics of ``imagecorruptions`` 1.1.5 (boundary modes included):

* gaussian_blur: skimage ``gaussian`` (scipy kernel, truncate 4, mode 'nearest');
* defocus_blur: cv2.filter2D with the anti-aliased disk (border REFLECT_101);
* zoom_blur: mean of the image and its scipy ``clipped_zoom`` s;
* motion_blur: one-sided Gaussian taps along a random angle U(-45°, 45°), edge-replicated shifts;
* glass_blur: Gaussian blur, truncation to uint8, the sequential local pixel "swap" (which in the reference
  copies: ``x[h,w] <- x[h+dy, w+dx]`` with dx, dy ~ U{-d..d-1}, scanned bottom-to-top and right-to-left, each
  copy seeing the earlier ones), Gaussian blur again. We run the scan exactly, row by row: within a row every
  pixel reads its source from the current tensor (rows below are already final for this iteration, rows above
  untouched), except sources to the right on the same row, which were overwritten earlier in the scan; those
  chains are resolved by pointer doubling. Only the random numbers differ from the reference (torch generator
  per image instead of numba's global numpy state), so the output distribution is the same.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch

from . import _ops
from ._ops import chunked, to_float01, to_uint8, to_uint8_255
from .base import image_generator, register_corruption

DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
ZOOMS = (np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01), np.arange(1, 1.21, 0.02),
         np.arange(1, 1.26, 0.02), np.arange(1, 1.31, 0.03))
GAUSSIAN_SIGMA = (1, 2, 3, 4, 6)


@register_corruption("gaussian_blur")
@chunked(16)
def gaussian_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    x = to_float01(images)
    return to_uint8(_ops.gaussian_blur(x, GAUSSIAN_SIGMA[severity - 1]))


@register_corruption("defocus_blur")
@chunked(16)
def defocus_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    radius, alias = DEFOCUS[severity - 1]
    x = to_float01(images)
    return to_uint8(_ops.filter2d(x, _ops.disk_kernel(radius, alias), mode="mirror"))


@register_corruption("zoom_blur")
@chunked(16)
def zoom_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    zooms = ZOOMS[severity - 1]
    x = to_float01(images)
    out = x.clone()
    for z in zooms:
        out += _ops.zoom_center(x, float(z))
    return to_uint8(out / (len(zooms) + 1))


def _angles(seeds: List[int], low: float, high: float) -> List[float]:
    return [low + (high - low) * float(torch.rand(1, generator=image_generator(s), dtype=torch.float64))
            for s in seeds]


@register_corruption("motion_blur")
@chunked(16)
def motion_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    radius, sigma = MOTION[severity - 1]
    x = images.to(torch.float32)
    return to_uint8_255(_ops.motion_blur(x, radius, sigma, _angles(seeds, -45.0, 45.0)))


def glass_shuffle(x: torch.Tensor, max_delta: int, iterations: int, seeds: List[int]) -> torch.Tensor:
    """The reference's sequential local pixel copy, exact up to the random numbers (see the module docstring).

    ``x`` is N×C×H×W (any dtype); returns a new tensor.
    """
    n, c, h, w = x.shape
    d = int(max_delta)
    rows = list(range(h - d, d, -1))  # h - d down to d + 1, bottom to top, as the reference
    c0 = d + 1  # processed columns: d + 1 .. w - d (scanned right to left); random numbers indexed by column
    nr, nw = len(rows), w - 2 * d
    out = x.clone()
    if nr <= 0 or nw <= 0:
        return out
    # per image: iterations × rows × columns × (dx, dy), each U{-d .. d-1} like np.random.randint(-d, d)
    draws = torch.stack([torch.randint(-d, d, (iterations, nr, nw, 2), generator=image_generator(s))
                         for s in seeds]).to(x.device)
    flat = out.view(n, c, h * w)
    local = torch.arange(nw, device=x.device)
    cols = local + c0
    row_t = torch.tensor(rows, device=x.device).view(1, 1, nr, 1)
    dx, dy = draws[..., 0], draws[..., 1]  # N×iters×rows×cols
    src_all = (row_t + dy) * w + (cols + dx)  # flat source index of every pixel
    # same-row sources to the right (dx > 0, up to column w-d) were already overwritten in this scan: follow them
    chained_all = (dy == 0) & (dx > 0) & (cols + dx <= w - d)
    ptr_all = torch.where(chained_all, local + dx, local.expand_as(dx))
    has_chain = chained_all.any(dim=3).any(dim=0).tolist()  # iters×rows
    for it in range(iterations):
        if d == 1:
            # dy, dx in {-1, 0}: every source is a pixel not yet overwritten in this pass (the row above, the
            # pixel to the left, or itself), so the whole pass is one gather
            dst = (torch.tensor(rows, device=x.device).view(-1, 1) * w + cols).reshape(-1)
            src = src_all[:, it].reshape(n, 1, nr * nw).expand(n, c, nr * nw)
            flat.index_copy_(2, dst, flat.gather(2, src))
            continue
        for ri, row in enumerate(rows):
            vals = flat.gather(2, src_all[:, it, ri].unsqueeze(1).expand(n, c, nw))
            if has_chain[it][ri]:
                ptr = ptr_all[:, it, ri]
                while True:
                    nxt = ptr.gather(1, ptr)
                    if torch.equal(nxt, ptr):
                        break
                    ptr = nxt
                vals = vals.gather(2, ptr.unsqueeze(1).expand(n, c, nw))
            start = row * w + c0
            flat[:, :, start:start + nw] = vals
    return out


@register_corruption("glass_blur")
@chunked(64)
def glass_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    sigma, delta, iters = GLASS[severity - 1]
    x = to_float01(images)
    x = to_uint8(_ops.gaussian_blur(x, sigma))
    x = glass_shuffle(x, delta, iters, seeds)
    return to_uint8(_ops.gaussian_blur(to_float01(x), sigma))
