"""The built-in synthetic person dataset: crops of drawn pedestrians with real ReID structure.

What it models (see docs/synthetic.md):

- identities with a consistent appearance: build, height, skin, hair (colour, length), upper and lower garment
  colour AND pattern (plain, stripes, checks, print), sleeve length, trousers/shorts/skirt, shoes, and accessories
  (a backpack that shows from behind, a shoulder bag, a hat). Identities come in groups of four that share their
  garment colours and differ in pattern/shape/accessories, so a colour histogram alone cannot separate them;
- cameras with their own background, strong colour cast, gamma, sharpness, noise, resolution and JPEG quality;
  every identity is seen by at least two cameras;
- per image: viewpoint (front / back / side), walking phase, scale and box jitter;
- ``occluded=True`` (Occluded-Duke style): every query is occluded 10-60 % (of the body's pixels) by an object
  (car, pole, bin, bush, bag) or another pedestrian in front; ~10 % of the train and gallery images too. Each image
  gets its occluder mask (PNG, 255 = occluder) under ``masks/`` mirroring the image layout;
- distractors (pid 0, gallery) and junk (pid -1, gallery: background and fragments of people);
- the Market-1501 layout and names (``0001_c1s1_000001_00.jpg``) plus ``manifest.csv`` / ``manifest.json``.

Determinism: every random draw comes from a numpy Generator seeded with ``derive_seed(seed, ...)`` of the thing
being drawn (identity, camera, image), JPEGs are written by PIL with a fixed quality, nothing depends on time or
dict order: the same arguments give byte-identical files.
"""

from __future__ import annotations

import csv as _csv
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.io import atomic_write_text
from ..utils.progress import progress_bar
from ..utils.seed import derive_seed

__all__ = ["generate", "DEFAULTS", "render_identity_image", "SPLIT_DIRS"]

#: the default synthetic set (used by the demo): 110 train + 110 test ids, 6 cameras, 12 images per id
DEFAULTS = dict(identities=220, cameras=6, images_per_id=12, seed=0, size=(128, 64))

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
GENERATOR_VERSION = 1

CLOTH = np.array([
    (22, 22, 26), (236, 236, 230), (128, 128, 132), (32, 42, 92), (172, 32, 38), (52, 92, 172), (192, 172, 122),
    (42, 102, 52), (122, 72, 42), (202, 122, 162), (222, 192, 42), (92, 52, 112), (72, 132, 142), (232, 122, 42),
], dtype=np.float32)
SKIN = np.array([(250, 218, 190), (232, 188, 150), (198, 148, 110), (150, 102, 72), (102, 68, 48)], np.float32)
HAIR = np.array([(22, 16, 12), (62, 42, 26), (122, 82, 42), (202, 172, 112), (152, 152, 152), (92, 32, 22)], np.float32)
SHOES = np.array([(22, 22, 22), (238, 238, 238), (102, 62, 32), (62, 62, 72), (172, 32, 38), (42, 62, 142)], np.float32)
PATTERNS = ("plain", "stripes", "checks", "print")
VIEWS = ("front", "back", "side")
OCCLUDERS = ("car", "pole", "bin", "bush", "bag", "pedestrian")


# ---------------------------------------------------------------------------------------------------------------
# identities and cameras


@dataclass
class Identity:
    build: float
    height: float
    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    upper: np.ndarray
    lower: np.ndarray
    second: np.ndarray
    upper_pattern: str
    lower_pattern: str
    freq: float
    vertical: bool
    print_shape: int
    long_sleeves: bool
    lower_type: str  # trousers | shorts | skirt
    shoes: np.ndarray
    hat: Optional[np.ndarray]
    backpack: Optional[np.ndarray]
    bag: Optional[np.ndarray]
    bag_side: int

    def describe(self) -> dict:
        def c(v):
            return None if v is None else [int(x) for x in v]

        return {"build": round(self.build, 3), "height": round(self.height, 3), "upper": c(self.upper),
                "lower": c(self.lower), "second": c(self.second), "upper_pattern": self.upper_pattern,
                "lower_pattern": self.lower_pattern, "lower_type": self.lower_type,
                "long_sleeves": self.long_sleeves, "long_hair": self.long_hair, "hat": self.hat is not None,
                "backpack": self.backpack is not None, "bag": self.bag is not None}


def _jitter(rng: np.random.Generator, col: np.ndarray, amount: float = 12.0) -> np.ndarray:
    return np.clip(col + rng.uniform(-amount, amount, 3), 0, 255).astype(np.float32)


def make_identity(seed: int, kind: str, index: int) -> Identity:
    """Appearance of identity ``index`` of ``kind`` ('id', 'distractor', 'passerby').

    Identities of kind 'id' come in groups of four sharing their garment colours (the group palette), each member
    with another upper pattern, so that colour alone does not identify a person.
    """
    rng = np.random.default_rng(derive_seed("synth.identity", seed, kind, index))
    if kind == "id":
        g = np.random.default_rng(derive_seed("synth.group", seed, index // 4))
        cols = g.choice(len(CLOTH), 3, replace=False)
        perm = g.permutation(4)
        upper_pattern = PATTERNS[int(perm[index % 4])]
    else:
        cols = rng.choice(len(CLOTH), 3, replace=False)
        upper_pattern = PATTERNS[int(rng.integers(4))]
    upper, lower, second = (_jitter(rng, CLOTH[int(c)]) for c in cols)
    lower_pattern = str(rng.choice(["plain", "stripes", "checks"], p=[0.7, 0.15, 0.15]))
    lower_type = str(rng.choice(["trousers", "shorts", "skirt"], p=[0.6, 0.25, 0.15]))
    return Identity(
        build=float(rng.uniform(0.82, 1.22)), height=float(rng.uniform(0.84, 0.97)),
        skin=_jitter(rng, SKIN[int(rng.integers(len(SKIN)))], 8), hair=_jitter(rng, HAIR[int(rng.integers(len(HAIR)))], 8),
        long_hair=bool(rng.random() < 0.35), upper=upper, lower=lower, second=second,
        upper_pattern=upper_pattern, lower_pattern=lower_pattern, freq=float(rng.uniform(9.0, 20.0)),
        vertical=bool(rng.random() < 0.3), print_shape=int(rng.integers(3)), long_sleeves=bool(rng.random() < 0.55),
        lower_type=lower_type, shoes=_jitter(rng, SHOES[int(rng.integers(len(SHOES)))], 10),
        hat=_jitter(rng, CLOTH[int(rng.integers(len(CLOTH)))]) if rng.random() < 0.25 else None,
        backpack=_jitter(rng, CLOTH[int(rng.integers(len(CLOTH)))]) if rng.random() < 0.35 else None,
        bag=_jitter(rng, CLOTH[int(rng.integers(len(CLOTH)))]) if rng.random() < 0.3 else None,
        bag_side=int(rng.choice([-1, 1])),
    )


@dataclass
class Camera:
    background: np.ndarray  # Hb×Wb×3 float32
    lut: np.ndarray  # 3×256 uint8: colour cast, brightness, gamma
    blur: float
    noise: float
    resolution: float
    quality: int
    noise_bank: np.ndarray  # 2H×2W×3 float32 sensor noise (+0.5 rounding offset), cropped per image


    def describe(self) -> dict:
        return {"blur": round(self.blur, 3), "noise": round(self.noise, 3), "resolution": round(self.resolution, 3),
                "quality": self.quality}


def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: Tuple[int, int]) -> np.ndarray:
    """Smooth noise in [-1, 1] of size h×w (bilinear up-sampling of a coarse random grid)."""
    gh, gw = cells
    grid = rng.uniform(-1, 1, (gh + 1, gw + 1)).astype(np.float32)
    y = np.linspace(0, gh, h, dtype=np.float32)
    x = np.linspace(0, gw, w, dtype=np.float32)
    y0 = np.minimum(y.astype(int), gh - 1)
    x0 = np.minimum(x.astype(int), gw - 1)
    fy = (y - y0)[:, None]
    fx = (x - x0)[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def make_camera(seed: int, index: int, size: Tuple[int, int]) -> Camera:
    h, w = size
    rng = np.random.default_rng(derive_seed("synth.camera", seed, index))
    hb, wb = int(h * 1.25), w * 3
    wall = rng.uniform(40, 220, 3).astype(np.float32)
    ground = rng.uniform(50, 190, 3).astype(np.float32)
    horizon = int(hb * rng.uniform(0.45, 0.75))
    bg = np.empty((hb, wb, 3), np.float32)
    bg[:horizon] = wall
    bg[horizon:] = ground
    yy = np.arange(hb)[:, None]
    xx = np.arange(wb)[None, :]
    texture = int(rng.integers(4))
    if texture == 0:  # bricks
        ph = max(3, int(h * rng.uniform(0.04, 0.07)))
        pw = ph * 2
        lines = ((yy % ph) == 0) | (((xx + (yy // ph % 2) * (pw // 2)) % pw) == 0)
        bg[:horizon][lines[:horizon]] *= 0.7
    elif texture == 1:  # windows
        pw, ph = int(w * rng.uniform(0.3, 0.5)), int(h * rng.uniform(0.15, 0.25))
        win = ((xx % pw) > pw * 0.25) & ((yy % ph) > ph * 0.3) & (yy < horizon)
        bg[win] = bg[win] * 0.5 + rng.uniform(0, 120, 3).astype(np.float32) * 0.5
    elif texture == 2:  # shop fronts: vertical bands
        pw = int(w * rng.uniform(0.4, 0.9))
        band = ((xx // pw) % 2 == 1) & (yy < horizon)
        bg[np.broadcast_to(band, (hb, wb))] = rng.uniform(40, 220, 3).astype(np.float32)
    else:  # foliage
        leaves = _lowfreq(rng, hb, wb, (8, 20)) > 0.1
        bg[leaves & (yy < horizon)] = np.array([40, 90, 40], np.float32) * rng.uniform(0.7, 1.3)
    # a few objects (posters, doors, parked things)
    for _ in range(int(rng.integers(2, 6))):
        y0 = int(rng.integers(0, hb - 4))
        x0 = int(rng.integers(0, wb - 4))
        bg[y0:y0 + int(rng.integers(4, hb // 3)), x0:x0 + int(rng.integers(4, w // 2))] = rng.uniform(20, 240, 3)
    # paving lines and low-frequency light variation
    if rng.random() < 0.6:
        step = max(4, int(h * rng.uniform(0.08, 0.15)))
        pav = ((yy - horizon) % step == 0) & (yy > horizon)
        bg[np.broadcast_to(pav, (hb, wb))] *= 0.8
    bg *= (1.0 + 0.18 * _lowfreq(rng, hb, wb, (3, 6)))[..., None]
    np.clip(bg, 0, 255, out=bg)
    # strong colour cast, brightness and gamma, as a per-channel look-up table
    gains = rng.uniform(0.62, 1.38, 3)
    bright = rng.uniform(0.75, 1.2)
    gamma = rng.uniform(0.75, 1.3)
    v = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip(np.clip(v * gains[c] * bright, 0, 1) ** gamma * 255.0 + 0.5, 0, 255) for c in range(3)])
    noise = float(rng.uniform(1.0, 7.0))
    bank = rng.standard_normal((2 * h, 2 * w, 3), dtype=np.float32) * np.float32(noise) + np.float32(0.5)
    return Camera(background=bg, lut=lut.astype(np.uint8), blur=float(rng.uniform(0.0, 0.3)),
                  noise=noise, resolution=float(rng.uniform(0.45, 1.0)),
                  quality=int(rng.integers(80, 96)), noise_bank=bank)


# ---------------------------------------------------------------------------------------------------------------
# drawing


@dataclass
class Pose:
    top: float
    ph: float  # person height in pixels
    cx: float
    view: str
    facing: int  # side view: +1 facing right, -1 left
    phase: float


class _Canvas:
    """Coordinate vectors for one image size (reused for every image of that size)."""

    def __init__(self, h: int, w: int):
        self.h, self.w = h, w
        self.ys = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
        self.xs = (np.arange(w, dtype=np.float32) + 0.5)[None, :]


def _band(c: _Canvas, y0: float, y1: float) -> np.ndarray:
    return (c.ys >= y0) & (c.ys < y1)


def _ellipse(c: _Canvas, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((c.ys - cy) / ry) ** 2 + ((c.xs - cx) / rx) ** 2 < 1.0


def _bar(c: _Canvas, y0: float, y1: float, x0: float, half: float, shear: float = 0.0) -> np.ndarray:
    """A (sheared) vertical bar: centre x0 at y0, moving by ``shear`` pixels per pixel down."""
    centre = x0 + shear * (c.ys - y0)
    return _band(c, y0, y1) & (np.abs(c.xs - centre) < half)


def _rect(c: _Canvas, y0: float, y1: float, x0: float, x1: float) -> np.ndarray:
    return _band(c, y0, y1) & (c.xs >= x0) & (c.xs < x1)


@dataclass
class _Figure:
    """One person drawn in one pose: the canvas, the identity and the pose's geometry (pixels)."""

    c: _Canvas
    ident: Identity
    pose: Pose

    def __post_init__(self) -> None:
        p, b = self.pose, self.ident.build
        self.side = p.view == "side"
        self.d = p.facing
        self.cx, self.ph = p.cx, p.ph
        self.sw = p.ph * (0.07 if self.side else 0.115) * b  # shoulder half-width
        self.hw = p.ph * (0.065 if self.side else 0.095) * b  # hip half-width
        self.swing = np.sin(2 * np.pi * p.phase)

    def Y(self, v: float) -> float:
        """Height ``v`` of the figure (0 = top of the head, 1 = soles) in pixels."""
        return self.pose.top + v * self.ph


def draw_person(img: np.ndarray, c: _Canvas, ident: Identity, pose: Pose) -> np.ndarray:
    """Draw ``ident`` in ``pose`` onto ``img`` (H×W×3 float32, modified in place); returns the body mask."""
    f = _Figure(c, ident, pose)
    body = np.zeros((c.h, c.w), bool)
    if ident.backpack is not None and f.side:  # behind the body
        m = _rect(c, f.Y(0.17), f.Y(0.45), *sorted((f.cx - f.d * f.sw * 0.8, f.cx - f.d * (f.sw + 0.085 * f.ph))))
        img[m] = ident.backpack
        body |= m
    body |= _draw_legs(img, f)
    body |= _draw_upper_body(img, f)
    body |= _draw_head(img, f)
    body |= _draw_carried(img, f)
    aw = 0.03 * f.ph * ident.build
    shade = 1.0 - 0.22 * np.clip(((c.xs - f.cx) / (f.sw + aw * 2)) ** 2, 0, 1)
    img *= np.where(body, shade.astype(np.float32), np.float32(1.0))[..., None]
    return body


def _draw_legs(img: np.ndarray, f: _Figure) -> np.ndarray:
    """Legs, the lower garment (trousers, shorts or skirt, with its pattern) and shoes; returns their mask."""
    c, ident, Y, cx, ph, b = f.c, f.ident, f.Y, f.cx, f.ph, f.ident.build
    lw = 0.04 * ph * b
    if f.side:
        legs = [(cx, 0.32 * f.swing), (cx, -0.32 * f.swing)]
    else:
        legs = [(cx - 0.045 * ph * b, -0.03 * f.swing), (cx + 0.045 * ph * b, 0.03 * f.swing)]
    leg_masks = [_bar(c, Y(0.5), Y(0.955), x, lw, s) for x, s in legs]
    legs_m = leg_masks[0] | leg_masks[1]
    img[legs_m] = ident.skin
    if ident.lower_type == "trousers":
        lower_m = legs_m
    elif ident.lower_type == "shorts":
        lower_m = legs_m & (c.ys < Y(0.69))
    else:  # skirt
        half = (f.hw * 1.05 + (c.ys - Y(0.48)) * 0.35).clip(f.hw, None)
        lower_m = _band(c, Y(0.48), Y(0.72)) & (np.abs(c.xs - cx) < half)
    lower_m = lower_m | (_band(c, Y(0.47), Y(0.53)) & (np.abs(c.xs - cx) < f.hw))
    img[lower_m] = ident.lower
    if ident.lower_pattern != "plain":
        img[lower_m & _pattern(c, ident, ident.lower_pattern, f.pose.top, ph, cx, freq_scale=0.7)] = ident.second * 0.8
    body = legs_m | lower_m
    for x, s in legs:  # shoes
        xs = x + s * (0.955 - 0.5) * ph + (f.d * 0.02 * ph if f.side else 0.0)
        m = _rect(c, Y(0.94), Y(1.0), xs - lw * 1.25, xs + lw * 1.25)
        img[m] = ident.shoes
        body |= m
    return body


def _draw_upper_body(img: np.ndarray, f: _Figure) -> np.ndarray:
    """Arms (behind the torso in the side view), sleeves, neck and torso with the upper garment's pattern or print;
    returns their mask."""
    c, ident, Y, cx, ph, sw = f.c, f.ident, f.Y, f.cx, f.ph, f.sw
    aw = 0.03 * ph * ident.build
    if f.side:
        arms = [(cx, -0.25 * f.swing)]
    else:
        arms = [(cx - sw - aw * 0.6, -0.02 - 0.03 * f.swing), (cx + sw + aw * 0.6, 0.02 + 0.03 * f.swing)]
    sleeve_end = Y(0.47 if ident.long_sleeves else 0.28)
    body = np.zeros((c.h, c.w), bool)
    upper_m = np.zeros_like(body)
    for x, s in arms:
        m = _bar(c, Y(0.16), Y(0.5), x, aw, s)
        img[m] = ident.skin
        upper_m |= m & (c.ys < sleeve_end)
        body |= m
    neck = _bar(c, Y(0.115), Y(0.17), cx, 0.028 * ph)
    body |= neck
    img[neck] = ident.skin
    t = ((c.ys - Y(0.16)) / (0.36 * ph)).clip(0, 1)
    torso = _band(c, Y(0.155), Y(0.52)) & (np.abs(c.xs - cx) < sw + (f.hw - sw) * t)
    upper_m |= torso
    img[upper_m] = ident.upper
    if ident.upper_pattern in ("stripes", "checks"):
        img[upper_m & _pattern(c, ident, ident.upper_pattern, f.pose.top, ph, cx)] = ident.second
    elif ident.upper_pattern == "print" and f.pose.view != "back":
        r = 0.055 * ph * ident.build
        pcx = cx + (f.d * 0.02 * ph if f.side else 0.0)
        if ident.print_shape == 0:
            m = _ellipse(c, Y(0.28), pcx, r, r)
        elif ident.print_shape == 1:
            m = _rect(c, Y(0.24), Y(0.33), pcx - r, pcx + r)
        else:
            m = _band(c, Y(0.25), Y(0.32)) & (np.abs(c.xs - pcx) < r * 1.4 - np.abs(c.ys - Y(0.285)) * 1.2)
        img[torso & m] = ident.second
    return body | upper_m


def _draw_head(img: np.ndarray, f: _Figure) -> np.ndarray:
    """Head, hair (short or long, by view) and hat; returns their mask."""
    c, ident, Y, cx, ph, d, view = f.c, f.ident, f.Y, f.cx, f.ph, f.d, f.pose.view
    hcy, hry, hrx = Y(0.07), 0.065 * ph, 0.05 * ph * (1.1 if f.side else 1.0)
    head = _ellipse(c, hcy, cx, hry, hrx)
    img[head] = ident.skin
    if view == "back":
        hair = head.copy()
    elif f.side:
        hair = head & ((c.ys < Y(0.04)) | ((c.xs - cx) * d < -0.1 * hrx))
    else:
        hair = head & ((c.ys < Y(0.035)) | ((np.abs(c.xs - cx) > 0.75 * hrx) & (c.ys < Y(0.08))))
    if ident.long_hair:
        long_m = _band(c, Y(0.04), Y(0.22)) & (np.abs(c.xs - cx) < hrx * 1.1)
        if view == "front":
            long_m &= np.abs(c.xs - cx) > hrx * 0.6
        elif f.side:
            long_m &= (c.xs - cx) * d < 0
        hair |= long_m
    img[hair] = ident.hair
    body = head | hair
    if ident.hat is not None:
        hat = _rect(c, Y(-0.012), Y(0.035), cx - hrx * 1.05, cx + hrx * 1.05)
        left, right = f.side and d < 0, f.side and d > 0  # side view: facing left / right
        brim = _rect(c, Y(0.03), Y(0.048), cx - hrx * (0.3 if left else 1.35) - (hrx if left else 0),
                     cx + hrx * (0.3 if right else 1.35) + (hrx if right else 0))
        img[hat | brim] = ident.hat
        body |= hat | brim
    return body


def _draw_carried(img: np.ndarray, f: _Figure) -> np.ndarray:
    """A backpack seen from behind, its straps from the front, and a shoulder bag; returns the bag's mask (what
    counts as body: the backpack from behind lies within the torso's outline)."""
    c, ident, Y, cx, ph, sw = f.c, f.ident, f.Y, f.cx, f.ph, f.sw
    body = np.zeros((c.h, c.w), bool)
    if ident.backpack is not None and f.pose.view == "back":
        m = _rect(c, Y(0.17), Y(0.45), cx - 0.8 * sw, cx + 0.8 * sw)
        img[m] = ident.backpack
        img[m & _band(c, Y(0.26), Y(0.275))] = ident.backpack * 0.6
    elif ident.backpack is not None and f.pose.view == "front":
        for s in (-1, 1):
            img[_bar(c, Y(0.155), Y(0.4), cx + s * 0.55 * sw, 0.018 * ph)] = ident.backpack
    if ident.bag is not None:
        bs = ident.bag_side * (-1 if f.pose.view == "back" else 1)
        if f.side:
            bs = -f.d if ident.bag_side > 0 else f.d
        bx = cx + bs * (f.hw + 0.04 * ph)
        strap = _bar(c, Y(0.16), Y(0.44), cx - bs * sw * 0.7, 0.012 * ph, (bx - (cx - bs * sw * 0.7)) / (0.28 * ph))
        bagm = _rect(c, Y(0.42), Y(0.56), bx - 0.06 * ph, bx + 0.06 * ph)
        img[strap] = ident.bag * 0.8
        img[bagm] = ident.bag
        body |= bagm
    return body


def _pattern(c: _Canvas, ident: Identity, kind: str, top: float, ph: float, cx: float,
             freq_scale: float = 1.0) -> np.ndarray:
    f = ident.freq * freq_scale
    v = ((c.ys - top) / ph * f) % 1.0 < 0.5
    u = ((c.xs - cx) / ph * f) % 1.0 < 0.5
    if kind == "stripes":
        return np.broadcast_to(u if ident.vertical else v, (c.h, c.w))
    return v ^ u  # checks


# ---------------------------------------------------------------------------------------------------------------
# occluders


def _occluder_mask(kind: str, p: float, c: _Canvas, rng_params: dict, body_pose: Pose) -> np.ndarray:
    """Mask of occluder ``kind`` at size parameter ``p`` in [0, 1] (larger p -> more of the body covered)."""
    h, w = c.h, c.w
    q = rng_params
    if kind == "car":
        y0 = h - (0.15 + 0.75 * p) * body_pose.ph
        x0, x1 = (-w, w * q["reach"]) if q["from_left"] else (w * (1 - q["reach"]), 2 * w)
        roof = _band(c, y0, h + 1) & (c.xs >= x0) & (c.xs < x1)
        return roof & ~(((c.xs - (x1 if q["from_left"] else x0)) ** 2 / (0.15 * w) ** 2
                         + (c.ys - y0) ** 2 / (0.12 * h) ** 2) < 1)
    if kind == "pole":
        half = 1.0 + p * 0.45 * w
        return np.broadcast_to(np.abs(c.xs - q["x"]) < half, (h, w))
    if kind == "bin":
        y0 = h - (0.1 + 0.7 * p) * body_pose.ph
        return _rect(c, y0, h + 1, q["x"] - q["half"], q["x"] + q["half"])
    if kind == "bush":
        r = (0.15 + 0.55 * p) * body_pose.ph
        m = np.zeros((h, w), bool)
        for ox, oy in q["blobs"]:
            m |= _ellipse(c, h + oy * r * 0.3, q["x"] + ox * w * 0.35, r, r * 0.9)
        return m
    if kind == "bag":
        y0 = h - (0.1 + 0.6 * p) * body_pose.ph
        return _rect(c, y0, h + 1, q["x"] - q["half"] * (0.6 + p), q["x"] + q["half"] * (0.6 + p))
    raise KeyError(kind)


def _paint_occluder(img: np.ndarray, mask: np.ndarray, kind: str, c: _Canvas, q: dict) -> None:
    col = q["colour"]
    img[mask] = col
    if kind == "car":
        y_top = c.ys[mask.any(1)].min() if mask.any() else c.h
        win = mask & _band(c, y_top + 2, y_top + 0.12 * c.h)
        img[win] = col * 0.35 + 60
    elif kind == "bin":
        img[mask & ((c.xs.astype(int) % 5) == 0)] = col * 0.7
    elif kind == "bush":
        img[mask & q["leaf"]] = col * 0.6
    elif kind == "bag":
        img[mask & ((c.ys.astype(int) % 7) == 0)] = col * 0.75


def occlude(img: np.ndarray, body: np.ndarray, c: _Canvas, rng: np.random.Generator, seed: int,
            pose: Pose) -> Tuple[np.ndarray, str, float]:
    """Put one occluder in front of the person covering 10-60 % of ``body``; returns (mask, kind, fraction)."""
    total = max(int(body.sum()), 1)
    target = float(rng.uniform(0.12, 0.58))
    kind = OCCLUDERS[int(rng.integers(len(OCCLUDERS)))]
    h, w = c.h, c.w
    q = {"colour": rng.uniform(20, 230, 3).astype(np.float32), "from_left": bool(rng.random() < 0.5),
         "reach": float(rng.uniform(0.7, 1.2)), "x": float(pose.cx + rng.uniform(-0.25, 0.25) * w),
         "half": float(rng.uniform(0.25, 0.45) * w),
         "blobs": [(float(rng.uniform(-1, 1)), float(rng.uniform(-0.5, 0.5))) for _ in range(3)]}
    if kind == "bush":
        q["colour"] = np.array([40, 110, 45], np.float32) * rng.uniform(0.7, 1.2)
        q["leaf"] = ((c.xs.astype(int) * 7 + c.ys.astype(int) * 3) % 5) < 2
    if kind == "pole":
        q["colour"] = np.full(3, rng.uniform(60, 180), np.float32)
    if kind == "pedestrian":
        other = make_identity(seed, "passerby", int(rng.integers(1 << 30)))
        scale = float(rng.uniform(1.05, 1.2))
        ph = pose.ph * scale
        side = float(rng.choice([-1.0, 1.0]))
        view = VIEWS[int(rng.integers(3))]
        facing = int(rng.choice([-1, 1]))
        phase = float(rng.random())
        wide = _Canvas(h, 3 * w)
        layer = np.zeros((h, 3 * w, 3), np.float32)
        opose = Pose(top=float(pose.top + pose.ph - ph + rng.uniform(0, 0.1) * ph), ph=ph, cx=1.5 * w, view=view,
                     facing=facing, phase=phase)
        omask = draw_person(layer, wide, other, opose)

        def mask_at(p: float) -> np.ndarray:
            off = int(round(side * (1 - p) * 0.6 * w + (pose.cx - 0.5 * w)))
            x0 = w - off
            return omask[:, x0:x0 + w]

        def paint(m: np.ndarray, p: float) -> None:
            off = int(round(side * (1 - p) * 0.6 * w + (pose.cx - 0.5 * w)))
            x0 = w - off
            img[m] = layer[:, x0:x0 + w][m]
    else:
        def mask_at(p: float) -> np.ndarray:
            return _occluder_mask(kind, p, c, q, pose)

        def paint(m: np.ndarray, p: float) -> None:
            _paint_occluder(img, m, kind, c, q)

    lo, hi = 0.0, 1.0
    best = None
    for _ in range(9):
        mid = 0.5 * (lo + hi)
        m = mask_at(mid)
        frac = float((m & body).sum()) / total
        if 0.1 <= frac <= 0.6 and (best is None or abs(frac - target) < abs(best[1] - target)):
            best = (mid, frac)
        if frac < target:
            lo = mid
        else:
            hi = mid
    if best is not None:
        m = mask_at(best[0])
        paint(m, best[0])
        return np.ascontiguousarray(m), kind, best[1]
    # fallback: a low wall whose top row is chosen so that the covered fraction is exactly in range
    rows = body.sum(1)[::-1].cumsum()[::-1] / total  # fraction covered by a wall from row r down
    ok = np.nonzero((rows >= 0.1) & (rows <= 0.6))[0]
    r = int(ok[np.argmin(np.abs(rows[ok] - target))]) if len(ok) else int(np.argmin(np.abs(rows - target)))
    m = np.zeros((h, w), bool)
    m[r:] = True
    img[m] = q["colour"]
    return m, "wall", float(rows[r])


# ---------------------------------------------------------------------------------------------------------------
# one image


def _pose(rng: np.random.Generator, ident: Identity, c: _Canvas) -> Pose:
    ph = c.h * min(ident.height * rng.uniform(0.93, 1.06), 1.02)
    top = (c.h - ph) * rng.uniform(0.1, 0.9) + rng.normal(0, 0.02) * c.h
    cx = c.w * (0.5 + rng.normal(0, 0.055))
    view = VIEWS[int(rng.choice(3, p=[0.36, 0.34, 0.30]))]
    return Pose(top=float(top), ph=float(ph), cx=float(cx), view=view, facing=int(rng.choice([-1, 1])),
                phase=float(rng.random()))


_LUT_OFFSETS = np.array([0, 256, 512], dtype=np.intp)


def _camera_finish(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> bytes:
    from PIL import Image

    h, w = img.shape[:2]
    img *= np.float32(rng.uniform(0.88, 1.12))  # per-image light
    if cam.blur > 0.05:  # separable 3-tap blur: the camera's sharpness
        a = np.float32(cam.blur)
        t = img * (1 - 2 * a)
        t[1:] += a * img[:-1]
        t[:-1] += a * img[1:]
        t[0] += a * img[0]
        t[-1] += a * img[-1]
        img = t * (1 - 2 * a)
        img[:, 1:] += a * t[:, :-1]
        img[:, :-1] += a * t[:, 1:]
        img[:, 0] += a * t[:, 0]
        img[:, -1] += a * t[:, -1]
    u8 = np.clip(img, 0, 255).astype(np.intp)
    u8 += _LUT_OFFSETS
    pil = Image.fromarray(cam.lut.reshape(-1)[u8])
    if cam.resolution < 0.95:
        small = (max(8, int(round(w * cam.resolution))), max(8, int(round(h * cam.resolution))))
        pil = pil.resize(small, Image.BILINEAR).resize((w, h), Image.BILINEAR)
    nb = cam.noise_bank
    y0 = int(rng.integers(0, nb.shape[0] - h + 1))
    x0 = int(rng.integers(0, nb.shape[1] - w + 1))
    arr = np.asarray(pil, dtype=np.float32) + nb[y0:y0 + h, x0:x0 + w]
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=cam.quality, subsampling=2, optimize=False)
    return buf.getvalue()


def render_identity_image(ident: Identity, cam: Camera, c: _Canvas, rng: np.random.Generator, seed: int,
                          occluded: bool = False, junk: bool = False):
    """Render one crop; returns (jpeg bytes, occluder mask or None, info dict)."""
    bg = cam.background
    hb, wb = bg.shape[:2]
    y0 = int(rng.integers(0, hb - c.h + 1))
    x0 = int(rng.integers(0, wb - c.w + 1))
    img = bg[y0:y0 + c.h, x0:x0 + c.w].copy()
    if rng.random() < 0.5:
        img = img[:, ::-1].copy()
    pose = _pose(rng, ident, c)
    info = {"viewpoint": pose.view, "occluder": "", "occ_frac": ""}
    mask = None
    if junk:
        # a bad detection: a fragment of a (too large, off-centre) person, or background only
        if rng.random() < 0.7:
            pose.ph *= float(rng.uniform(1.6, 2.6))
            pose.top = float(-rng.uniform(0.0, 0.7) * pose.ph)
            pose.cx = float(c.w * rng.uniform(-0.2, 1.2))
            draw_person(img, c, ident, pose)
        info["viewpoint"] = "junk"
    else:
        body = draw_person(img, c, ident, pose)
        if occluded and body.any():
            mask, kind, frac = occlude(img, body, c, rng, seed, pose)
            info["occluder"], info["occ_frac"] = kind, f"{frac:.4f}"
    return _camera_finish(img, cam, rng), mask, info


# ---------------------------------------------------------------------------------------------------------------
# the dataset


def _plan(identities: int, cameras: int, images_per_id: int, seed: int, distractors: int, junk: int):
    """Which images exist: list of (split, pid, cam, kind, index) in a fixed order."""
    n_train = identities - identities // 2
    plan = []
    for i in range(identities):
        pid = i + 1
        split_train = i < n_train
        rng = np.random.default_rng(derive_seed("synth.cameras", seed, pid))
        ncam = int(rng.integers(2, min(cameras, 4, max(2, images_per_id // 2)) + 1))
        cams = sorted(int(x) for x in rng.choice(cameras, ncam, replace=False))
        per_cam: Dict[int, List[int]] = {cm: [] for cm in cams}
        order = [cams[j % ncam] for j in range(images_per_id)]
        for j, cm in enumerate(order):
            per_cam[cm].append(j)
        query_imgs = set()
        if not split_train:
            for k, cm in enumerate(cams):  # one query per camera while a cross-camera positive stays in the gallery
                if len(per_cam[cm]) >= 2 or k == 0:
                    query_imgs.add(per_cam[cm][0])
        for j, cm in enumerate(order):
            split = "train" if split_train else ("query" if j in query_imgs else "gallery")
            plan.append((split, pid, cm, "id", j))
    for i in range(distractors):
        cm = int(np.random.default_rng(derive_seed("synth.distractor.cam", seed, i)).integers(cameras))
        plan.append(("gallery", 0, cm, "distractor", i))
    for i in range(junk):
        cm = int(np.random.default_rng(derive_seed("synth.junk.cam", seed, i)).integers(cameras))
        plan.append(("gallery", -1, cm, "junk", i))
    return plan, n_train


def _market_name(pid: int, cam: int, frame: int) -> str:
    p = f"{pid:04d}" if pid >= 0 else "-1"
    return f"{p}_c{cam + 1}s1_{frame:06d}_00.jpg"


def generate(out: str, identities: int = 220, cameras: int = 6, images_per_id: int = 12, seed: int = 0,
             occluded: bool = False, size: Sequence[int] = (128, 64), distractors: int = 0, junk: int = 0,
             overwrite: bool = False, progress: bool = False) -> dict:
    """Write the synthetic dataset to ``out`` (Market-1501 layout + manifest); returns a summary dict.

    ``identities`` is the total number of identities: the first ``identities - identities // 2`` are train ids,
    the rest test ids (disjoint, like Market). If ``out`` already holds a complete set made with the same
    arguments it is kept as it is; a set made with other arguments is an error unless ``overwrite=True``.
    """
    t0 = time.perf_counter()
    h, w = (int(v) for v in size)
    _check_generate_args(identities, cameras, images_per_id, h, w, distractors, junk)
    args = {"identities": int(identities), "cameras": int(cameras), "images_per_id": int(images_per_id),
            "seed": int(seed), "occluded": bool(occluded), "size": [h, w], "distractors": int(distractors),
            "junk": int(junk), "version": GENERATOR_VERSION}
    jpath = os.path.join(out, "manifest.json")
    old = _existing_set(out, args, overwrite)
    if old is not None:
        return dict(old["summary"], out=out, seconds=time.perf_counter() - t0, reused=True)
    plan, n_train = _plan(identities, cameras, images_per_id, seed, distractors, junk)
    _prepare_folders(out, plan, occluded)

    cams = [make_camera(seed, k, (h, w)) for k in range(cameras)]
    rows, idents = _render_plan(out, plan, cams, _Canvas(h, w), seed, occluded, progress)
    _write_manifest_csv(out, rows)
    counts = {s: sum(1 for r in rows if r["split"] == s) for s in SPLIT_DIRS}
    summary = {
        "train_images": counts["train"], "query_images": counts["query"], "gallery_images": counts["gallery"],
        "train_ids": n_train, "test_ids": identities - n_train, "cameras": cameras,
        "distractors": distractors, "junk": junk, "occluded_images": sum(r["occluded"] for r in rows),
        "images": len(rows),
    }
    meta = {"args": args, "summary": summary, "cameras": [cm.describe() for cm in cams],
            "identities": {str(pid): idents[pid - 1].describe() for pid in range(1, identities + 1)
                           if pid - 1 in idents}}
    atomic_write_text(jpath, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    seconds = time.perf_counter() - t0
    return dict(summary, out=out, seconds=seconds, images_per_second=len(rows) / max(seconds, 1e-9), reused=False)


def _check_generate_args(identities: int, cameras: int, images_per_id: int, h: int, w: int, distractors: int,
                         junk: int) -> None:
    if identities < 2:
        raise ValueError(f"identities must be >= 2 (half train, half test), got {identities}")
    if cameras < 2:
        raise ValueError(f"cameras must be >= 2 (every identity is seen by two cameras), got {cameras}")
    if cameras > 9:
        raise ValueError(f"cameras must be <= 9 (Market-style names have one camera digit), got {cameras}")
    if images_per_id < 2:
        raise ValueError(f"images_per_id must be >= 2 (two cameras per identity), got {images_per_id}")
    if h < 32 or w < 16:
        raise ValueError(f"size must be at least 32x16, got {h}x{w}")
    if distractors < 0 or junk < 0:
        raise ValueError("distractors and junk must be >= 0")


def _existing_set(out: str, args: dict, overwrite: bool) -> Optional[dict]:
    """The manifest of a complete set in ``out`` made with the same ``args`` (kept as it is), else None; a set made
    with other arguments is an error, unless ``overwrite``, which deletes it."""
    jpath = os.path.join(out, "manifest.json")
    if os.path.isfile(jpath):
        with open(jpath, encoding="utf-8") as fh:
            old = json.load(fh)
        if old.get("args") == args and not overwrite:
            return old
        if not overwrite:
            raise FileExistsError(f"{out} holds a synthetic set made with other arguments ({old.get('args')}); "
                                  f"pass overwrite=True (--overwrite) or choose another folder")
    if overwrite:
        for d in list(SPLIT_DIRS.values()) + ["masks"]:
            shutil.rmtree(os.path.join(out, d), ignore_errors=True)
        for f in ("manifest.json", "manifest.csv"):
            if os.path.exists(os.path.join(out, f)):
                os.remove(os.path.join(out, f))
    return None


def _prepare_folders(out: str, plan, occluded: bool) -> None:
    """Create the split (and mask) folders. An interrupted earlier run (no manifest yet) is simply written again,
    the files are deterministic; but never mix our images with files we would not write (another set, or someone's
    real data)."""
    planned = {f"{SPLIT_DIRS[sp]}/{_market_name(pid, cm, fr)}" for fr, (sp, pid, cm, _, _) in enumerate(plan, 1)}
    for d in SPLIT_DIRS.values():
        folder = os.path.join(out, d)
        if os.path.isdir(folder):
            foreign = sorted(f for f in os.listdir(folder) if f"{d}/{f}" not in planned)
            if foreign:
                raise FileExistsError(f"{folder} holds files this synthetic set would not write (e.g. {foreign[0]}); "
                                      f"choose an empty folder or pass overwrite=True (--overwrite)")
    for d in SPLIT_DIRS.values():
        os.makedirs(os.path.join(out, d), exist_ok=True)
        if occluded:
            os.makedirs(os.path.join(out, "masks", d), exist_ok=True)


def _render_plan(out: str, plan, cams: List[Camera], canvas: _Canvas, seed: int, occluded: bool,
                 progress: bool) -> Tuple[List[dict], Dict[int, Identity]]:
    """Render and write every planned image (and its occlusion mask); returns the manifest rows and the
    identities of the labelled persons by index."""
    idents: Dict[int, Identity] = {}
    rows = []
    for frame, (split, pid, cm, kind, j) in enumerate(progress_bar(plan, desc="synth", unit="img")
                                                      if progress else plan, 1):
        if kind == "id":
            if pid - 1 not in idents:
                idents[pid - 1] = make_identity(seed, "id", pid - 1)
            ident = idents[pid - 1]
        else:
            ident = make_identity(seed, "passerby", -1 - j) if kind == "junk" else make_identity(seed, kind, j)
        rng = np.random.default_rng(derive_seed("synth.image", seed, kind, pid, j))
        occ = occluded and kind != "junk" and (split == "query" or rng.random() < 0.1)
        data, mask, info = render_identity_image(ident, cams[cm], canvas, rng, seed, occluded=occ, junk=kind == "junk")
        name = _market_name(pid, cm, frame)
        rel = f"{SPLIT_DIRS[split]}/{name}"
        with open(os.path.join(out, rel), "wb") as fh:
            fh.write(data)
        mask_rel = ""
        if occluded:
            mask_rel = f"masks/{SPLIT_DIRS[split]}/{os.path.splitext(name)[0]}.png"
            empty = np.zeros((canvas.h, canvas.w), bool)
            _write_mask(os.path.join(out, mask_rel), mask if mask is not None else empty)
        rows.append({"path": rel, "split": split, "pid": pid, "camid": cm, "kind": kind,
                     "occluded": int(mask is not None), "occluder": info["occluder"], "occ_frac": info["occ_frac"],
                     "mask_path": mask_rel, "viewpoint": info["viewpoint"]})
    return rows, idents


def _write_mask(path: str, mask: np.ndarray) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((mask.astype(np.uint8) * 255)).save(buf, format="PNG", optimize=False, compress_level=6)
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())


def _write_manifest_csv(out: str, rows: List[dict]) -> None:
    fields = ["path", "split", "pid", "camid", "kind", "occluded", "occluder", "occ_frac", "mask_path", "viewpoint"]
    buf = io.StringIO()
    wr = _csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    wr.writeheader()
    wr.writerows(rows)
    atomic_write_text(os.path.join(out, "manifest.csv"), buf.getvalue())
