"""Digital corruptions (ImageNet-C parameters): brightness, contrast, elastic_transform, pixelate,
jpeg_compression, saturate.

Re-expressed in torch from ``imagecorruptions`` 1.1.5: HSV with skimage's formulas; pixelate with PIL's BOX
downsampling weights and NEAREST upsampling (8-bit rounding between the two passes as PIL does); elastic transform
with a uniform displacement field smoothed by scipy's Gaussian (mode 'reflect', truncate 3) and a bilinear remap
with half-sample reflection. JPEG is the one non-torch step: PIL encode/decode per image on the CPU.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import List

import numpy as np
import torch

from . import _ops
from ._ops import chunked, to_float01, to_uint8_255_
from .base import image_generator, register_corruption

BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
ELASTIC_ALPHA = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)
PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
JPEG_QUALITY = (25, 18, 15, 10, 7)
SATURATE = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))


@register_corruption("brightness")
@chunked(16)
def brightness(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    """V += c in HSV."""
    hsv = _ops.rgb_to_hsv(to_float01(images))
    h, s, v = hsv.unbind(1)
    v = (v + BRIGHTNESS[severity - 1]).clamp(0, 1)
    return to_uint8_255_(_ops.hsv_to_rgb(torch.stack([h, s, v], 1)).mul_(255.0))


@register_corruption("saturate")
@chunked(16)
def saturate(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    """S = clip(S·mult + add) in HSV."""
    mult, add = SATURATE[severity - 1]
    hsv = _ops.rgb_to_hsv(to_float01(images))
    h, s, v = hsv.unbind(1)
    s = (s * mult + add).clamp(0, 1)
    return to_uint8_255_(_ops.hsv_to_rgb(torch.stack([h, s, v], 1)).mul_(255.0))


@register_corruption("contrast")
@chunked(16)
def contrast(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    """(x - mean)·c + mean, mean per image and channel."""
    x = to_float01(images)
    m = x.mean(dim=(2, 3), keepdim=True)
    return to_uint8_255_(x.sub_(m).mul_(CONTRAST[severity - 1]).add_(m).mul_(255.0))  # in place: own temporary


@register_corruption("elastic_transform")
@chunked(16)
def elastic_transform(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    """Uniform displacement field U(±0.005·H), Gaussian-smoothed (σ = 0.01·(H, W), truncate 3, reflect), ×α,
    bilinear remap with reflection."""
    n, _, h, w = images.shape
    alpha = ELASTIC_ALPHA[severity - 1]
    max_d = h * 0.005
    f = torch.empty(n, 2, h, w)
    for i, s in enumerate(seeds):
        torch.rand(2, h, w, generator=image_generator(s), out=f[i])  # dx then dy
    f = f.mul_(2 * max_d).sub_(max_d).to(images.device)
    f = _ops.gaussian_blur(f, (0.01 * h, 0.01 * w), truncate=3.0, mode="reflect").mul_(alpha)
    yy, xx = torch.meshgrid(torch.arange(h, device=images.device, dtype=torch.float32),
                            torch.arange(w, device=images.device, dtype=torch.float32), indexing="ij")
    out = _ops.remap(to_float01(images), yy + f[:, 1], xx + f[:, 0], mode="reflect")
    return to_uint8_255_(out.mul_(255.0))


@lru_cache(maxsize=64)
def _pil_box_matrix(in_size: int, out_size: int) -> np.ndarray:
    """PIL's BOX resampling weights (ImagingResample precompute_coeffs) as an out×in matrix."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((out_size, in_size), dtype=np.float64)
    for o in range(out_size):
        center = (o + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        for x in range(xmin, xmax):
            t = (x - center + 0.5) / filterscale
            if -0.5 < t <= 0.5:
                m[o, x] = 1.0
        tot = m[o].sum()
        if tot:
            m[o] /= tot
    return m


def _pil_nearest_index(in_size: int, out_size: int) -> torch.Tensor:
    scale = in_size / out_size
    return torch.tensor([min(int((o + 0.5) * scale), in_size - 1) for o in range(out_size)], dtype=torch.long)


@register_corruption("pixelate")
@chunked(16)
def pixelate(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    """PIL BOX downsample to (int(W·c), int(H·c)), then NEAREST back to H×W."""
    c = PIXELATE[severity - 1]
    n, _, h, w = images.shape
    sh, sw = max(int(h * c), 1), max(int(w * c), 1)
    dev = images.device
    mw = torch.as_tensor(_pil_box_matrix(w, sw), dtype=torch.float32, device=dev)
    mh = torch.as_tensor(_pil_box_matrix(h, sh), dtype=torch.float32, device=dev)
    x = images.to(torch.float32)
    x = torch.matmul(x, mw.t()).add_(0.5).floor_().clamp_(0, 255)  # horizontal pass, 8-bit as PIL
    x = torch.matmul(mh, x).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return x.index_select(-1, _pil_nearest_index(sw, w).to(dev)).index_select(-2, _pil_nearest_index(sh, h).to(dev))


def _jpeg_roundtrip(a: np.ndarray, quality: int) -> np.ndarray:
    """PIL's JPEG encoder, then its JPEG decoder straight from the bytes: the pixels ``Image.open(buf)`` gives (the
    same decoder and arguments), without parsing the file's markers in Python (half the reference's time)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=quality)
    h, w = a.shape[:2]
    return np.asarray(Image.frombytes("RGB", (w, h), buf.getvalue(), "jpeg", "RGB", ""))


@register_corruption("jpeg_compression")
@chunked(16)
def jpeg_compression(images: torch.Tensor, severity: int, seeds: List[int]) -> torch.Tensor:
    """Re-encode as JPEG at quality 25/18/15/10/7 with PIL (per image, on the CPU; PIL releases the GIL, so
    with more than one torch thread the chunks are spread over that many threads)."""
    q = JPEG_QUALITY[severity - 1]
    arr = images.detach().cpu().permute(0, 2, 3, 1).contiguous().numpy()
    out = np.stack([_jpeg_roundtrip(a, q) for a in arr])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)
