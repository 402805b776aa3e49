"""Shared tensor helpers for the corruption modules (plain torch, batched, CPU and CUDA).

Every helper takes float tensors N×C×H×W (values usually in [0, 1]) unless said otherwise and never modifies its
input. What is here, for the noise/blur/digital modules and for the weather/rain/occlusion modules (part B):

Batching
    ``chunked(size=16)``: decorator for a registered corruption ``fn(images, severity, seeds)`` that runs CPU
    batches in chunks of ``size`` images (cache-sized tensors: 2-3x faster than one big batch on the CPU; CUDA
    batches run whole). Valid because every image's output depends only on that image and its seed.

Conversion
    ``to_float01(images_uint8) -> float32 in [0,1]``;
    ``to_uint8(x01) -> uint8`` (clip to [0,1], ×255, *truncate* like ``np.uint8`` in the reference);
    ``to_uint8_255(x255) -> uint8`` (same, for values on the 0..255 scale); ``to_uint8_255_`` overwrites its
    argument (a temporary of the caller's: in-place arithmetic on the corruptions' own temporaries saves the page
    faults of fresh big tensors, which cost about as much as the arithmetic).

Padding / boundary modes (scipy names)
    ``pad_index(n, before, after, mode, device)``: index vector implementing a boundary mode;
    ``pad2d(x, top, bottom, left, right, mode)``.  Modes: ``'nearest'`` (edge replicate, cv2 REPLICATE),
    ``'reflect'`` (scipy/skimage: d c b a | a b c d, half-sample symmetric), ``'mirror'`` (d c b | a b c d, whole-
    sample, = cv2 BORDER_REFLECT_101 = torch 'reflect'), ``'wrap'``, ``'constant'`` (zeros).

Separable and 2-D filtering
    ``gaussian_kernel1d(sigma, truncate=4.0)``: scipy.ndimage's kernel (radius ``int(truncate*sigma+0.5)``);
    ``filter_matrix(n, kernel1d, mode)``: n×n matrix M with ``M @ v == scipy.ndimage.correlate1d(v, k, mode)``;
    ``separable_filter(x, kh, kw, mode)``: correlate along H with ``kh`` and along W with ``kw`` (matmul with the
    banded boundary-folded matrices, block by block on the band: exact boundary handling, fast on CPU);
    ``gaussian_blur(x, sigma, truncate=4.0, mode='nearest')``: = skimage.filters.gaussian / scipy gaussian_filter
    (``sigma`` a float or (sigma_h, sigma_w));
    ``filter2d(x, kernel2d, mode='mirror')``: dense 2-D correlation, like cv2.filter2D (default border REFLECT_101;
    FFT for kernels larger than 7×7, on ``next_fast_len`` sizes);
    ``box_blur(x, k, mode='mirror')``: k×k mean filter with cv2.blur's anchor (k even: anchor at k//2);
    ``disk_kernel(radius, alias_blur)``: the anti-aliased disk of ImageNet-C's defocus blur.

Geometry
    ``zoom_center(x, factor)``: scipy-style ``clipped_zoom`` (centre crop of ceil(size/factor), linear zoom with
    scipy's corner-aligned grid, output cropped to the input size; zero where the zoom came out smaller);
    ``remap(x, map_y, map_x, mode='reflect')``: bilinear sampling at absolute pixel coordinates (N×H×W maps), like
    ``scipy.ndimage.map_coordinates(order=1, mode='reflect')`` (or mode 'nearest'/'constant');
    ``motion_blur_offsets(radius, angle_deg)`` and ``motion_blur(x, radius, sigma, angles_deg)``: ImageNet-C's
    motion blur (one-sided Gaussian of length 2·radius+1 along the angle, edge-replicated shifts), with one angle
    per image (a sequence of N floats, degrees).

Colour
    ``rgb_to_hsv(x)`` / ``hsv_to_rgb(x)``: skimage.color semantics (H, S, V all in [0,1]); the cases are picked by
    exact 0/1 factors in float arithmetic, not torch.where / comparisons (several times slower on the CPU);
    ``rgb_to_gray(x)``: cv2 RGB2GRAY weights (0.299, 0.587, 0.114) -> N×1×H×W.
"""

from __future__ import annotations

import functools
import math
from functools import lru_cache
from typing import Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.parallel import parallel_map

Number = Union[int, float]

# ---------------------------------------------------------------------------------------------------------------
# batching


def chunked(size: int = 16):
    """Decorator: run a corruption ``fn(images, severity, seeds)`` on CPU batches ``size`` images at a time (in
    parallel over torch's threads, :func:`robustreid.utils.parallel.parallel_map`)."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(images: torch.Tensor, severity: int, seeds):
            n = images.shape[0]
            if images.device.type != "cpu" or n <= size:
                return fn(images, severity, seeds)
            seeds = list(seeds)
            parts = parallel_map(lambda i: fn(images[i:i + size], severity, seeds[i:i + size]), range(0, n, size))
            return torch.cat(parts)

        return wrapper

    return deco


# ---------------------------------------------------------------------------------------------------------------
# conversion


def to_float01(images: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×H×W -> float32 in [0, 1] (a new tensor)."""
    return images.to(torch.float32, copy=True).div_(255.0)


def to_uint8(x01: torch.Tensor) -> torch.Tensor:
    """Float in [0,1] -> uint8, clipping and truncating like ``np.uint8(np.clip(x, 0, 1) * 255)``.

    A tiny epsilon keeps exact integers (x/255*255) from truncating one level down through float rounding.
    """
    return to_uint8_255_(x01 * 255.0)


def to_uint8_255(x255: torch.Tensor) -> torch.Tensor:
    """Float on the 0..255 scale -> uint8 (clip, truncate like ``np.uint8``)."""
    return (x255 + 1e-3).clamp_(0.0, 255.0).to(torch.int16).to(torch.uint8)  # as to_uint8_255_ below


def to_uint8_255_(x255: torch.Tensor) -> torch.Tensor:
    """:func:`to_uint8_255` that overwrites ``x255`` (for a temporary the caller owns: a big fresh tensor costs
    about as much as the arithmetic on it, in page faults)."""
    # float -> integer conversion truncates toward zero, which is floor for the clamped non-negative values; through
    # int16 (the same values) because torch's direct float -> uint8 conversion is ~4x slower on the CPU
    return x255.add_(1e-3).clamp_(0.0, 255.0).to(torch.int16).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------------------
# boundary modes

_MODES = ("nearest", "reflect", "mirror", "wrap", "constant")


def _map_index(idx: np.ndarray, n: int, mode: str) -> np.ndarray:
    """Map integer indices (possibly outside [0,n)) into [0,n) following a boundary mode; -1 for 'constant'."""
    if mode == "nearest":
        return np.clip(idx, 0, n - 1)
    if mode == "wrap":
        return np.mod(idx, n)
    if mode == "constant":
        return np.where((idx >= 0) & (idx < n), idx, -1)
    if mode == "reflect":  # d c b a | a b c d | d c b a  (period 2n)
        if n == 1:
            return np.zeros_like(idx)
        m = np.mod(idx, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    if mode == "mirror":  # d c b | a b c d | c b a  (period 2n-2)
        if n == 1:
            return np.zeros_like(idx)
        m = np.mod(idx, 2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    raise ValueError(f"unknown boundary mode {mode!r}; expected one of {_MODES}")


def pad_index(n: int, before: int, after: int, mode: str, device=None) -> torch.Tensor:
    """Index vector of length n+before+after implementing ``mode`` (not for 'constant')."""
    idx = _map_index(np.arange(-before, n + after), n, mode)
    return torch.as_tensor(idx, dtype=torch.long, device=device)


def pad2d(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str = "nearest") -> torch.Tensor:
    """Pad the last two dims of ``x`` with a scipy boundary mode."""
    if mode == "constant":
        return F.pad(x, (left, right, top, bottom))
    if x.ndim == 4 and x.is_floating_point():  # torch's own padding is ~10x faster than index_select
        h, w = x.shape[-2:]
        if mode == "nearest":
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        if mode == "mirror" and max(top, bottom) < h and max(left, right) < w:
            return F.pad(x, (left, right, top, bottom), mode="reflect")
    iy = pad_index(x.shape[-2], top, bottom, mode, x.device)
    ix = pad_index(x.shape[-1], left, right, mode, x.device)
    return x.index_select(-2, iy).index_select(-1, ix)


# ---------------------------------------------------------------------------------------------------------------
# separable filtering


@lru_cache(maxsize=256)
def _gaussian_kernel1d_cached(sigma: float, truncate: float) -> Tuple[float, ...]:
    radius = int(truncate * float(sigma) + 0.5)
    if sigma <= 0:
        return (1.0,)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 / (sigma * sigma) * x * x)
    return tuple((k / k.sum()).tolist())


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel: radius ``int(truncate*sigma + 0.5)``, normalised (float64)."""
    return np.asarray(_gaussian_kernel1d_cached(float(sigma), float(truncate)))


@lru_cache(maxsize=512)
def _filter_matrix_np(n: int, kernel: Tuple[float, ...], mode: str) -> np.ndarray:
    k = np.asarray(kernel, dtype=np.float64)
    r = len(k) // 2
    m = np.zeros((n, n), dtype=np.float64)
    rows = np.arange(n)
    for j, w in enumerate(k):  # correlation: out[i] = sum_j k[j] * in[i + j - r]
        src = _map_index(rows + j - r, n, mode)
        ok = src >= 0
        np.add.at(m, (rows[ok], src[ok]), w)
    return m


def filter_matrix(n: int, kernel1d, mode: str = "nearest", device=None, dtype=torch.float32) -> torch.Tensor:
    """n×n matrix M such that ``M @ v`` equals ``scipy.ndimage.correlate1d(v, kernel1d, mode=mode)``."""
    key = tuple(float(v) for v in np.asarray(kernel1d, dtype=np.float64).ravel())
    if len(key) % 2 == 0:
        raise ValueError("filter_matrix needs an odd-length kernel")
    return torch.as_tensor(_filter_matrix_np(int(n), key, mode), dtype=dtype, device=device)


def _banded_matmul(m: torch.Tensor, x: torch.Tensor, radius: int, dim: int, block: int = 32) -> torch.Tensor:
    """``m @ x`` along ``dim`` (-2: rows, -1: columns) for a banded ``m`` (|i - j| <= radius after boundary
    folding), done block by block on the band only (a few times fewer flops than the dense product)."""
    n = m.shape[0]
    if 2 * radius + block >= n or n < 2 * block:
        return torch.matmul(m, x) if dim == -2 else torch.matmul(x, m.t())
    outs = []
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        lo, hi = max(0, i0 - radius), min(n, i1 + radius)
        mb = m[i0:i1, lo:hi]
        if dim == -2:
            outs.append(torch.matmul(mb, x[..., lo:hi, :]))
        else:
            outs.append(torch.matmul(x[..., lo:hi], mb.t()))
    return torch.cat(outs, dim=dim)


def separable_filter(x: torch.Tensor, kh, kw, mode: str = "nearest") -> torch.Tensor:
    """Correlate the last two dims of ``x`` with 1-D kernels ``kh`` (along H) and ``kw`` (along W).

    ``kh`` / ``kw`` may be None to skip that axis.
    """
    out = x
    for k, dim in ((kh, -2), (kw, -1)):
        if k is None:
            continue
        n = x.shape[dim]
        mat = filter_matrix(n, k, mode, x.device, x.dtype)
        r = len(np.asarray(k).ravel()) // 2
        if mode == "wrap" or r >= n:
            out = torch.matmul(mat, out) if dim == -2 else torch.matmul(out, mat.t())
        else:
            out = _banded_matmul(mat, out, r, dim)
    return out


def gaussian_blur(x: torch.Tensor, sigma: Union[Number, Sequence[Number]], truncate: float = 4.0,
                  mode: str = "nearest") -> torch.Tensor:
    """Gaussian blur of the last two dims, = ``scipy.ndimage.gaussian_filter`` / ``skimage.filters.gaussian``
    (skimage's default mode is 'nearest'; pass ``mode='reflect'`` where the reference does)."""
    if isinstance(sigma, (int, float)):
        sh = sw = float(sigma)
    else:
        sh, sw = (float(s) for s in sigma)
    return separable_filter(x, gaussian_kernel1d(sh, truncate), gaussian_kernel1d(sw, truncate), mode)


# ---------------------------------------------------------------------------------------------------------------
# dense 2-D filtering


def filter2d(x: torch.Tensor, kernel2d: torch.Tensor, mode: str = "mirror",
             anchor: Tuple[int, int] = None, method: str = "auto") -> torch.Tensor:
    """2-D correlation of every channel of ``x`` (N×C×H×W float) with ``kernel2d`` (kh×kw), like cv2.filter2D.

    ``anchor`` (row, col) defaults to the kernel centre ``(kh//2, kw//2)``; the border follows ``mode``
    (cv2's default BORDER_REFLECT_101 is ``'mirror'``). ``method`` 'fft' (what cv2 does for large kernels),
    'direct' (conv2d) or 'auto' (fft for kernels larger than 7×7).
    """
    kernel2d = torch.as_tensor(kernel2d, dtype=x.dtype, device=x.device)
    kh, kw = kernel2d.shape
    ay, ax = anchor if anchor is not None else (kh // 2, kw // 2)
    n, c, h, w = x.shape
    xp = pad2d(x, ay, kh - 1 - ay, ax, kw - 1 - ax, mode)
    if method == "auto":
        method = "fft" if kh * kw > 49 else "direct"
    if method == "direct":
        out = F.conv2d(xp.reshape(n * c, 1, *xp.shape[-2:]), kernel2d[None, None])
        return out.reshape(n, c, h, w)
    # circular convolution on an FFT-friendly size >= the padded size: the valid outputs (from kh-1, kw-1 on)
    # never wrap around
    fh, fw = next_fast_len(xp.shape[-2]), next_fast_len(xp.shape[-1])
    kf = torch.zeros(fh, fw, dtype=x.dtype, device=x.device)
    kf[:kh, :kw] = kernel2d.flip(0, 1)  # correlation = convolution with the flipped kernel
    y = torch.fft.irfft2(torch.fft.rfft2(xp, s=(fh, fw)) * torch.fft.rfft2(kf), s=(fh, fw))
    return y[..., kh - 1:kh - 1 + h, kw - 1:kw - 1 + w]


def next_fast_len(n: int) -> int:
    """Smallest m >= n whose prime factors are 2, 3 and 5 (fast FFT sizes)."""
    m = max(int(n), 1)
    while True:
        k = m
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def box_blur(x: torch.Tensor, k: int, mode: str = "mirror") -> torch.Tensor:
    """k×k mean filter with cv2.blur's anchor (centre; k even -> anchor k//2) and border (REFLECT_101)."""
    k = int(k)
    n, c, h, w = x.shape
    a = k // 2
    xp = pad2d(x.reshape(n * c, 1, h, w), a, k - 1 - a, a, k - 1 - a, mode)
    return F.avg_pool2d(xp, k, stride=1).reshape(n, c, h, w)


@lru_cache(maxsize=32)
def _disk_kernel_np(radius: int, alias_blur: float) -> np.ndarray:
    if radius <= 8:
        L = np.arange(-8, 8 + 1)
        ksize = 3
    else:
        L = np.arange(-radius, radius + 1)
        ksize = 5
    X, Y = np.meshgrid(L, L)
    d = ((X ** 2 + Y ** 2) <= radius ** 2).astype(np.float64)
    d /= d.sum()
    # cv2.GaussianBlur(ksize, sigma=alias_blur), border REFLECT_101
    t = np.arange(ksize) - (ksize - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * alias_blur * alias_blur))
    g /= g.sum()
    mh = _filter_matrix_np(d.shape[0], tuple(g.tolist()), "mirror")
    return (mh @ d @ mh.T).astype(np.float32)


def disk_kernel(radius: int, alias_blur: float = 0.1) -> torch.Tensor:
    """ImageNet-C's anti-aliased disk (17×17 for radius <= 8, else (2r+1)²), sums to 1 before anti-aliasing."""
    return torch.from_numpy(_disk_kernel_np(int(radius), float(alias_blur)).copy())


# ---------------------------------------------------------------------------------------------------------------
# geometry


def zoom_center(x: torch.Tensor, factor: float) -> torch.Tensor:
    """scipy-style ``clipped_zoom`` of the last two dims: crop the centre ``ceil(size/factor)``, zoom it by
    ``factor`` with linear interpolation on scipy's corner-aligned grid (output size ``round(crop*factor)``), keep
    the top-left H×W; where the zoom came out smaller than H×W the rest is 0 (as the reference's fallback)."""
    h, w = x.shape[-2:]
    ch = int(math.ceil(h / float(factor)))
    cw = int(math.ceil(w / float(factor)))
    top, left = (h - ch) // 2, (w - cw) // 2
    oh, ow = int(round(ch * factor)), int(round(cw * factor))
    crop = x[..., top:top + ch, left:left + cw]
    lead = crop.shape[:-2]
    crop = crop.reshape(-1, 1, ch, cw) if crop.ndim != 4 else crop
    z = F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)
    z = z.reshape(*lead, oh, ow)[..., :h, :w]
    if z.shape[-2] < h or z.shape[-1] < w:
        z = F.pad(z, (0, w - z.shape[-1], 0, h - z.shape[-2]))
    return z


def remap(x: torch.Tensor, map_y: torch.Tensor, map_x: torch.Tensor, mode: str = "reflect") -> torch.Tensor:
    """Bilinear sampling of ``x`` (N×C×H×W) at absolute pixel coordinates ``map_y``/``map_x`` (N×H'×W').

    ``mode='reflect'`` follows scipy.ndimage.map_coordinates(order=1, mode='reflect') (half-sample symmetric);
    ``'nearest'`` clamps; ``'constant'`` reads zeros outside.
    """
    h, w = x.shape[-2:]
    gx = (2.0 * map_x + 1.0) / w - 1.0
    gy = (2.0 * map_y + 1.0) / h - 1.0
    grid = torch.stack([gx, gy], dim=-1).to(x.dtype)
    pm = {"reflect": "reflection", "nearest": "border", "constant": "zeros"}[mode]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=pm, align_corners=False)


def motion_blur_offsets(radius: int, angle_deg: float) -> list:
    """The (dy, dx) integer shift of each tap of ImageNet-C's motion blur at ``angle_deg`` (2·radius+1 taps)."""
    width = 2 * int(radius) + 1
    a = np.deg2rad(angle_deg)
    py, px = width * np.sin(a), width * np.cos(a)
    hyp = math.hypot(py, px)
    return [(-math.ceil(((i * py) / hyp) - 0.5), -math.ceil(((i * px) / hyp) - 0.5)) for i in range(width)]


def motion_blur_kernel1d(radius: int, sigma: float) -> np.ndarray:
    """One-sided Gaussian weights exp(-i²/2σ²), i = 0..2·radius, normalised."""
    i = np.arange(2 * int(radius) + 1, dtype=np.float64)
    k = np.exp(-(i ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def motion_blur(x: torch.Tensor, radius: int, sigma: float, angles_deg: Sequence[float]) -> torch.Tensor:
    """ImageNet-C motion blur of every image of ``x`` (N×C×H×W float, any scale) along its own angle.

    out = Σ_i k[i] · x shifted by (dy_i, dx_i) with edge replication; taps stop once a shift reaches the image
    size (as the reference does).
    """
    n, c, h, w = x.shape
    if len(angles_deg) != n:
        raise ValueError(f"motion_blur: got {len(angles_deg)} angles for {n} images")
    k = motion_blur_kernel1d(radius, sigma)
    taps = []
    for a in angles_deg:
        t = []
        for i, (dy, dx) in enumerate(motion_blur_offsets(radius, float(a))):
            if abs(dy) >= h or abs(dx) >= w:
                break
            t.append((float(k[i]), dy, dx))
        taps.append(t)
    offs = [(dy, dx) for t in taps for _, dy, dx in t] or [(0, 0)]
    # shifted[y, x] = img[clamp(y - dy), clamp(x - dx)]: pad only the sides the shifts reach
    top = max(max(dy for dy, _ in offs), 0)
    bottom = max(max(-dy for dy, _ in offs), 0)
    left = max(max(dx for _, dx in offs), 0)
    right = max(max(-dx for _, dx in offs), 0)
    xp = F.pad(x, (left, right, top, bottom), mode="replicate") if (top or bottom or left or right) else x
    out = torch.zeros_like(x)
    for j in range(n):
        acc = out[j]
        src = xp[j]
        for wgt, dy, dx in taps[j]:
            acc.add_(src[:, top - dy:top - dy + h, left - dx:left - dx + w], alpha=wgt)
    return out


# ---------------------------------------------------------------------------------------------------------------
# colour


def _is_zero(a: torch.Tensor) -> torch.Tensor:
    """1.0 where ``a`` (>= 0) is 0, else 0.0 (float arithmetic: comparisons and torch.where cost several times
    more than arithmetic on the CPU)."""
    return 1 - torch.sign(a)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0,1] (N×3×H×W) -> HSV in [0,1], skimage.color.rgb2hsv semantics.

    The cases are selected by 0/1 factors (exact: every sum has one non-zero term)."""
    r, g, b = x.unbind(-3)
    v = torch.maximum(torch.maximum(r, g), b)
    delta = v - torch.minimum(torch.minimum(r, g), b)
    s = delta / (v + _is_zero(v))  # 0 where delta is 0
    gray = _is_zero(delta)
    # the channel holding the max decides (blue over green over red on ties, as the reference's order)
    is_b = _is_zero(v - b)
    is_g = _is_zero(v - g) * (1 - is_b)
    is_r = 1 - is_b - is_g
    num = (r - g) * is_b + (b - r) * is_g + (g - b) * is_r
    h = (num / (delta + gray) + (4 * is_b + 2 * is_g)) / 6.0  # in [-1/6, 5/6]
    h = (h - torch.floor(h)) * (1 - gray)  # = remainder(h, 1), 0 for grays
    return torch.stack([h, s, v], dim=-3)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """HSV in [0,1] -> RGB, skimage.color.hsv2rgb semantics (sector selection by 0/1 factors, exact: one non-zero
    term per sum)."""
    h, s, v = x.unbind(-3)
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i - 6 * torch.floor(i / 6)  # remainder(i, 6) of an integer
    p = v * (1 - s)
    q = v * (1 - f * s)
    t = v * (1 - (1 - f) * s)
    m = [(1 - (i - k).abs()).clamp_(min=0) for k in range(6)]  # 1 where i == k
    r = v * (m[0] + m[5]) + q * m[1] + p * (m[2] + m[3]) + t * m[4]
    g = t * m[0] + v * (m[1] + m[2]) + q * m[3] + p * (m[4] + m[5])
    b = p * (m[0] + m[1]) + t * m[2] + v * (m[3] + m[4]) + q * m[5]
    return torch.stack([r, g, b], dim=-3)


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """RGB -> N×1×H×W gray with cv2's RGB2GRAY weights."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)
