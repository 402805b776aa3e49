"""Training throughput of a preset through the real engine (images/s), two ways:

- ``synthetic``: random uint8 batches already in memory, fed to ``Trainer.train_step`` (device augmentation, batch
  augmentations, forward, losses, backward, optimiser step): the engine's ceiling, no decoding.
- ``loader``: the full loop of ``Trainer.train`` on a dataset (PK sampler, data loader with its cache/workers, the
  same step): what a real run gets. Needs ``--dataset`` and ``--root``. The cache fill (decoding every image once)
  happens before the timed part and is reported separately.

- ``--grid``: the CPU speed options side by side: every preset × input size × setting (``fp32``,
  ``channels_last``, ``bf16`` autocast, ``bf16_cl`` both, ``compile`` = ``torch.compile``), synthetic batches,
  measured round-robin (one timed iteration of every variant per round, so a change of the machine's load hits
  all of them alike), best round per variant, wall images/s and images per CPU-second, and the ratio to the fp32
  row of the same preset and size.

Prints a markdown table. Timings depend on the machine's load (the script prints the load average): on a shared
machine, say so.

    .venv/bin/python benchmarks/train_speed.py --preset cpu_small --threads 2 --iters 30
    .venv/bin/python benchmarks/train_speed.py --preset cpu_small --threads 2 --iters 30 \
        --dataset market1501 --root real/data/market1501 --modes synthetic loader
    .venv/bin/python benchmarks/train_speed.py --grid --presets cpu_small cpu_lite0 --sizes 128x64 256x128 \
        --settings fp32 channels_last bf16 bf16_cl --batch 8x4 --rounds 3 --warmup 1 --threads 2 \
        --exclude '*/256x128/bf16*'
    .venv/bin/python benchmarks/train_speed.py --preset bot_r50 --device cuda --iters 50 train.amp=bf16
"""

from __future__ import annotations

import argparse
import fnmatch
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


def synthetic_trainer(cfg, tmp, num_classes=751):
    """A set-up :class:`SyntheticTrainer` for ``cfg`` and one random batch of its size."""
    bs = cfg.data.p * cfg.data.k
    fake = [Sample(f"fake/{i}.jpg", i % num_classes, i % 6) for i in range(max(bs * 4, num_classes * 2))]
    ds = ReidDataset("synthetic-tensors", fake, [], [])
    t = SyntheticTrainer(cfg, tmp, dataset=ds, progress=False)
    t.setup()
    h, w = cfg.model.input_size
    g = torch.Generator().manual_seed(0)
    pids = torch.arange(cfg.data.p).repeat_interleave(cfg.data.k) % num_classes
    batch = {"images": torch.randint(0, 256, (bs, 3, h, w), dtype=torch.uint8, generator=g),
             "pids": pids, "camids": torch.zeros(bs, dtype=torch.long)}
    if t.device.type == "cuda":
        batch["images"] = batch["images"].pin_memory()
    return t, batch


def bench_synthetic(cfg, iters, warmup, num_classes=751):
    bs = cfg.data.p * cfg.data.k
    with tempfile.TemporaryDirectory() as tmp:
        t = None
        try:
            t, batch = synthetic_trainer(cfg, tmp, num_classes)
            for i in range(warmup):
                t.train_step(batch, 0, i)
            _sync(t.device)
            t0 = time.perf_counter()
            for i in range(iters):
                t.train_step(batch, 0, warmup + i)
            _sync(t.device)
            dt = time.perf_counter() - t0
        finally:
            if t is not None:
                t.close()
    return {"img_s": iters * bs / dt, "s_iter": dt / iters, "setup_s": float("nan")}


SETTINGS = {
    "fp32": [],
    "channels_last": ["train.channels_last=true"],
    "bf16": ["train.amp=bf16"],
    "bf16_cl": ["train.amp=bf16", "train.channels_last=true"],
    "compile": ["train.compile=true"],
    "compile_cl": ["train.compile=true", "train.channels_last=true"],
}


def _timed_step(t, batch, it):
    _sync(t.device)
    w0, c0 = time.perf_counter(), time.process_time()
    t.train_step(batch, 0, it)
    _sync(t.device)
    return time.perf_counter() - w0, time.process_time() - c0


def bench_grid(presets, sizes, settings, batch, rounds, warmup, overrides, device, exclude=()):
    """Round-robin timing of every (preset, size, setting) not matched by an ``exclude`` pattern
    (``preset/HxW/setting``, fnmatch); returns rows with the best round of each."""
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for preset in presets:
                for h, w in sizes:
                    for name in settings:
                        if any(fnmatch.fnmatch(f"{preset}/{h}x{w}/{name}", pat) for pat in exclude):
                            continue
                        ov = list(overrides) + SETTINGS[name] + [
                            f"model.input_size=[{h},{w}]", f"data.p={batch[0]}", f"data.k={batch[1]}",
                            f"train.device={device}", "train.progress=false", "train.log_period=1000000"]
                        cfg = load_train_config(preset, ov)
                        t, b = synthetic_trainer(cfg, f"{tmp}/{len(variants)}")
                        w0 = time.perf_counter()
                        for i in range(warmup):  # includes torch.compile's compilation
                            t.train_step(b, 0, i)
                        v = {"preset": preset, "size": (h, w), "setting": name, "trainer": t, "batch": b,
                             "warmup_s": time.perf_counter() - w0, "wall": [], "cpu": []}
                        variants.append(v)
                        print(f"set up {preset} {h}×{w} {name} (warm-up {v['warmup_s']:.1f} s)", flush=True)
            for r in range(rounds):
                for v in variants:
                    wall, cpu = _timed_step(v["trainer"], v["batch"], warmup + r)
                    v["wall"].append(wall)
                    v["cpu"].append(cpu)
                print(f"round {r + 1}/{rounds} done", flush=True)
        finally:
            for v in variants:
                v.pop("trainer").close()
    bs = batch[0] * batch[1]
    for v in variants:
        v["img_s"] = bs / min(v["wall"])
        v["img_cpu_s"] = bs / min(v["cpu"])
        base = next((u for u in variants if u["preset"] == v["preset"] and u["size"] == v["size"]
                     and u["setting"] == settings[0]), None)
        v["ratio"] = v["img_s"] / base["img_s"] if base else float("nan")
        v["ratio_cpu"] = v["img_cpu_s"] / base["img_cpu_s"] if base else float("nan")
    return variants


def print_grid(rows, settings, batch, rounds):
    print(f"batch {batch[0]}×{batch[1]}, best of {rounds} round-robin rounds; ratios to {settings[0]} of the same "
          "preset and size")
    print()
    print(f"| preset | input | setting | images/s (wall) | × {settings[0]} | images per CPU-s | × {settings[0]} "
          "| warm-up s |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for v in rows:
        h, w = v["size"]
        print(f"| {v['preset']} | {h}×{w} | {v['setting']} | {v['img_s']:.1f} | {v['ratio']:.2f} | "
              f"{v['img_cpu_s']:.1f} | {v['ratio_cpu']:.2f} | {v['warmup_s']:.1f} |")


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


def _print_header(args):
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, device {args.device}, torch threads {args.threads}, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs visible, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print()


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
    ap.add_argument("--grid", action="store_true", help="time presets × sizes × settings round-robin")
    ap.add_argument("--presets", nargs="+", default=["cpu_small", "cpu_lite0"])
    ap.add_argument("--sizes", nargs="+", default=["128x64", "256x128"], help="HxW")
    ap.add_argument("--settings", nargs="+", default=["fp32", "channels_last", "bf16", "bf16_cl"],
                    choices=sorted(SETTINGS), help="the first is the reference of the ratios")
    ap.add_argument("--batch", default="8x4", help="PxK of the grid's batches")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--exclude", nargs="*", default=[], help="skip grid cells matching preset/HxW/setting "
                    "(fnmatch), e.g. '*/256x128/bf16*'")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.grid:
        sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
        batch = tuple(int(v) for v in args.batch.lower().split("x"))
        rows = bench_grid(args.presets, sizes, args.settings, batch, args.rounds, args.warmup, args.overrides,
                          args.device, args.exclude)
        _print_header(args)
        print_grid(rows, args.settings, batch, args.rounds)
        return
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
    _print_header(args)
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
