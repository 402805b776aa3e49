#!/usr/bin/env python
"""The full robustness sweep of one checkpoint on a real dataset (default Market-1501), timed.

    # the full published grid: 20 corruptions x 5 severities x 3 protocols + clean (301 cells), then mix x 10 passes
    python benchmarks/bench_market.py --checkpoint runs/cpu_small/best.safetensors --root data/market1501 \
        --out runs/bench_market_cpu_small --modes sweep,mix --mix-passes 10

    # timing only, with an untrained model built from a preset (no checkpoint needed), e.g. the demo setting
    python benchmarks/bench_market.py --random-init demo --dataset synthetic --root data/synthetic \
        --out /tmp/bench_demo --severities 3 --modes sweep,mix --mix-passes 3

Prints the wall time, the time breakdown (extraction / corruption / metrics, summed over the cells this
invocation computed) and the robustness table (markdown). Resumable like ``robustreid bench``: re-running the same
command continues an interrupted sweep (the printed timing then covers only the new cells).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--checkpoint", action="append", default=[], help="checkpoint (repeatable; NAME=PATH names it)")
    ap.add_argument("--random-init", default=None, metavar="PRESET",
                    help="benchmark an untrained model built from this config preset (timing only)")
    ap.add_argument("--dataset", default="market1501")
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--protocols", default="clean,query,gallery,both")
    ap.add_argument("--modes", default="sweep")
    ap.add_argument("--corruptions", default="all")
    ap.add_argument("--severities", default="1-5")
    ap.add_argument("--mix-passes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--num-workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--reference-model", default=None)
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from robustreid.robustness import run_benchmark, read_results
    from robustreid.robustness.summary import robustness_table

    models = {}
    for c in args.checkpoint:
        name, path = c.split("=", 1) if ("=" in c and not os.path.exists(c)) else (None, c)
        if name is None:
            from robustreid.robustness.runner import default_model_name

            name = default_model_name(path)
        models[name] = path
    if args.random_init:
        from robustreid.engine.config import load_train_config
        from robustreid.models import build_model

        cfg = load_train_config(args.random_init)
        torch.manual_seed(0)
        m = build_model(cfg.model, num_classes=10).eval()
        models[f"{args.random_init}_untrained"] = m
    if not models:
        ap.error("give --checkpoint and/or --random-init")

    before = {(r["model"], r["protocol"], r["corruption"], r["severity"], r["pass"]) for r in read_results(args.out)} \
        if os.path.exists(os.path.join(args.out, "results.csv")) else set()
    t0 = time.perf_counter()
    rows = run_benchmark(models, args.dataset, args.out, root=args.root, protocols=args.protocols,
                         modes=args.modes, corruptions=args.corruptions, severities=args.severities,
                         mix_passes=args.mix_passes, seed=args.seed, batch_size=args.batch_size, device=args.device,
                         num_workers=args.num_workers, reference_model=args.reference_model,
                         command="python " + " ".join(sys.argv))
    wall = time.perf_counter() - t0
    new = [r for r in rows if (r["model"], r["protocol"], r["corruption"], r["severity"], r["pass"]) not in before]
    ext = sum(r["extract_s"] for r in new)
    cor = sum(r["corrupt_s"] for r in new)
    met = sum(r["metrics_s"] for r in new)
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    print(f"\n## {args.dataset}: {len(new)} new cells ({len(rows)} in {args.out}), {platform.node()}, {gpu}, "
          f"torch threads {torch.get_num_threads()}\n")
    print("| part | seconds | share |\n|---|---|---|")
    for name, v in (("extraction (decode + resize + model)", ext), ("corruption", cor), ("metrics", met),
                    ("other (cache, files, overhead)", max(wall - ext - cor - met, 0.0))):
        print(f"| {name} | {v:.1f} | {100 * v / max(wall, 1e-9):.0f}% |")
    print(f"| **wall time** | **{wall:.1f}** | |\n")
    print(robustness_table(rows, args.reference_model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
