#!/usr/bin/env python
"""Where IGOAS's mask loss lands on a small feature map: the mean of ``(1 - keep)²`` per map cell (the factor of ``p²``
in ``MSE(p, p·keep)``) over many draws of the ``igo`` augmentation, the mask resized as the released code does.

    python benchmarks/igo_mask_coverage.py [--draws 3000] [--size 128 64] [--map 8 4] [--areas 0.1 0.25 0.3333]

Prints, per occluded area fraction, the per-cell map and the ranges of docs/occlusion_methods.md's table (centre
columns rows 1..h-2, border columns rows 1..h-2, top and bottom rows). The numbers behind igoas_lite0_occmask.
"""

from __future__ import annotations

import argparse
import sys

import torch

from robustreid.losses.igoas import keep_mask
from robustreid.transforms.augment.base import AugContext
from robustreid.transforms.augment.igo import IGO


def coverage(area: float, size=(128, 64), map_size=(8, 4), draws: int = 3000, seed: int = 0) -> torch.Tensor:
    """Mean ``(1 - keep)²`` per cell of a ``map_size`` map over ``draws`` IGO occlusions of ``area`` of the crop."""
    igo = IGO(start=area, growth=0.0)
    ctx = AugContext(generator=torch.Generator().manual_seed(seed), mean=(0.5,) * 3, std=(0.5,) * 3)
    images = torch.zeros(1, 3, *size)
    acc = torch.zeros(map_size)
    for _ in range(draws):
        acc += (1.0 - keep_mask(igo({"images": images}, ctx)["occ_mask"], map_size))[0, 0] ** 2
    return acc / draws


def _span(t: torch.Tensor) -> str:
    return f"{float(t.min()):.2f}–{float(t.max()):.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--draws", type=int, default=3000)
    ap.add_argument("--size", type=int, nargs=2, default=(128, 64), metavar=("H", "W"))
    ap.add_argument("--map", type=int, nargs=2, default=(8, 4), metavar=("h", "w"))
    ap.add_argument("--areas", type=float, nargs="+", default=(0.1, 0.25, 1 / 3))
    args = ap.parse_args(argv)
    h, w = args.map
    if h < 3 or w < 3:
        print(f"igo_mask_coverage: --map {h} {w}: expected at least 3×3 (a centre and a border)", file=sys.stderr)
        return 2
    rows = ["| IGO area | centre columns, inner rows | border columns, inner rows | top and bottom rows |",
            "|---|---:|---:|---:|"]
    for area in args.areas:
        c = coverage(area, tuple(args.size), (h, w), args.draws)
        print(f"area {area:.3f}:\n{c.numpy().round(2)}")
        inner = c[1:h - 1]
        rows.append(f"| {100 * area:.0f} % | {_span(inner[:, 1:w - 1])} | {_span(inner[:, [0, w - 1]])} | "
                    f"{_span(c[[0, h - 1]])} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
