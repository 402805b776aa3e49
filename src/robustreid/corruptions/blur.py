"""Blur corruptions (ImageNet-C parameters): defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur.

Re-expressed in torch from the semantics of ``imagecorruptions`` 1.1.5 (boundary modes included):

* gaussian_blur: skimage ``gaussian`` (scipy kernel, truncate 4, mode 'nearest');
* defocus_blur: cv2.filter2D with the anti-aliased disk (border REFLECT_101);
* zoom_blur: mean of the image and its scipy ``clipped_zoom`` s;
* motion_blur: one-sided Gaussian taps along a random angle U(-45°, 45°), edge-replicated shifts;
* glass_blur: Gaussian blur, truncation to uint8, the sequential local pixel "swap" (which in the reference
  copies: ``x[h,w] <- x[h+dy, w+dx]`` with dx, dy ~ U{-d..d-1}, scanned bottom-to-top and right-to-left, each
  copy seeing the earlier ones), Gaussian blur again. We run the scan exactly, on index maps: a pixel whose
  source was written earlier in the pass (a row below, or to the right on the same row: a larger flat index)
  takes that source's final value, so each pass is "follow the chain of such sources", resolved for all pixels
  at once by pointer doubling; the passes compose into one index map and the pixels are gathered once (2.3x
  faster than the former row-by-row scan at severity 3, same output). Only the random numbers differ from the
  reference (torch generator per image instead of numba's global numpy state), so the output distribution is
  the same.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch

from . import _ops
from ._ops import chunked, to_float01, to_uint8, to_uint8_255_
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
    return to_uint8_255_(_ops.gaussian_blur(x, GAUSSIAN_SIGMA[severity - 1]).mul_(255.0))


@register_corruption("defocus_blur")
@chunked(16)
def defocus_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    radius, alias = DEFOCUS[severity - 1]
    x = to_float01(images)
    return to_uint8_255_(_ops.filter2d(x, _ops.disk_kernel(radius, alias), mode="mirror").mul_(255.0))


@register_corruption("zoom_blur")
@chunked(16)
def zoom_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    zooms = ZOOMS[severity - 1]
    x = to_float01(images)
    out = x.clone()
    for z in zooms:
        out += _ops.zoom_center(x, float(z))
    return to_uint8_255_(out.div_(len(zooms) + 1).mul_(255.0))


def _angles(seeds: List[int], low: float, high: float) -> List[float]:
    return [low + (high - low) * float(torch.rand(1, generator=image_generator(s), dtype=torch.float64))
            for s in seeds]


@register_corruption("motion_blur")
@chunked(16)
def motion_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    radius, sigma = MOTION[severity - 1]
    x = images.to(torch.float32)
    return to_uint8_255_(_ops.motion_blur(x, radius, sigma, _angles(seeds, -45.0, 45.0)))


def glass_shuffle(x: torch.Tensor, max_delta: int, iterations: int, seeds: List[int]) -> torch.Tensor:
    """The reference's sequential local pixel copy, exact up to the random numbers (see the module docstring).

    ``x`` is N×C×H×W (any dtype); returns a new tensor. Works on index maps over the flat image: in a pass,
    pixel p (processed ones in scan order) copies from src(p) = p + dy·W + dx. A source with a larger flat index
    than p (a row below, or to the right on the same row) was written earlier in the pass and holds its own final
    value, so p's value is that of the end of its chain of such sources; chains are resolved for all pixels at
    once by pointer doubling (an unprocessed pixel ends a chain: it points to itself). The passes compose into
    one map, and the pixels are gathered once at the end.
    """
    n, c, h, w = x.shape
    d = int(max_delta)
    nr, nw = h - 2 * d, w - 2 * d  # processed rows h-d .. d+1 (bottom to top), columns w-d .. d+1 (right to left)
    if nr <= 0 or nw <= 0:
        return x.clone()
    # per image: iterations × rows × columns × (dx, dy), each U{-d .. d-1} like np.random.randint(-d, d) (the
    # same numbers in any integer dtype); row i is image row h-d-i, column j is image column d+1+j
    draws = torch.empty((n, iterations, nr, nw, 2), dtype=torch.int16)
    for i, s in enumerate(seeds):
        torch.randint(-d, d, (iterations, nr, nw, 2), generator=image_generator(s), dtype=torch.int16, out=draws[i])
    step = draws[..., 1].to(torch.int32).mul_(w).add_(draws[..., 0]).transpose(0, 1).flip(2)
    delta = torch.zeros((iterations, n, h, w), dtype=torch.int32)  # dy·W + dx on the image grid, 0 unprocessed
    delta[:, :, d + 1:h - d + 1, d + 1:w - d + 1] = step
    delta = delta.view(iterations, n, h * w).to(x.device)
    pix = torch.arange(h * w, device=x.device).expand(n, h * w)
    total = None  # pixel p ends up with the input's value at total[p]
    for it in range(iterations):
        src = pix + delta[it]
        ptr = pix + delta[it].clamp(min=0)  # follow sources written earlier in the pass, else stop at p
        while True:
            nxt = ptr.gather(1, ptr)
            if torch.equal(nxt, ptr):
                break
            ptr = nxt
        src = src.gather(1, ptr)
        total = src if total is None else total.gather(1, src)
    flat = x.reshape(n, c, h * w)
    return flat.gather(2, total.unsqueeze(1).expand(n, c, h * w)).view(n, c, h, w)


@register_corruption("glass_blur")
@chunked(64)
def glass_blur(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    sigma, delta, iters = GLASS[severity - 1]
    x = to_float01(images)
    x = to_uint8(_ops.gaussian_blur(x, sigma))
    x = glass_shuffle(x, delta, iters, seeds)
    return to_uint8_255_(_ops.gaussian_blur(to_float01(x), sigma).mul_(255.0))
