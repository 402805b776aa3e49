#!/usr/bin/env python
"""Training-step cost of the occlusion study's models relative to their BoT baseline, on the CPU.

    OMP_NUM_THREADS=1 python benchmarks/occlusion_models_speed.py [--batch 32] [--threads 1] [--reps 3]

For each preset (BoT, IGOAS, PCB on the pretrained EfficientNet-Lite0 at 128×64, and on cpu_small's ResNet-18):
one training step (forward with the preset's losses, backward, Adam step) on random images, best of ``--reps``
after one warm-up step; IGOAS gets its clean view and an IGO mask as the engine would give them. Prints images/s
and the ratio to the BoT step of the same backbone (ratios from one process are what a loaded machine can tell).
"""

from __future__ import annotations

import argparse
import time

import torch

PAIRS = (("bot_lite0", "igoas_lite0", "pcb_lite0"), ("cpu_small", "igoas_cpu_small", "pcb_cpu_small"))


def step_seconds(preset: str, batch: int, reps: int, num_classes: int = 100, overrides=()) -> float:
    from robustreid.engine.config import load_train_config
    from robustreid.losses import build_losses
    from robustreid.models import build_model

    cfg = load_train_config(preset, ["model.pretrained=", *overrides])  # speed only: random weights
    model = build_model(cfg.model, num_classes).train()
    loss_fn = build_losses(cfg.losses)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    h, w = cfg.model.input_size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, h, w, generator=g)
    mask = torch.zeros(batch, 1, h, w)
    mask[:, :, h // 4: h // 2] = 1.0
    b = {"images": x, "pids": torch.arange(batch) % (batch // 4), "occ_mask": mask, "clean_images": x.flip(-1)}
    extra = {k: b[k] for k in getattr(model, "train_inputs", ())}
    best = float("inf")
    for i in range(reps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total, _ = loss_fn(model(x, **extra), b)
        total.backward()
        opt.step()
        if i:
            best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--presets", default="", help="comma list (default: the two triples)")
    ap.add_argument("overrides", nargs="*", help="key=value overrides of every preset after the first of a group")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    groups = [tuple(args.presets.split(","))] if args.presets else PAIRS
    print(f"| preset | s/step (batch {args.batch}, {args.threads} thread) | img/s | × BoT step |")
    print("|---|---:|---:|---:|")
    for group in groups:
        base = None
        for p in group:
            over = args.overrides if base is not None else ()
            s = step_seconds(p, args.batch, args.reps, overrides=over)
            base = base or s
            name = " ".join([p, *over])
            print(f"| `{name}` | {s:.3f} | {args.batch / s:.1f} | {s / base:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
