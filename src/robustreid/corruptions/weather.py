"""Weather corruptions of ImageNet-C: snow, frost, fog, spatter — batched plain torch.

Each follows the semantics of ``imagecorruptions`` 1.1.5 (the benchmark's reference) step by step, re-expressed on
batches N×3×H×W: the per-severity parameters, the border modes of the filters it uses, where it rounds and clips,
and the final ``np.uint8`` truncation. All randomness of image i is drawn from ``seeds[i]`` on the CPU (one
:func:`~robustreid.corruptions.base.image_generator` per image), so the output of an image does not depend on its
batch, the thread count or the device. What knowingly differs from the reference is listed in
``docs/corruptions_weather_occlusion.md``.

Frost needs frost photographs: the five (six files) shipped by ``imagecorruptions`` are used when that package is
installed (extra ``reference``); otherwise seeded procedural textures from :mod:`.frost_textures` stand in.
:func:`frost_source` says which one a run uses; :func:`set_frost_source` forces one.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._ops import chunked, gaussian_blur, motion_blur, rgb_to_gray, to_uint8_255_
from .base import image_generator, register_corruption

# ----------------------------------------------------------------------------------------------------------------
# helpers (float tensors N×C×H×W unless noted); filters, motion blur and gray come from ._ops


def box_blur_fast(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.blur (k×k mean, anchor k//2, border reflect-101) on N×C×H×W float, as sums of shifted slices.

    Same result as ``_ops.box_blur`` (up to float rounding), several times faster on the CPU for small k."""
    h, w = x.shape[-2:]
    a = k // 2
    mode = "reflect" if a < min(h, w) and k - 1 - a < min(h, w) else "replicate"
    y = F.pad(x, (a, k - 1 - a, 0, 0), mode=mode)
    acc = y[..., 0:w].clone()
    for i in range(1, k):
        acc += y[..., i:i + w]
    y = F.pad(acc, (0, 0, a, k - 1 - a), mode=mode)
    acc = y[..., 0:h, :].clone()
    for i in range(1, k):
        acc += y[..., i:i + h, :]
    return acc / float(k * k)


def _draws(seeds: Sequence[int], fn) -> List:
    """Run ``fn(generator)`` once per image (its own CPU generator): per-image randomness in a fixed order."""
    return [fn(image_generator(s)) for s in seeds]


# ----------------------------------------------------------------------------------------------------------------
# snow

_SNOW = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8),
         (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
         (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
         (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
         (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]


def _clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """Centre crop of ceil(side/zoom), then scipy.ndimage.zoom(order=1) (corner-aligned linear) by ``zoom``.

    The output is round(crop·zoom) per side, which may exceed the input by a pixel or two (the reference crops
    later, after the motion blur — which is why this is not ``_ops.zoom_center``, which crops at once). ``x`` is
    N×C×H×W float."""
    h, w = x.shape[-2:]
    ch, cw = int(math.ceil(h / zoom)), int(math.ceil(w / zoom))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[..., top:top + ch, left:left + cw]
    oh, ow = int(round(ch * zoom)), int(round(cw * zoom))
    return F.interpolate(crop, size=(oh, ow), mode="bilinear", align_corners=True)


@register_corruption("snow")
@chunked(16)
def snow(images: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    loc, scale, zoom, thr, radius, sigma, blend = _SNOW[severity - 1]
    n, _, h, w = images.shape
    dev = images.device
    draws = _draws(seeds, lambda g: (torch.randn(h, w, generator=g),
                                     float(torch.rand(1, generator=g, dtype=torch.float64)) * 90.0 - 135.0))
    layer = torch.stack([d[0] for d in draws]).unsqueeze(1).to(dev) * scale + loc  # float32 (float64 draws are 10× slower)
    layer = _clipped_zoom(layer, zoom)
    # = where(layer < thr, 0, layer) (torch.where is several times slower on the CPU; the -0s it leaves vanish
    # in the motion blur's sum)
    layer = (layer * (layer >= thr)).clamp_(0, 1)
    layer = motion_blur(layer, radius, sigma, [d[1] for d in draws])
    layer = torch.round(layer * 255) / 255.0
    layer = layer[..., :h, :w]
    x = images.float().div_(255.0)
    x = blend * x + (1 - blend) * torch.maximum(x, rgb_to_gray(x) * 1.5 + 0.5)
    out = x.add_(layer).add_(torch.flip(layer, dims=(-2, -1)))
    return to_uint8_255_(out.clamp_(0, 1).mul_(255))


# ----------------------------------------------------------------------------------------------------------------
# fog

_FOG = [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)]


def _next_pow2(v: int) -> int:
    return 1 if v == 0 else 2 ** (v - 1).bit_length()


def _plasma_counts(mapsize: int) -> List[int]:
    counts, step = [], mapsize
    while step >= 2:
        counts.append((mapsize // step) ** 2)
        step //= 2
    return counts


def _plasma_raw(mapsize: int, wibbledecay: float, seeds: Sequence[int], device=None) -> torch.Tensor:
    """Un-normalised diamond-square maps N×mapsize×mapsize (float32), one per seed."""
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    counts = _plasma_counts(mapsize)
    total = 3 * sum(counts)
    u = torch.stack([torch.rand(total, generator=image_generator(s)) for s in seeds])
    u = u.to(device) if device is not None else u
    n = len(seeds)
    m = torch.zeros(n, mapsize, mapsize, device=u.device)  # float32, as the reference's map
    step, wibble, pos = mapsize, 100.0, 0

    def noise(count: int, side: int) -> torch.Tensor:
        # wibble · U(−wibble, wibble)
        nonlocal pos
        r = u[:, pos:pos + count].view(n, side, side)
        pos += count
        return r * (2.0 * wibble * wibble) - wibble * wibble

    for count in counts:
        side = mapsize // step
        half = step // 2
        ul = m[:, 0::step, 0::step]
        sq = ul + torch.roll(ul, -1, dims=1)
        sq = sq + torch.roll(sq, -1, dims=2)
        dr = torch.addcmul(noise(count, side), sq, torch.tensor(0.25, device=u.device))
        m[:, half::step, half::step] = dr
        lt = dr + torch.roll(dr, 1, dims=1) + ul + torch.roll(ul, -1, dims=2)
        m[:, 0::step, half::step] = torch.addcmul(noise(count, side), lt, torch.tensor(0.25, device=u.device))
        tt = dr + torch.roll(dr, 1, dims=2) + ul + torch.roll(ul, -1, dims=1)
        m[:, half::step, 0::step] = torch.addcmul(noise(count, side), tt, torch.tensor(0.25, device=u.device))
        step //= 2
        wibble /= wibbledecay
    return m


def plasma_fractal(mapsize: int, wibbledecay: float, seeds: Sequence[int], device=None) -> torch.Tensor:
    """Diamond-square height maps N×mapsize×mapsize in [0, 1], one per seed (the reference's algorithm: square
    step then the two diamond fills per level, wrap-around neighbours, noise ±wibble² shrinking by ``wibbledecay``)."""
    m = _plasma_raw(mapsize, wibbledecay, seeds, device)
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True)


@register_corruption("fog")
@chunked(16)
def fog(images: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    strength, decay = _FOG[severity - 1]
    n, _, h, w = images.shape
    mapsize = _next_pow2(max(h, w, 3))
    raw = _plasma_raw(mapsize, decay, seeds, device=images.device)
    lo = raw.amin(dim=(1, 2), keepdim=True)
    hi = raw.amax(dim=(1, 2), keepdim=True)
    # normalise only the part that is used: plasma = (raw − lo) / (hi − lo) on [:h, :w]
    plasma = ((raw[:, :h, :w] - lo) * (255.0 * strength / (hi - lo).clamp(min=1e-12))).unsqueeze(1)  # strength·plasma, 0..255 scale
    max_val = images.amax(dim=(1, 2, 3), keepdim=True).float() / 255.0
    return to_uint8_255_(images.float().add_(plasma).mul_(max_val / (max_val + strength)))


# ----------------------------------------------------------------------------------------------------------------
# frost

_FROST = [(1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]
_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
_frost_forced: Optional[str] = None
_frost_cache: Dict[Tuple[str, int, float], torch.Tensor] = {}
_frost_originals: Dict[str, List[torch.Tensor]] = {}

PHOTOGRAPHS = "imagecorruptions-photographs"
GENERATED = "generated"


def _photo_dir() -> Optional[Path]:
    """The folder of frost photographs inside an installed ``imagecorruptions`` (found without importing it)."""
    try:
        spec = importlib.util.find_spec("imagecorruptions")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "frost"
        if all((d / f).is_file() for f in _FROST_FILES):
            return d
    return None


def set_frost_source(source: Optional[str]) -> None:
    """Force the frost textures: ``"imagecorruptions-photographs"``, ``"generated"``, or None (automatic: the
    photographs when ``imagecorruptions`` is installed, else generated)."""
    global _frost_forced
    if source not in (None, PHOTOGRAPHS, GENERATED):
        raise ValueError(f"frost source must be {PHOTOGRAPHS!r}, {GENERATED!r} or None, got {source!r}")
    if source == PHOTOGRAPHS and _photo_dir() is None:
        raise ValueError("frost source 'imagecorruptions-photographs' needs the reference package: "
                         "pip install 'robustreid[reference]' (imagecorruptions-imaug)")
    _frost_forced = source


def frost_source() -> str:
    """Which frost textures this process uses: ``"imagecorruptions-photographs"`` or ``"generated"``."""
    if _frost_forced is not None:
        return _frost_forced
    return PHOTOGRAPHS if _photo_dir() is not None else GENERATED


def _frost_textures(source: str) -> List[torch.Tensor]:
    """The six frost textures as float 3×h×w RGB tensors on 0..255 (CPU), loaded or generated once."""
    if source not in _frost_originals:
        if source == PHOTOGRAPHS:
            from PIL import Image
            d = _photo_dir()
            texs = []
            for f in _FROST_FILES:
                with Image.open(d / f) as im:
                    arr = torch.frombuffer(bytearray(im.convert("RGB").tobytes()), dtype=torch.uint8)
                    texs.append(arr.view(im.height, im.width, 3).permute(2, 0, 1).float())
        else:
            from .frost_textures import generated_frost_textures
            texs = [t.float() for t in generated_frost_textures()]
        _frost_originals[source] = texs
    return _frost_originals[source]


def _frost_rescaled(source: str, idx: int, h: int, w: int) -> torch.Tensor:
    """Texture ``idx`` rescaled as the reference does: so it covers h×w, times 1.1, bicubic, rounded to uint8."""
    tex = _frost_textures(source)[idx]
    fh, fw = tex.shape[-2:]
    if fh >= h and fw >= w:
        s = 1.0
    elif fh < h and fw >= w:
        s = h / fh
    elif fh >= h and fw < w:
        s = w / fw
    else:
        s = max(h / fh, w / fw)
    s *= 1.1
    key = (source, idx, s)
    if key not in _frost_cache:
        size = (int(math.ceil(fh * s)), int(math.ceil(fw * s)))
        r = F.interpolate(tex[None], size=size, mode="bicubic", align_corners=False)[0]
        _frost_cache[key] = r.round().clamp(0, 255)
    return _frost_cache[key]


@register_corruption("frost")
@chunked(16)
def frost(images: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    ci, cf = _FROST[severity - 1]
    n, _, h, w = images.shape
    source = frost_source()
    draws = _draws(seeds, lambda g: (int(torch.randint(0, 6, (1,), generator=g)),
                                     torch.rand(2, generator=g, dtype=torch.float64)))
    crops = []
    for idx, u in draws:
        tex = _frost_rescaled(source, idx, h, w)
        th, tw = tex.shape[-2:]
        top = int(u[0] * max(th - h, 1))
        left = int(u[1] * max(tw - w, 1))
        crops.append(tex[:, top:top + h, left:left + w])
    fr = torch.stack(crops).to(images.device)
    return to_uint8_255_(images.float().mul_(ci).add_(fr.mul_(cf)))  # fr: a fresh stack


# ----------------------------------------------------------------------------------------------------------------
# spatter

_SPATTER = [(0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1)]

_TAN22 = math.tan(math.radians(22.5))
_TAN67 = math.tan(math.radians(67.5))


def _dilate3(m: torch.Tensor) -> torch.Tensor:
    """3×3 binary dilation of a bool N×1×H×W (separable ORs of shifted slices)."""
    h, w = m.shape[-2:]
    p = F.pad(m, (1, 1, 0, 0))
    r = p[..., 0:w] | p[..., 1:w + 1] | p[..., 2:w + 2]
    p = F.pad(r, (0, 0, 1, 1))
    return p[..., 0:h, :] | p[..., 1:h + 1, :] | p[..., 2:h + 2, :]


def _canny(img: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV Canny (aperture 3, L1 magnitude) on integer-valued float N×1×H×W -> bool edges."""
    h, w = img.shape[-2:]
    q = F.pad(img, (1, 1, 1, 1), mode="replicate")  # cv2.Canny's Sobel border
    dxr = q[..., :, 2:] - q[..., :, :-2]  # horizontal difference, (H+2)×W
    dyr = q[..., 2:, :] - q[..., :-2, :]  # vertical difference, H×(W+2)
    gx = dxr[..., :-2, :] + 2 * dxr[..., 1:-1, :] + dxr[..., 2:, :]
    gy = dyr[..., :, :-2] + 2 * dyr[..., :, 1:-1] + dyr[..., :, 2:]
    ax, ay = gx.abs(), gy.abs()
    mag = ax + ay
    # non-maximum suppression on the whole grid with comparisons and boolean algebra (torch.where is several
    # times slower than a comparison on the CPU): the neighbours along the gradient direction, from the magnitude
    # with a zero border (as OpenCV's magnitude buffer)
    pm = F.pad(mag, (1, 1, 1, 1))
    up, down = pm[..., :-2, 1:-1], pm[..., 2:, 1:-1]
    left, right = pm[..., 1:-1, :-2], pm[..., 1:-1, 2:]
    horiz = ay < ax * _TAN22
    vert = ay > ax * _TAN67
    diag = ~(horiz | vert)
    pos = diag & (gx * gy >= 0)  # diagonal: previous row at x - 1, next row at x + 1
    neg = diag ^ pos  # the other diagonal: previous row at x + 1, next row at x - 1
    over_prev = (horiz & (mag > left)) | (vert & (mag > up)) | (pos & (mag > pm[..., :-2, :-2])) \
        | (neg & (mag > pm[..., :-2, 2:]))
    over_next = (horiz & (mag >= right)) | (vert & (mag >= down)) | (pos & (mag > pm[..., 2:, 2:])) \
        | (neg & (mag > pm[..., 2:, :-2]))
    cand = (mag > low) & over_prev & over_next
    edges = cand & (mag > high)
    while True:  # hysteresis: weak candidates 8-connected to an edge become edges
        grown = cand & _dilate3(edges)
        if torch.equal(grown, edges):
            break
        edges = grown | edges
    return edges


def _edt_trunc(edges: torch.Tensor, limit: int) -> torch.Tensor:
    """Euclidean distance N×1×H×W to the nearest True pixel, capped at ``limit`` (exact within the cap).

    Two min-plus passes in int16 (values never exceed 2·limit²): the squared distance to the nearest edge in the
    same column, g² = min over |dy| <= limit of dy² [edge at y + dy]; then D² = min over |dx| <= limit of
    (dx² + g² at x + dx)."""
    h, w = edges.shape[-2:]
    lim2 = limit * limit
    g = (~edges).to(torch.int16).mul_(lim2)
    r = min(limit, h - 1)
    gp = F.pad(g, (0, 0, r, r), value=lim2)
    for dy in range(1, r + 1):
        both = torch.minimum(gp[..., r + dy:r + dy + h, :], gp[..., r - dy:r - dy + h, :])
        g = torch.minimum(g, both + dy * dy)
    g = g.clamp(max=lim2)
    best = g.clone()
    r = min(limit, w - 1)
    gp = F.pad(g, (r, r, 0, 0), value=lim2)
    for dx in range(1, r + 1):
        both = torch.minimum(gp[..., r + dx:r + dx + w], gp[..., r - dx:r - dx + w])
        best = torch.minimum(best, both + dx * dx)
    return best.float().sqrt().clamp(max=float(limit))


def _equalize_hist(x: torch.Tensor) -> torch.Tensor:
    """cv2.equalizeHist per image on integer-valued float N×1×H×W (0..255)."""
    n = x.shape[0]
    v = x.reshape(n, -1).long()
    total = v.shape[1]
    hist = torch.zeros(n, 256, dtype=torch.float64, device=x.device).scatter_add_(
        1, v, torch.ones_like(v, dtype=torch.float64))
    first = (hist > 0).float().argmax(dim=1, keepdim=True)
    h0 = hist.gather(1, first)
    cdf = hist.cumsum(1)
    scale = 255.0 / (total - h0).clamp(min=1)
    lut = torch.round((cdf - h0) * scale).clamp(0, 255)
    idx = torch.arange(256, device=x.device).view(1, 256)
    lut = torch.where(idx <= first, torch.zeros_like(lut), lut)
    lut = torch.where(h0 == total, first.to(lut.dtype).expand_as(lut), lut)  # single value: identity
    return lut.gather(1, v).view_as(x).to(x.dtype)


def _filter2d_u8(x: torch.Tensor, ker: torch.Tensor) -> torch.Tensor:
    """cv2.filter2D(..., CV_8U, ker) (correlation, border reflect-101, saturated rounding)."""
    h, w = x.shape[-2:]
    p = F.pad(x, (1, 1, 1, 1), mode="reflect" if min(h, w) > 1 else "replicate")
    acc = torch.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if float(ker[i, j]) != 0.0:
                acc = acc + float(ker[i, j]) * p[..., i:i + h, j:j + w]
    return acc.round().clamp(0, 255)


_EMBOSS = torch.tensor([[-2., -1., 0.], [-1., 1., 1.], [0., 1., 2.]])


@register_corruption("spatter")
@chunked(16)
def spatter(images: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
    loc, scale, sigma, thr, intensity, mode = _SPATTER[severity - 1]
    n, _, h, w = images.shape
    dev = images.device
    noise = torch.stack(_draws(seeds, lambda g: torch.randn(h, w, generator=g)))  # N×H×W
    liquid = gaussian_blur((noise.unsqueeze(1) * scale + loc).float().to(dev), sigma)
    liquid = liquid * (liquid >= thr)  # = where(liquid < thr, 0, liquid) up to the sign of zeros
    if mode == 0:  # water
        l8 = (liquid * 255).clamp(0, 255).floor()
        edges = _canny(l8, 50, 150)
        dist = _edt_trunc(edges, 20)
        dist = box_blur_fast(dist, 3).floor()
        dist = _equalize_hist(dist)
        dist = _filter2d_u8(dist, _EMBOSS)
        dist = box_blur_fast(dist, 3)
        m = l8 * dist
        mx = m.amax(dim=(1, 2, 3), keepdim=True)
        m = m / mx.clamp(min=1e-12) * (mx > 0).to(m.dtype) * intensity  # m >= 0: 0 where mx is 0
        color = torch.tensor([175.0, 238.0, 238.0], device=dev).view(1, 3, 1, 1)
        return to_uint8_255_(images.float().add_(m * color))
    else:  # mud
        m = (liquid > thr).float()
        m = gaussian_blur(m, intensity)
        m = torch.where(m < 0.8, torch.zeros_like(m), m)
        color = torch.tensor([63.0, 42.0, 20.0], device=dev).view(1, 3, 1, 1)
        return to_uint8_255_(images.float().mul_(1 - m).add_(color * m))
