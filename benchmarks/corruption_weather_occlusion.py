"""Parity and speed of the weather / rain / occlusion corruptions (part B of the corruption suite).

    .venv/bin/python benchmarks/corruption_weather_occlusion.py --images 64 --speed-images 256

Prints markdown tables: (1) mean PSNR vs clean of ours and of imagecorruptions 1.1.5 per corruption × severity
(frost with the reference photographs and with the generated textures), (2) images/s of ours and the reference on a
batch of 128×64 images (CPU time, best of --repeats, one thread), (3) images/s of rain and the occlusion family.
Needs the optional reference package (pip install 'robustreid[reference]').
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Person-like 128×64 crops plus scikit-image photo crops (one in eight): tests/corruption_images.py."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from corruption_images import photo_crops, synthetic_persons

    rng = np.random.default_rng(seed)
    n_photo = max(1, n // 8)
    return np.stack(synthetic_persons(n - n_photo, rng) + photo_crops(n_photo, rng))


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(1)
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=64, help="images for the parity table")
    ap.add_argument("--speed-images", type=int, default=256, help="batch size for the speed table")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import imagecorruptions as ic
    from robustreid.corruptions import corrupt, weather
    warnings.simplefilter("ignore")

    arr = _images(args.images, args.seed)
    t = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    print(f"## Parity: mean PSNR (dB) vs clean over {len(arr)} images of 128×64\n")
    print("| corruption | severity | reference | ours | ours − ref |")
    print("|---|---|---|---|---|")
    rows = [("snow", None), ("frost", weather.PHOTOGRAPHS), ("frost", weather.GENERATED), ("fog", None),
            ("spatter", None)]
    for name, src in rows:
        if src is not None:
            weather.set_frost_source(src)
        label = name if src is None else f"frost ({src})"
        for s in range(1, 6):
            np.random.seed(args.seed * 10 + s)
            ref = _psnr(np.stack([ic.corrupt(x, severity=s, corruption_name=name) for x in arr]), arr)
            ours = _psnr(corrupt(t, name, s, seed=args.seed * 10 + s).permute(0, 2, 3, 1).numpy(), arr)
            print(f"| {label} | {s} | {ref:.2f} | {ours:.2f} | {ours - ref:+.2f} |")
        weather.set_frost_source(None)

    def best(fn) -> float:
        b = float("inf")
        for _ in range(args.repeats):
            t0 = time.process_time()
            fn()
            b = min(b, time.process_time() - t0)
        return b

    sp = _images(args.speed_images, args.seed + 1)
    st = torch.from_numpy(sp).permute(0, 3, 1, 2).contiguous()
    n = len(sp)
    print(f"\n## Speed: images/s on {n} images of 128×64 (CPU time, best of {args.repeats}, 1 thread)\n")
    print("| corruption | severity | reference | ours | speed-up |")
    print("|---|---|---|---|---|")
    for name in ("snow", "frost", "fog", "spatter"):
        for s in (1, 3, 5):
            corrupt(st[:2], name, s, seed=0)  # warm caches (frost textures)
            tr = best(lambda: [ic.corrupt(x, severity=s, corruption_name=name) for x in sp])
            to = best(lambda: corrupt(st, name, s, seed=1))
            print(f"| {name} | {s} | {n / tr:.0f} | {n / to:.0f} | {tr / to:.2f}× |")
    print("\n| corruption (ours only) | severity | images/s |")
    print("|---|---|---|")
    for name in ("rain", "occlusion_solid", "occlusion_noise", "occlusion_object", "occlusion_pedestrian"):
        for s in (1, 5):
            to = best(lambda: corrupt(st, name, s, seed=1))
            print(f"| {name} | {s} | {n / to:.0f} |")


if __name__ == "__main__":
    main()
