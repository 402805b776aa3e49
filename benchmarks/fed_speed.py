#!/usr/bin/env python
"""Training-step cost of the FED ablation presets relative to their BoT baseline, on the CPU.

    OMP_NUM_THREADS=1 python benchmarks/fed_speed.py [--batch 64] [--reps 2] [--classes 702]

For bot_lite0, fed_lite0_npo, fed_lite0_oem, fed_lite0 (random weights, nothing loaded): one training step
(forward with the preset's losses, backward, Adam step) on random images, the best of ``--reps`` after one warm-up
step, in CPU seconds of this process (``time.process_time``: steadier than wall time on a shared machine). FED
models get a clean view, all-visible stripe targets and a random memory bank, as the engine would give them.
"""

from __future__ import annotations

import argparse
import time

import torch

PRESETS = ("bot_lite0", "fed_lite0_npo", "fed_lite0_oem", "fed_lite0")


def step_cpu_seconds(preset: str, batch: int, reps: int, num_classes: int) -> float:
    from robustreid.engine.config import load_train_config
    from robustreid.losses import build_losses
    from robustreid.models import build_model

    cfg = load_train_config(preset, ["model.pretrained="])
    model = build_model(cfg.model, num_classes).train()
    loss_fn = build_losses(cfg.losses)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    h, w = cfg.model.input_size
    x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    b = {"images": x, "pids": torch.arange(batch) % (batch // 4), "clean_images": x.flip(-1),
         "stripe_targets": torch.ones(batch, 4)}
    if getattr(model, "bank", None) is not None:
        with torch.no_grad():
            model.bank.normal_()
    extra = {k: b[k] for k in getattr(model, "train_inputs", ())}
    best = float("inf")
    for i in range(reps + 1):
        t0 = time.process_time()
        loss, _ = loss_fn(model(x, **extra), b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            best = min(best, time.process_time() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--classes", type=int, default=702, help="training identities (Occluded-Duke: 702)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    base = None
    print(f"| preset | CPU-s per step of {args.batch} samples | × bot_lite0 |\n|---|---:|---:|")
    for p in PRESETS:
        s = step_cpu_seconds(p, args.batch, args.reps, args.classes)
        base = base or s
        print(f"| `{p}` | {s:.2f} | {s / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
