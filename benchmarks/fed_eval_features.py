#!/usr/bin/env python
"""Evaluate a FED checkpoint with both inference features: f′ (the default) and the FDM output.

    python benchmarks/fed_eval_features.py --checkpoint runs/fed --dataset occluded_duke --root real/data/Occluded_Duke \
        [--out features.json] [--flip] [--device cpu]

The released training log evaluates both every 10 epochs (Occluded-Duke, epoch 120: f′ 56.1 mAP, FDM output 50.2):
this reproduces that comparison on any FED checkpoint. The FDM output needs no label: each image is diffused with the
8 memory-bank centres nearest to its f′ (the released test code's choice). Prints a Markdown table; with ``--out``
writes the metrics as JSON (atomically; an existing file is kept, so a study script can call it again for free).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def evaluate_both(checkpoint: str, dataset: str, root: str, *, flip: bool = False, device: str = "cpu",
                  batch_size: int = 128):
    from robustreid.data import load_dataset
    from robustreid.engine.checkpoint import load_model
    from robustreid.engine.extract import extract_features
    from robustreid.eval import evaluate

    model = load_model(checkpoint, device=device)
    if not hasattr(model, "using_eval_feature") or getattr(model, "fdm", None) is None:
        raise SystemExit(f"{checkpoint}: not a FED model with an FDM (model {type(model).__name__})")
    ds = load_dataset(dataset, root)
    q_p, g_p = np.array([s.pid for s in ds.query]), np.array([s.pid for s in ds.gallery])
    q_c, g_c = np.array([s.camid for s in ds.query]), np.array([s.camid for s in ds.gallery])
    out = {}
    for feature in ("fprime", "fdm"):
        with model.using_eval_feature(feature):
            qf = extract_features(model, ds.query, batch_size=batch_size, flip=flip, desc=f"{feature} query")
            gf = extract_features(model, ds.gallery, batch_size=batch_size, flip=flip, desc=f"{feature} gallery")
        r = evaluate(qf, gf, q_p, g_p, q_c, g_c)
        out[feature] = {"R1": float(r.cmc[0]), "R5": float(r.cmc[4]), "mAP": float(r.mAP), "mINP": float(r.mINP)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="FED run directory or .safetensors file")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", default=None, help="JSON file (kept if it exists)")
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args(argv)
    if args.out and Path(args.out).is_file():
        res = json.loads(Path(args.out).read_text())
    else:
        res = evaluate_both(args.checkpoint, args.dataset, args.root, flip=args.flip, device=args.device,
                            batch_size=args.batch_size)
        if args.out:
            from robustreid.utils.io import atomic_write_text

            atomic_write_text(Path(args.out), json.dumps({"checkpoint": args.checkpoint, "dataset": args.dataset,
                                                          **res}, indent=1) + "\n")
    print("| feature | R1 | R5 | mAP | mINP |\n|---|---:|---:|---:|---:|")
    for feature, name in (("fprime", "f′ (default)"), ("fdm", "FDM output")):
        m = res[feature]
        print(f"| {name} | " + " | ".join(f"{100 * m[k]:.2f}" for k in ("R1", "R5", "mAP", "mINP")) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
