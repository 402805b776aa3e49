"""Training and inference speed of the backbones on this machine (images/s).

Forward + backward + SGD step of the BoT model (CE + triplet on a PK batch) at the given input size and batch,
and eval-mode forward; prints a markdown table. The timings depend on the machine's load: on a shared machine,
run it when it is quiet and say how loaded it was (the script prints the load average). "train img per CPU-s" divides
by the process's CPU time instead of wall time: with ``--threads 1`` it hardly depends on the other processes, and
two free cores give at most twice it.

    .venv/bin/python benchmarks/model_speed.py --threads 2 --batch 64 --size 128 64 \
        --models resnet18:width=0.5 resnet18 resnet50
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone

import torch

from robustreid.losses import build_losses
from robustreid.models import ModelConfig, build_model, count_parameters


def parse_model(spec: str):
    """'resnet18:width=0.5,last_stride=1' -> (backbone, kwargs, last_stride)."""
    name, _, rest = spec.partition(":")
    kw = {}
    last_stride = 1
    for item in filter(None, rest.split(",")):
        k, v = item.split("=")
        v = float(v) if "." in v else int(v)
        if k == "last_stride":
            last_stride = int(v)
        else:
            kw[k] = v
    return name, kw, last_stride


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(spec: str, batch: int, size, iters: int, warmup: int, channels_last: bool, num_classes: int = 751,
          device: str = "cpu", amp: str = "off"):
    name, kw, last_stride = parse_model(spec)
    cfg = ModelConfig(backbone=name, backbone_kwargs=kw, last_stride=last_stride, input_size=tuple(size),
                      pooling="cls" if name.startswith("vit") else "gap")
    model = build_model(cfg, num_classes)
    mf = torch.channels_last if channels_last else torch.contiguous_format
    dev = torch.device(device)
    model = model.to(dev, memory_format=mf)
    loss_fn = build_losses([{"name": "ce"}, {"name": "triplet"}])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randint(0, 256, (batch, 3, *size), dtype=torch.uint8).to(dev).contiguous(memory_format=mf)
    pids = (torch.arange(batch) // 4).to(dev)
    use_amp = amp != "off" and dev.type == "cuda"
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp == "fp16")
    model.train()
    for i in range(warmup + iters):
        if i == warmup:
            _sync(dev)
            t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast(dev.type, dtype=dtype, enabled=use_amp):
            out = model(x)
            loss, _ = loss_fn(out, {"pids": pids})
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    _sync(dev)
    train_ips = batch * iters / (time.perf_counter() - t0)
    train_cpu = batch * iters / max(time.process_time() - c0, 1e-9)
    model.eval()
    with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype, enabled=use_amp):
        for i in range(warmup + iters):
            if i == warmup:
                _sync(dev)
                t0 = time.perf_counter()
            model(x)
        _sync(dev)
    eval_ips = batch * iters / (time.perf_counter() - t0)
    with torch.no_grad():
        fmap = model.train().forward_features(x[:2])
    return dict(model=spec, params=count_parameters(model) / 1e6, feat_dim=model.feat_dim,
                fmap="×".join(map(str, fmap.shape[1:])), train=train_ips, train_cpu=train_cpu, eval=eval_ips)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet18:width=0.5", "resnet18", "resnet50"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"], help="mixed precision (CUDA only)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()
    print(f"date {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; torch {torch.__version__}; threads {args.threads}; "
          f"cpus {os.cpu_count()}; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"batch {args.batch}; input {args.size[0]}×{args.size[1]}; channels_last {args.channels_last}; "
          f"device {args.device}; amp {args.amp}\n")
    print("| backbone | params (M) | feat dim | feature map | train img/s (fwd+bwd+step) | train img per CPU-s | "
          "eval img/s |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.models:
        r = bench(spec, args.batch, args.size, args.iters, args.warmup, args.channels_last, device=args.device,
                  amp=args.amp)
        print(f"| {r['model']} | {r['params']:.2f} | {r['feat_dim']} | {r['fmap']} | {r['train']:.0f} | {r['train_cpu']:.0f} | "
              f"{r['eval']:.0f} |",
              flush=True)
    load = os.getloadavg()
    print(f"\nload average after {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
