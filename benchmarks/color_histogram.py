"""Colour-histogram matcher: the sanity baseline a trained ReID model must beat on the synthetic set.

Each image is described by joint RGB histograms (``--bins`` per channel) of ``--stripes`` horizontal stripes,
square-rooted (Hellinger) and L2-normalised; query and gallery are matched by cosine similarity and scored with
``robustreid.eval.evaluate`` (market convention: same pid + same camera removed, AP not interpolated).

    python benchmarks/color_histogram.py                      # default synthetic set (generated if missing)
    python benchmarks/color_histogram.py --occluded
    python benchmarks/color_histogram.py --root real/data/market1501 --dataset market1501
    python benchmarks/color_histogram.py --cnn-epochs 30     # + a tiny CNN trained on the train split (learnability)

``--cnn-epochs`` trains a deliberately small 8-conv CNN (64x32 input, ID loss with label smoothing, flip +
pad-crop) on the train identities and reports it with the same evaluation: a check that the set is learnable
beyond colour, not a ReID method.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch


def describe(images: torch.Tensor, bins: int, stripes: int) -> torch.Tensor:
    """uint8 N×3×H×W -> N×(stripes·bins³) Hellinger-normalised joint RGB histograms."""
    n, _, h, w = images.shape
    q = (images.long() * bins) // 256  # N×3×H×W in [0, bins)
    code = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]  # N×H×W
    edges = np.linspace(0, h, stripes + 1).round().astype(int)
    feats = []
    for s in range(stripes):
        c = code[:, edges[s]:edges[s + 1]].reshape(n, -1)
        hist = torch.zeros(n, bins ** 3)
        hist.scatter_add_(1, c, torch.ones_like(c, dtype=torch.float32))
        feats.append(hist / hist.sum(1, keepdim=True).clamp_min(1))
    f = torch.cat(feats, 1).sqrt()
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)


def features(samples, size, bins, stripes, batch=256):
    from robustreid.data.loader import build_loader

    out = []
    for b in build_loader(samples, batch_size=batch, size=size):
        out.append(describe(b["images"], bins, stripes))
    return torch.cat(out)


def tiny_cnn_eval(ds, epochs: int, size=(64, 32), seed: int = 0):
    """Train the small CNN for ``epochs`` and yield (epoch, R1, mAP, seconds) every 5 epochs and at the end."""
    import torch.nn as nn
    import torch.nn.functional as F

    from robustreid.data.loader import ImageDataset
    from robustreid.eval import evaluate
    from robustreid.transforms import functional as T

    torch.manual_seed(seed)

    def stack(samples):
        d = ImageDataset(samples, size=size)
        return torch.stack([d[i]["image"] for i in range(len(d))])

    xtr, xq, xg = stack(ds.train), stack(ds.query), stack(ds.gallery)
    ytr = torch.tensor([s.pid for s in ds.train])

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    net = nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 128), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten())
    head = nn.Linear(128, ds.num_train_pids)
    opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), 2e-3)
    g = torch.Generator().manual_seed(seed)

    def prep(x):
        return (T.to_float(x) - 0.45) / 0.25

    t0 = time.perf_counter()
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            x = T.random_pad_crop(T.random_hflip(xtr[idx], 0.5, g), 4, g)
            loss = F.cross_entropy(head(net(prep(x))), ytr[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if ep % 5 == 4 or ep == epochs - 1:
            net.eval()
            with torch.no_grad():
                qf, gf = net(prep(xq)), net(prep(xg))
            r = evaluate(qf, gf, [s.pid for s in ds.query], [s.pid for s in ds.gallery],
                         [s.camid for s in ds.query], [s.camid for s in ds.gallery])
            yield ep + 1, float(r.cmc[0]), float(r.mAP), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", help="dataset folder (default: generate the default synthetic set in a temp dir)")
    ap.add_argument("--dataset", default="auto")
    ap.add_argument("--occluded", action="store_true", help="synthetic: the occluded variant")
    ap.add_argument("--seed", type=int, default=0, help="synthetic seed")
    ap.add_argument("--size", default="128x64", help="images are resized to HxW before the histogram")
    ap.add_argument("--cnn-epochs", type=int, default=0, help="also train the tiny CNN for this many epochs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from robustreid.data import load_dataset
    from robustreid.data.synthetic import DEFAULTS, generate
    from robustreid.eval import evaluate
    from robustreid.transforms.functional import parse_size

    size = parse_size(args.size)
    root, name = args.root, args.dataset
    if root is None:
        root = os.path.join(tempfile.gettempdir(), f"robustreid-synth-default-s{args.seed}{'-occ' if args.occluded else ''}")
        kw = {k: v for k, v in DEFAULTS.items() if k != "seed"}
        generate(root, seed=args.seed, occluded=args.occluded, **kw)
        name = "synthetic"
    ds = load_dataset(name, root)
    print(f"dataset {ds.name} at {root}: query {len(ds.query)}, gallery {len(ds.gallery)}\n")
    print("| descriptor | bins | stripes | R1 | R5 | mAP | mINP | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for bins, stripes in ((8, 1), (8, 6), (4, 12)):
        t0 = time.perf_counter()
        qf = features(ds.query, size, bins, stripes)
        gf = features(ds.gallery, size, bins, stripes)
        r = evaluate(qf, gf, [s.pid for s in ds.query], [s.pid for s in ds.gallery],
                     [s.camid for s in ds.query], [s.camid for s in ds.gallery], metric="cosine")
        print(f"| RGB hist | {bins} | {stripes} | {r.cmc[0]:.3f} | {r.cmc[4]:.3f} | {r.mAP:.3f} | {r.mINP:.3f} | "
              f"{time.perf_counter() - t0:.1f} |")
    if args.cnn_epochs > 0:
        print("\n| tiny CNN (64x32) epochs | R1 | mAP | seconds |")
        print("|---|---|---|---|")
        for ep, r1, m, sec in tiny_cnn_eval(ds, args.cnn_epochs):
            print(f"| {ep} | {r1:.3f} | {m:.3f} | {sec:.0f} |", flush=True)


if __name__ == "__main__":
    main()

