"""The occlusion family (not in the published benchmark): something in front of the person covers part of the crop.

Four corruptions, severity 1–5 = 10, 20, 30, 40, 50 % of the image area covered:

``occlusion_solid``
    one axis-aligned rectangle of a random flat colour (random aspect ratio in [1/2, 2] and position);
``occlusion_noise``
    the same rectangle filled with uniform per-pixel colour noise;
``occlusion_object``
    a pasted object occluder: a patch from the folder given to :func:`set_occluder_source` (RGBA PNGs, alpha = shape;
    or an image plus ``<stem>_mask.png``), or else a procedurally drawn, textured car-, pole-, bin-, bush- or bag-like
    silhouette, standing on the lower part of the image;
``occlusion_pedestrian``
    a non-target pedestrian in front: image i of the batch gets a person-shaped cut-out of another image j of the
    same batch (j ≠ i chosen by image i's seed), full height, entering from the left or right; a batch of one image
    has no other person, so a procedurally drawn, clothed silhouette is pasted instead. This one depends on the
    batch it is in (the donors); everything else about it is seeded per image. The function carries
    ``batch_dependent = True``.

:func:`occlude` returns ``(images, mask)`` with the float N×1×H×W mask (1 = occluded); the registered corruptions
return the images only. The shape's size is solved so that the covered area hits the severity's target (to about a
percent of the image for images of Market size; exactly-rectangular ones to rounding). Pixels outside the mask are
never changed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .base import OCCLUSIONS, Seeds, check_images, image_generator, register_corruption, resolve_seeds

#: severity -> fraction of the image area covered
OCCLUSION_AREAS = {1: 0.10, 2: 0.20, 3: 0.30, 4: 0.40, 5: 0.50}
OBJECT_KINDS = ("car", "pole", "bin", "bush", "bag")

_occluder_folder: Optional[Path] = None
_patch_cache: Dict[str, List[Tuple[torch.Tensor, torch.Tensor]]] = {}


# ----------------------------------------------------------------------------------------------------------------
# occluder source


def set_occluder_source(folder: Union[str, Path, None]) -> None:
    """Use the patches in ``folder`` for ``occlusion_object`` (None: back to generated shapes).

    Each ``*.png`` with an alpha channel is one occluder (alpha >= 128 = object); an image without alpha uses
    ``<stem>_mask.png`` next to it (non-zero = object) if present, else the whole patch."""
    global _occluder_folder
    if folder is None:
        _occluder_folder = None
        return
    p = Path(folder)
    if not p.is_dir():
        raise ValueError(f"occluder source {str(p)!r} is not a folder (expected a folder of RGBA PNG patches)")
    patches = _load_patches(p)
    if not patches:
        raise ValueError(f"occluder source {str(p)!r} holds no usable patches (*.png / *.jpg, RGBA or with "
                         f"<stem>_mask.png)")
    _occluder_folder = p


def occluder_source() -> str:
    """``"generated"`` or the folder the object occluders come from."""
    return "generated" if _occluder_folder is None else str(_occluder_folder)


def _load_patches(folder: Path) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    key = str(folder.resolve())
    if key in _patch_cache:
        return _patch_cache[key]
    from PIL import Image

    def to_tensor(im) -> torch.Tensor:
        arr = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
        return arr.view(im.height, im.width, -1).permute(2, 0, 1).float()

    out = []
    files = sorted(f for f in folder.iterdir()
                   if f.suffix.lower() in (".png", ".jpg", ".jpeg") and not f.stem.endswith("_mask"))
    for f in files:
        try:
            with Image.open(f) as im:
                if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                    t = to_tensor(im.convert("RGBA"))
                    rgb, mask = t[:3], (t[3:4] >= 128).float()
                else:
                    rgb = to_tensor(im.convert("RGB"))
                    mf = f.with_name(f.stem + "_mask.png")
                    if mf.is_file():
                        with Image.open(mf) as mi:
                            mask = (to_tensor(mi.convert("L")) > 0).float()
                        if mask.shape[-2:] != rgb.shape[-2:]:
                            raise ValueError(f"mask {mf.name} is {tuple(mask.shape[-2:])}, image {tuple(rgb.shape[-2:])}")
                    else:
                        mask = torch.ones(1, *rgb.shape[-2:])
        except (OSError, ValueError) as e:
            raise ValueError(f"occluder patch {str(f)!r} cannot be read: {e}") from None
        if mask.sum() > 0:
            out.append((rgb, mask))
    _patch_cache[key] = out
    return out


# ----------------------------------------------------------------------------------------------------------------
# rectangles


def _rect_size(area: float, h: int, w: int, aspect: float) -> Tuple[int, int]:
    """Integer (rh, rw) with rh·rw ≈ area, rh/rw ≈ aspect, within h×w."""
    rh = int(min(h, max(1, round(math.sqrt(area * aspect)))))
    rw = int(min(w, max(1, round(area / rh))))
    rh = int(min(h, max(1, round(area / rw))))
    return rh, rw


def _rect_params(h: int, w: int, frac: float, g: torch.Generator) -> Tuple[int, int, int, int]:
    u = torch.rand(3, generator=g, dtype=torch.float64)
    aspect = math.exp((float(u[0]) * 2 - 1) * math.log(2.0))
    rh, rw = _rect_size(frac * h * w, h, w, aspect)
    top = int(float(u[1]) * (h - rh + 1))
    left = int(float(u[2]) * (w - rw + 1))
    return top, left, rh, rw


def _rect_masks(params: Sequence[Tuple[int, int, int, int]], h: int, w: int, device) -> torch.Tensor:
    p = torch.tensor(params, dtype=torch.long, device=device).view(-1, 4, 1, 1)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    top, left, rh, rw = p[:, 0], p[:, 1], p[:, 2], p[:, 3]
    m = (rows >= top) & (rows < top + rh) & (cols >= left) & (cols < left + rw)
    return m.unsqueeze(1)  # N×1×H×W bool


def _filled_rectangles(images: torch.Tensor, severity: int, seeds: Sequence[int], per_pixel: bool):
    """One rectangle per image covering the severity's area, filled with one random colour (``per_pixel`` False)
    or per-pixel random colours; returns (images, mask)."""
    n, _, h, w = images.shape
    fill_shape = (3, h, w) if per_pixel else (3, 1, 1)
    params, fills = [], []
    for s in seeds:
        g = image_generator(s)
        params.append(_rect_params(h, w, OCCLUSION_AREAS[severity], g))
        fills.append(torch.randint(0, 256, fill_shape, generator=g, dtype=torch.uint8))
    mask = _rect_masks(params, h, w, images.device)
    fill = torch.stack(fills).to(images.device).expand_as(images)
    return torch.where(mask, fill, images), mask


def _solid(images: torch.Tensor, severity: int, seeds: Sequence[int]):
    return _filled_rectangles(images, severity, seeds, per_pixel=False)


def _noise(images: torch.Tensor, severity: int, seeds: Sequence[int]):
    return _filled_rectangles(images, severity, seeds, per_pixel=True)


# ----------------------------------------------------------------------------------------------------------------
# procedural silhouettes: fn(u, v) -> (bool mask, part map), u across and v down, both in [0, 1] over the box


def _ellipse(u, v, cu, cv, ru, rv):
    return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0


def _car(u, v):
    body = (v >= 0.38) & (v <= 0.86) & (u >= 0.02) & (u <= 0.98)
    body &= ~(((u < 0.06) | (u > 0.94)) & (v < 0.45))  # rounded front/back
    slope = 0.12 * (0.42 - v).clamp(min=0) / 0.42
    cabin = (v >= 0.02) & (v < 0.42) & (u >= 0.22 + slope * 2) & (u <= 0.8 - slope * 2)
    wheels = _ellipse(u, v, 0.22, 0.84, 0.1, 0.16) | _ellipse(u, v, 0.78, 0.84, 0.1, 0.16)
    part = torch.zeros_like(u, dtype=torch.long)
    part[cabin & (v > 0.08) & (u > 0.27 + slope * 2) & (u < 0.75 - slope * 2)] = 1  # windows
    part[wheels] = 2
    return body | cabin | wheels, part


def _pole(u, v):
    post = (u >= 0.2) & (u <= 0.8) & (v >= 0.12)
    lamp = _ellipse(u, v, 0.5, 0.09, 0.5, 0.09)
    base = (v >= 0.9) & (u >= 0.05) & (u <= 0.95)
    part = torch.zeros_like(u, dtype=torch.long)
    part[lamp] = 1
    return post | lamp | base, part


def _bin(u, v):
    taper = 0.1 * v
    body = (v >= 0.1) & (u >= 0.06 + taper) & (u <= 0.94 - taper)
    lid = (v < 0.12) & (v >= 0.0) & (u >= 0.0) & (u <= 1.0)
    part = torch.zeros_like(u, dtype=torch.long)
    part[lid] = 1
    part[body & (torch.remainder(v * 7, 1.0) < 0.12)] = 2  # ribs
    return body | lid, part


def _bush(u, v):
    m = (v >= 0.55) & (u >= 0.04) & (u <= 0.96)
    for cu, cv, r in ((0.22, 0.5, 0.24), (0.5, 0.3, 0.3), (0.78, 0.48, 0.24), (0.36, 0.62, 0.3), (0.66, 0.62, 0.3)):
        m |= _ellipse(u, v, cu, cv, r, r * 1.05)
    return m, torch.zeros_like(u, dtype=torch.long)


def _bag(u, v):
    body = (v >= 0.32) & (u >= 0.04) & (u <= 0.96)
    body &= ~((v > 0.92) & ((u < 0.1) | (u > 0.9)))
    ring = _ellipse(u, v, 0.5, 0.34, 0.32, 0.32) & ~_ellipse(u, v, 0.5, 0.34, 0.2, 0.22) & (v < 0.34)
    part = torch.zeros_like(u, dtype=torch.long)
    part[ring] = 1
    return body | ring, part


def _person(u, v):
    head = _ellipse(u, v, 0.5, 0.085, 0.14, 0.075)
    neck = (v >= 0.14) & (v < 0.19) & (u >= 0.42) & (u <= 0.58)
    half = 0.42 - 0.12 * ((v - 0.18) / 0.4).clamp(0, 1)
    torso = (v >= 0.18) & (v < 0.58) & ((u - 0.5).abs() <= half)
    legs = (v >= 0.56) & (((u >= 0.24) & (u <= 0.48)) | ((u >= 0.52) & (u <= 0.76)))
    part = torch.zeros_like(u, dtype=torch.long)
    part[head | neck] = 1
    part[legs] = 2
    return head | neck | torso | legs, part


_SHAPES: Dict[str, Tuple[Callable, float]] = {  # kind -> (shape fn, native aspect h/w)
    "car": (_car, 0.55), "pole": (_pole, 3.0), "bin": (_bin, 1.4), "bush": (_bush, 0.75), "bag": (_bag, 1.1),
    "person": (_person, 2.0),
}


def _grid(bh: int, bw: int):
    v = ((torch.arange(bh, dtype=torch.float32) + 0.5) / bh).view(bh, 1).expand(bh, bw)
    u = ((torch.arange(bw, dtype=torch.float32) + 0.5) / bw).view(1, bw).expand(bh, bw)
    return u, v


def _texture(kind: str, part: torch.Tensor, u: torch.Tensor, v: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """3×bh×bw float colours (0..255) for a generated occluder, drawn from ``g``."""
    bh, bw = part.shape
    r = torch.rand(8, generator=g)
    palettes = {
        "car": [(180, 30, 30), (30, 60, 160), (220, 220, 225), (30, 30, 35), (150, 150, 155), (200, 170, 40)],
        "pole": [(120, 120, 125), (80, 90, 80), (150, 140, 120)],
        "bin": [(40, 90, 50), (70, 70, 75), (30, 50, 110), (120, 90, 50)],
        "bush": [(50, 110, 40), (70, 130, 50), (40, 90, 40)],
        "bag": [(90, 60, 35), (25, 25, 30), (140, 30, 40), (200, 180, 150)],
        "person_top": [(200, 40, 40), (30, 30, 35), (240, 240, 240), (40, 80, 160), (60, 120, 60), (230, 200, 60)],
        "person_bottom": [(30, 40, 90), (25, 25, 28), (110, 100, 90), (180, 170, 150)],
    }
    def pick(name, i):
        pal = palettes[name]
        return torch.tensor(pal[int(r[i] * len(pal)) % len(pal)], dtype=torch.float32).view(3, 1, 1)
    if kind == "person":
        base = pick("person_top", 0).expand(3, bh, bw).clone()
        base = torch.where(part == 2, pick("person_bottom", 1), base)
        skin = torch.tensor([205.0, 165.0, 135.0]).view(3, 1, 1) * (0.6 + 0.4 * r[2])
        hair = torch.tensor([40.0, 30.0, 25.0]).view(3, 1, 1)
        base = torch.where(part == 1, torch.where(v < 0.05 + 0.03 * r[3], hair, skin), base)
    else:
        base = pick(kind, 0).expand(3, bh, bw).clone()
        if kind == "car":
            base = torch.where(part == 1, torch.tensor([55.0, 65.0, 80.0]).view(3, 1, 1), base)
            base = torch.where(part == 2, torch.tensor([22.0, 22.0, 24.0]).view(3, 1, 1), base)
        elif kind == "pole":
            base = base * (0.7 + 0.5 * torch.cos((u - 0.5) * math.pi).clamp(min=0))  # cylinder shading
            base = torch.where(part == 1, torch.tensor([235.0, 225.0, 170.0]).view(3, 1, 1), base)
        elif kind == "bin":
            base = torch.where(part == 1, base * 0.7, base)
            base = torch.where(part == 2, base * 0.6, base)
        elif kind == "bush":
            leaves = F.interpolate(torch.rand(1, 1, max(2, bh // 3), max(2, bw // 3), generator=g),
                                   size=(bh, bw), mode="nearest")[0]
            base = base * (0.55 + 0.9 * leaves)
        elif kind == "bag":
            base = torch.where(part == 1, base * 0.6, base)
    shade = 1.05 - 0.25 * v  # a little darker towards the ground
    grain = (torch.rand(1, bh, bw, generator=g) - 0.5) * 24
    return (base * shade + grain).clamp(0, 255)


def _fit_box(frac_area: float, fill: float, aspect: float, h: int, w: int) -> Tuple[int, int]:
    """Box (bh, bw) of about ``frac_area / fill`` pixels with aspect ``aspect``, squeezed to fit h×w."""
    box_area = min(frac_area / max(fill, 1e-3), h * w)
    bh = min(h, max(1, round(math.sqrt(box_area * aspect))))
    bw = min(w, max(1, round(box_area / bh)))
    bh = min(h, max(1, round(box_area / bw)))
    return int(bh), int(bw)


def _solve_shape(shape_fn, aspect: float, target: float, h: int, w: int):
    """Render ``shape_fn`` in a box sized so that its silhouette covers ~``target`` pixels: start from a guessed
    fill ratio, then re-size the box with the fill ratio measured on the last rendering (converges in 1-2 steps)."""
    fill = 0.7
    for _ in range(4):
        bh, bw = _fit_box(target, fill, aspect, h, w)
        u, v = _grid(bh, bw)
        m, part = shape_fn(u, v)
        area = float(m.sum())
        if area <= 0 or abs(area - target) <= 0.004 * h * w:
            break
        fill = area / (bh * bw)
    return bh, bw, u, v, m, part


def _object(images: torch.Tensor, severity: int, seeds: Sequence[int]):
    n, _, h, w = images.shape
    frac = OCCLUSION_AREAS[severity]
    target = frac * h * w
    patches = _load_patches(_occluder_folder) if _occluder_folder is not None else None
    out = images.clone()
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool, device=images.device)
    for i, s in enumerate(seeds):
        g = image_generator(s)
        k = torch.rand(3, generator=g, dtype=torch.float64)
        if patches:
            rgb, pm = patches[int(k[0] * len(patches)) % len(patches)]
            ph, pw = rgb.shape[-2:]

            def shape_fn(u, v, pm=pm):
                bh, bw = u.shape
                mm = F.interpolate(pm[None], size=(bh, bw), mode="bilinear", align_corners=False)[0, 0] >= 0.5
                return mm, torch.zeros_like(u, dtype=torch.long)

            bh, bw, u, v, m, part = _solve_shape(shape_fn, ph / pw, target, h, w)
            colours = F.interpolate(rgb[None], size=(bh, bw), mode="bilinear", align_corners=False)[0]
        else:
            kind = OBJECT_KINDS[int(k[0] * len(OBJECT_KINDS)) % len(OBJECT_KINDS)]
            shape_fn, aspect = _SHAPES[kind]
            bh, bw, u, v, m, part = _solve_shape(shape_fn, aspect, target, h, w)
            colours = _texture(kind, part, u, v, g)
        top = h - bh - int(float(k[1]) * (h - bh + 1) * (0.35 if bh < h else 1.0))  # on the lower part
        left = int(float(k[2]) * (w - bw + 1))
        _paste(out, mask, i, top, left, colours, m)
    return out, mask


def _paste(out: torch.Tensor, mask: torch.Tensor, i: int, top: int, left: int, colours: torch.Tensor,
           m: torch.Tensor) -> None:
    """Write ``colours`` (3×bh×bw float) where ``m`` (bh×bw bool) into image i at (top, left), clipped."""
    h, w = out.shape[-2:]
    bh, bw = m.shape
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(h, top + bh), min(w, left + bw)
    if y1 <= y0 or x1 <= x0:
        return
    sm = m[y0 - top:y1 - top, x0 - left:x1 - left].to(out.device)
    sc = colours[:, y0 - top:y1 - top, x0 - left:x1 - left].round().clamp(0, 255).to(torch.uint8).to(out.device)
    region = out[i, :, y0:y1, x0:x1]
    out[i, :, y0:y1, x0:x1] = torch.where(sm, sc, region)
    mask[i, 0, y0:y1, x0:x1] |= sm


def _person_offset(m: torch.Tensor, w: int, target: float, from_left: bool) -> int:
    """Left position of a silhouette box (bool bh×bw ``m``) whose part inside a width-``w`` image covers the
    closest to ``target`` pixels; among equally good ones, the one nearest the edge it enters from."""
    cols = m.sum(0).to(torch.float64)
    bw = cols.numel()
    cs = torch.cat([torch.zeros(1, dtype=torch.float64), cols.cumsum(0)])
    lefts = torch.arange(-bw + 1, w)
    a = (-lefts).clamp(min=0)
    b = (w - lefts).clamp(max=bw)
    err = (cs[b] - cs[a] - target).abs()
    best = torch.nonzero(err <= err.min() + 1e-6).flatten()
    return int(lefts[best[0] if from_left else best[-1]])


def _pedestrian(images: torch.Tensor, severity: int, seeds: Sequence[int]):
    n, _, h, w = images.shape
    target = OCCLUSION_AREAS[severity] * h * w
    out = images.clone()
    mask = torch.zeros(n, 1, h, w, dtype=torch.bool, device=images.device)
    src = images.float().cpu()
    for i, s in enumerate(seeds):
        g = image_generator(s)
        k = torch.rand(3, generator=g, dtype=torch.float64)
        bh = max(1, int(round(h * (0.9 + 0.1 * float(k[1])))))
        bw = max(1, int(round(bh / 2.0)))
        # widen the figure if even fully inside it would not reach the target (wide images)
        while True:
            u, v = _grid(bh, bw)
            m, part = _person(u, v)
            if float(m.sum()) >= target or bw >= 4 * w:
                break
            bw = int(math.ceil(bw * 1.25)) + 1
        from_left = bool(k[2] < 0.5)
        left = _person_offset(m, w, target, from_left)
        top = h - bh
        if n > 1:
            j = (i + 1 + int(float(k[0]) * (n - 1))) % n
            colours = F.interpolate(src[j:j + 1], size=(bh, bw), mode="bilinear", align_corners=False,
                                    antialias=True)[0]
        else:
            colours = _texture("person", part, u, v, g)
        _paste(out, mask, i, top, left, colours, m)
    return out, mask


_IMPLS = {
    "occlusion_solid": _solid,
    "occlusion_noise": _noise,
    "occlusion_object": _object,
    "occlusion_pedestrian": _pedestrian,
}
assert tuple(_IMPLS) == tuple(OCCLUSIONS)


def occlude(images: torch.Tensor, name: str, severity: int, seed: Seeds = 0, return_mask: bool = True):
    """Apply occlusion ``name`` (one of ``OCCLUSIONS``) at ``severity`` 1..5 to uint8 N×3×H×W ``images``.

    Returns ``(images, mask)`` — mask float N×1×H×W on the images' device, 1 where occluded — or the images only
    with ``return_mask=False``. Seeds follow :func:`robustreid.corruptions.corrupt` (an int, or one per image)."""
    check_images(images)
    if name not in _IMPLS:
        raise ValueError(f"unknown occlusion {name!r}; expected one of {', '.join(OCCLUSIONS)}")
    if not isinstance(severity, int) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer 1..5, got {severity!r}")
    n, _, h, w = images.shape
    if n == 0:
        out, mask = images.clone(), torch.zeros(0, 1, h, w, device=images.device)
    else:
        out, m = _IMPLS[name](images, severity, resolve_seeds(seed, n))
        mask = m.float()
    return (out, mask) if return_mask else out


def _registered(name: str):
    impl = _IMPLS[name]

    def fn(images: torch.Tensor, severity: int, seeds: Sequence[int]) -> torch.Tensor:
        return impl(images, severity, seeds)[0]

    fn.__name__ = name
    fn.__doc__ = f"Occlusion corruption {name!r} (images only; see robustreid.corruptions.occlusion.occlude)."
    fn.batch_dependent = name == "occlusion_pedestrian"
    return register_corruption(name)(fn)


for _name in OCCLUSIONS:
    _registered(_name)
