"""Training throughput of a preset through the real engine (images/s), two ways:

- ``synthetic``: random uint8 batches already in memory, fed to ``Trainer.train_step`` (device augmentation, batch
  augmentations, forward, losses, backward, optimiser step): the engine's ceiling, no decoding.
- ``loader``: the full loop of ``Trainer.train`` on a dataset (PK sampler, data loader with its cache/workers, the
  same step): what a real run gets. Needs ``--dataset`` and ``--root``. The cache fill (decoding every image once)
  happens before the timed part and is reported separately.

Prints a markdown table. Timings depend on the machine's load (the script prints the load average): on a shared
machine, say so.

    .venv/bin/python benchmarks/train_speed.py --preset cpu_small --threads 2 --iters 30
    .venv/bin/python benchmarks/train_speed.py --preset cpu_small --threads 2 --iters 30 \
        --dataset market1501 --root real/data/market1501 --modes synthetic loader
    .venv/bin/python benchmarks/train_speed.py --preset bot_r50 --device cuda --iters 50 train.amp=bf16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime, timezone

import torch

from robustreid.data.sample import ReidDataset, Sample
from robustreid.engine.config import load_train_config
from robustreid.engine.trainer import Trainer


class _NoSampler:
    def __init__(self, n):
        self.n = n

    def set_epoch(self, e):
        pass

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


class SyntheticTrainer(Trainer):
    """A trainer whose batches are random tensors made once (no files, no loader)."""

    def build_sampler(self, pids):
        return _NoSampler(len(pids))

    def build_train_loader(self, samples, sampler):
        return None


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_synthetic(cfg, iters, warmup, num_classes=751):
    bs = cfg.data.p * cfg.data.k
    fake = [Sample(f"fake/{i}.jpg", i % num_classes, i % 6) for i in range(max(bs * 4, num_classes * 2))]
    ds = ReidDataset("synthetic-tensors", fake, [], [])
    with tempfile.TemporaryDirectory() as tmp:
        t = SyntheticTrainer(cfg, tmp, dataset=ds, progress=False)
        try:
            t.setup()
            h, w = cfg.model.input_size
            g = torch.Generator().manual_seed(0)
            pids = torch.arange(cfg.data.p).repeat_interleave(cfg.data.k) % num_classes
            batch = {"images": torch.randint(0, 256, (bs, 3, h, w), dtype=torch.uint8, generator=g),
                     "pids": pids, "camids": torch.zeros(bs, dtype=torch.long)}
            if t.device.type == "cuda":
                batch["images"] = batch["images"].pin_memory()
            for i in range(warmup):
                t.train_step(batch, 0, i)
            _sync(t.device)
            t0 = time.perf_counter()
            for i in range(iters):
                t.train_step(batch, 0, warmup + i)
            _sync(t.device)
            dt = time.perf_counter() - t0
        finally:
            t.close()
    return {"img_s": iters * bs / dt, "s_iter": dt / iters, "setup_s": float("nan")}


def bench_loader(cfg, iters, warmup, dataset, root):
    from robustreid.data import load_dataset

    ds = load_dataset(dataset, root)
    ds = ReidDataset(ds.name, ds.train, [], [], ds.root)  # no evaluation in the timed run
    cfg.solver.epochs = 1
    cfg.solver.warmup_epochs = 0
    cfg.train.max_iters_per_epoch = warmup + iters
    cfg.train.log_period = 10 ** 9
    marks = {}

    def hook(trainer, epoch, it):
        if it == warmup - 1:
            _sync(trainer.device)
            marks["t0"] = time.perf_counter()
        if it == warmup + iters - 1:
            _sync(trainer.device)
            marks["t1"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(cfg, tmp, dataset=ds, hooks=[hook], progress=False)
        try:
            s0 = time.perf_counter()
            t.setup()
            setup_s = time.perf_counter() - s0
            if t.iters_per_epoch < warmup + iters:
                raise SystemExit(f"the dataset gives only {t.iters_per_epoch} iterations per epoch")
            t.train()
        finally:
            t.close()
    bs = cfg.data.p * cfg.data.k
    dt = marks["t1"] - marks["t0"]
    return {"img_s": iters * bs / dt, "s_iter": dt / iters, "setup_s": setup_s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu_small")
    ap.add_argument("overrides", nargs="*", help="key=value config overrides")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modes", nargs="+", default=["synthetic"], choices=["synthetic", "loader"])
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--root", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for mode in args.modes:
        cfg = load_train_config(args.preset, list(args.overrides) + [f"train.device={args.device}",
                                                                      "train.progress=false"])
        if mode == "synthetic":
            r = bench_synthetic(cfg, args.iters, args.warmup)
        else:
            if not (args.dataset and args.root):
                raise SystemExit("--modes loader needs --dataset and --root")
            r = bench_loader(cfg, args.iters, args.warmup, args.dataset, args.root)
        rows.append((mode, cfg, r))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, device {args.device}, torch threads {args.threads}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs visible")
    print()
    print("| preset | mode | model | input | batch | amp | images/s | s/iter | cache fill + setup (s) |")
    print("|---|---|---|---|---|---|---:|---:|---:|")
    for mode, cfg, r in rows:
        m = cfg.model
        kw = ",".join(f"{k}={v}" for k, v in m.backbone_kwargs.items())
        print(f"| {args.preset} | {mode} | {m.backbone}{'(' + kw + ')' if kw else ''} | "
              f"{m.input_size[0]}×{m.input_size[1]} | {cfg.data.p}×{cfg.data.k} | {cfg.train.amp} | "
              f"{r['img_s']:.0f} | {r['s_iter']:.3f} | {r['setup_s']:.1f} |")


if __name__ == "__main__":
    main()
