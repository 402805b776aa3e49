"""Time of each batch augmentation on one training batch (the engine calls them every iteration).

    .venv/bin/python benchmarks/augment_speed.py --batch 64 --size 256 128 --repeat 5

Prints a markdown table: augmentation, ms per batch (median of ``--repeat`` calls after one warm-up), images/s.
Timings on a shared CPU are noisy: compare orders of magnitude, not percent.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from robustreid.transforms.augment import AugContext, BatchDropBlock, build_batch_augment

SPECS = [
    {"name": "random_erasing", "p": 0.5, "fill": "mean"},
    {"name": "random_erasing", "p": 0.5, "fill": "random"},
    {"name": "soft_erasing", "p": 0.5},
    {"name": "self_erasing", "p": 0.5},
    {"name": "batch_random_erasing"},
    {"name": "random_patch", "p": 0.5, "min_pool": 1},
    {"name": "augmix"},
    {"name": "igo"},
    {"name": "npo"},
    {"name": "corruption_aug", "p": 0.5},
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 128], metavar=("H", "W"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", nargs="*", help="names to time (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    H, W = args.size
    x = torch.rand(args.batch, 3, H, W, device=dev)
    rows = []
    specs = [s for s in SPECS if not args.only or s["name"] in args.only]
    for spec in specs:
        aug = build_batch_augment([spec])
        times = []
        for r in range(args.repeat + 1):
            ctx = AugContext(generator=torch.Generator().manual_seed(r), epoch=10)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            aug({"images": x, "pids": torch.arange(args.batch)}, ctx)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if r:  # the first call warms up (and fills the patch pools)
                times.append(time.perf_counter() - t)
        label = spec["name"] + (f" ({spec['fill']})" if "fill" in spec else "")
        rows.append((label, statistics.median(times)))
    blk = BatchDropBlock().train()
    fmap = torch.rand(args.batch, 256, H // 16, W // 16, device=dev)
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        blk(fmap)
        times.append(time.perf_counter() - t)
    rows.append((f"BatchDropBlock (feature map {args.batch}×256×{H // 16}×{W // 16})", statistics.median(times)))
    print(f"batch {args.batch} × 3 × {H} × {W}, {args.threads} thread(s), device {dev}\n")
    print("| augmentation | ms / batch | images / s |")
    print("|---|---|---|")
    for label, t in rows:
        print(f"| {label} | {1000 * t:.1f} | {args.batch / t:,.0f} |")


if __name__ == "__main__":
    main()
