#!/usr/bin/env python
"""Index build time, search latency and recall@10 of the approximate kinds, through robustreid's serving path
(``robustreid.serve`` + ``GalleryIndex``), single-threaded.

Two galleries:
- ``market``: the real Market-1501 gallery (all 19,732 crops of bounding_box_test, junk included), embedded with a
  ``cpu_small`` model
  (random init, BatchNorm statistics from 256 training crops: the timing does not depend on the weights); queries are
  the 3,368 query crops. Build = decode + embed (the bulk) + index.
- ``synthetic``: N rows (default 1,000,000) of D-d clustered vectors (``--clusters`` centres + Gaussian noise, like
  embeddings of many identities), queries from the same distribution.

For each kind (flat = exact, IVF-Flat, HNSW) it reports build time, save / load time and size on disk, single-query
latency p50 / p99 (one query per call, what one /search request costs), batched search time, and recall@10 against
the exact ranking.

    python benchmarks/serving_index.py market --root real/data/market1501
    python benchmarks/serving_index.py synthetic --n 1000000 --dim 128
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_small_embedder(root: str, batch: int = 64):
    """The cpu_small model, seeded random init, BatchNorm statistics from 256 Market training crops."""
    import torch

    from robustreid.data import load_dataset
    from robustreid.engine.config import load_train_config
    from robustreid.models import build_model, calibrate_batchnorm
    from robustreid.engine.extract import resize_batch
    from robustreid.serve import open_embedder
    from robustreid.transforms.decode import read_image

    cfg = load_train_config("cpu_small", [])
    torch.manual_seed(0)  # the same model (and model identity) in every process
    model = build_model(cfg.model, 751).eval()
    train = load_dataset("market1501", root).train[::50][:256]
    size = tuple(cfg.model.input_size)
    calibrate_batchnorm(model, (resize_batch([read_image(s.path) for s in train[i:i + batch]], size)
                                for i in range(0, len(train), batch)))
    return open_embedder(model, batch_size=batch)


def latency(index, queries: np.ndarray, k: int, n: int = 300):
    """Single-query wall p50 / p99 and mean CPU time (ms), batched wall time (s), the batched result ids."""
    times = []
    c = time.process_time()
    for q in queries[:n]:
        t = time.perf_counter()
        index.search(q[None], k)
        times.append(time.perf_counter() - t)
    cpu = 1000 * (time.process_time() - c) / len(times)
    t = time.perf_counter()
    ids = index.search(queries, k)[0]
    batch = time.perf_counter() - t
    return 1000 * np.percentile(times, 50), 1000 * np.percentile(times, 99), cpu, batch, ids


def run_kinds(feats, queries, args, label):
    from robustreid.eval.index import GalleryIndex

    rows, exact = [], None
    kinds = [("flat", {}, [None])]
    kinds.append(("ivf", {"nlist": args.nlist, "train_size": min(len(feats), args.ivf_train)},
                  [("nprobe", int(v)) for v in args.nprobe.split(",")]))
    kinds.append(("hnsw", {"hnsw_m": args.hnsw_m, "ef_construction": args.ef_construction},
                  [("ef_search", int(v)) for v in args.ef_search.split(",")]))
    tmp = Path(tempfile.mkdtemp(prefix="rr-index-"))
    for kind, params, settings in kinds:
        if kind not in args.kinds.split(","):
            continue
        t = time.perf_counter()
        idx = GalleryIndex.build(feats, np.arange(len(feats)) % 1000, np.zeros(len(feats), int), kind=kind, **params)
        build = time.perf_counter() - t
        t = time.perf_counter()
        idx.save(tmp / f"{kind}.index")
        save = time.perf_counter() - t
        size = sum(os.path.getsize(p) for p in tmp.glob(f"{kind}.index*")) / 2**20
        t = time.perf_counter()
        idx = GalleryIndex.load(tmp / f"{kind}.index")
        load = time.perf_counter() - t
        for s in settings:
            if s is not None:
                idx.set_search_params(**{s[0]: s[1]})
            p50, p99, cpu, batch, ids = latency(idx, queries, args.k)
            if kind == "flat":
                exact = ids
            recall = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact)]))
            name = kind if kind == "flat" else (f"ivf (nlist {idx.nlist})" if kind == "ivf"
                                                else f"hnsw (M {args.hnsw_m}, efC {args.ef_construction})")
            rows.append((name, "-" if s is None else f"{s[0]} {s[1]}", build, save, load, size, p50, p99, cpu,
                         batch, recall))
        for p in tmp.glob(f"{kind}.index*"):
            p.unlink()
        del idx
    print(f"\n{label}; k = {args.k}; single-query latency over {min(300, len(queries))} queries, batch = all "
          f"{len(queries)} queries in one call; 1 thread\n")
    print("| index | search setting | build (s) | save (s) | load (s) | on disk (MB) | p50 ms/query | p99 ms/query "
          f"| CPU ms/query | batch of {len(queries)} (s) | recall@{args.k} vs exact |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.0f} | {r[6]:.2f} | {r[7]:.2f} | "
              f"{r[8]:.2f} | {r[9]:.2f} | {r[10]:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["market", "synthetic"])
    ap.add_argument("--root", default="real/data/market1501")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=20_000)
    ap.add_argument("--noise", type=float, default=0.6)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--kinds", default="flat,ivf,hnsw")
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default 4·sqrt(N))")
    ap.add_argument("--ivf-train", type=int, default=65536)
    ap.add_argument("--nprobe", default="8,32")
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ef-search", default="32,128")
    ap.add_argument("--save-features", default=None, help="market: keep the embeddings here (.npz) and reuse them")
    args = ap.parse_args()
    import faiss
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    if args.what == "market":
        from robustreid.data import load_dataset
        from robustreid.serve import images_from_folder

        ds = load_dataset("market1501", args.root)
        cache = Path(args.save_features) if args.save_features else None
        if cache is not None and cache.is_file():
            z = np.load(cache)
            feats, queries = z["gallery"], z["query"]
            print(f"reusing the embeddings in {cache}")
        else:
            emb = cpu_small_embedder(args.root)
            gallery = images_from_folder(os.path.join(ds.root, "bounding_box_test"))  # all 19,732, junk included
            t, c = time.perf_counter(), time.process_time()
            feats = emb.embed_paths(gallery.paths, desc="gallery")
            te, ce = time.perf_counter() - t, time.process_time() - c
            t = time.perf_counter()
            queries = emb.embed_paths([s.path for s in ds.query], desc="query")
            tq = time.perf_counter() - t
            print(f"embedding (decode + resize + cpu_small forward, batch 64, 1 thread): gallery {len(feats)} crops "
                  f"in {te:.1f} s wall ({len(feats) / te:.0f} crops/s), {ce:.1f} s CPU ({len(feats) / ce:.0f} "
                  f"crops per CPU-second); queries {len(queries)} in {tq:.1f} s")
            if cache is not None:
                np.savez(cache, gallery=feats, query=queries)
        run_kinds(feats, queries, args, f"Market-1501 gallery, {len(feats)} × {feats.shape[1]}-d (cpu_small)")
    else:
        rng = np.random.default_rng(0)
        centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32)
        g = np.empty((args.n, args.dim), dtype=np.float32)
        for a in range(0, args.n, 100_000):
            b = min(args.n, a + 100_000)
            g[a:b] = centres[rng.integers(0, args.clusters, b - a)]
            g[a:b] += args.noise * rng.standard_normal((b - a, args.dim), dtype=np.float32)
        q = centres[rng.integers(0, args.clusters, args.queries)]
        q = q + args.noise * rng.standard_normal(q.shape, dtype=np.float32)
        run_kinds(g, q, args, f"synthetic {args.n:,} × {args.dim}-d ({args.clusters:,} clusters)")


if __name__ == "__main__":
    main()
