#!/usr/bin/env python
"""A bounded load test of ``robustreid serve`` over loopback: C concurrent clients send N ``POST /search`` requests
(one real Market-1501 query crop each, k = 10) to a server in its own process, searching the full Market-1501
gallery (19,732 crops). Reports requests/s, latency p50 / p90 / p99 / max, errors, the server's CPU time and how
many images its batching queue put into each forward pass.

The model is ``cpu_small`` built as in ``serving_index.py`` (seeded random init, BatchNorm statistics from Market
crops), so the gallery embeddings cached by ``serving_index.py market --save-features F`` are reused (checked on a
few crops) instead of embedding 19,732 crops again.

    python benchmarks/serving_index.py market --save-features /tmp/market_feats.npz   # once
    python benchmarks/serving_load.py --features /tmp/market_feats.npz --clients 8 --requests 2000
    python benchmarks/serving_load.py --features /tmp/market_feats.npz --onnx          # the exported model
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def prepare(args, tmp: Path):
    """checkpoint + index (+ ONNX) of the cpu_small model over the Market gallery, in ``tmp``."""
    from serving_index import cpu_small_embedder

    from robustreid.engine.checkpoint import save_weights
    from robustreid.eval.index import GalleryIndex
    from robustreid.serve import images_from_folder

    emb = cpu_small_embedder(args.root)
    gallery = images_from_folder(os.path.join(args.root, "bounding_box_test"))
    z = np.load(args.features)
    feats = z["gallery"]
    if len(feats) != len(gallery.paths):
        raise SystemExit(f"{args.features}: {len(feats)} rows, the gallery has {len(gallery.paths)} crops")
    check = emb.embed_paths(gallery.paths[:64], progress=False)
    cos = (check * feats[:64]).sum(1) / np.linalg.norm(feats[:64], axis=1)
    if cos.min() < 0.9999:
        raise SystemExit(f"{args.features} was not made by this model (cosine {cos.min():.4f}); "
                         "re-run serving_index.py")
    ckpt = save_weights(tmp / "model.safetensors", emb.model, config={"model": asdict(emb.model.config)})
    index = GalleryIndex.build(feats, gallery.pids, gallery.camids, gallery.paths, kind=args.kind)
    index.info = {"model_identity": emb.identity, "model_source": str(ckpt), "backend": "pytorch", "flip": "False",
                  "input_size": "128x64", "sources": f"folder:{args.root}/bounding_box_test"}
    index.save(tmp / "market.index")
    onnx = None
    if args.onnx:
        from robustreid.export import export_onnx

        onnx = export_onnx(ckpt, tmp / "model.onnx").fp32.path
    return tmp / "market.index", onnx


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default="real/data/market1501")
    ap.add_argument("--features", required=True, help=".npz written by serving_index.py market --save-features")
    ap.add_argument("--kind", default="flat", choices=["flat", "ivf", "hnsw"])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--thumbnails", action="store_true", help="ask for thumbnails in every response")
    ap.add_argument("--onnx", action="store_true", help="serve the exported ONNX model (onnxruntime)")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    import httpx
    import torch

    from robustreid.data import load_dataset

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="rr-load-"))
    index, onnx = prepare(args, tmp)
    cmd = [sys.executable, "-m", "robustreid", "serve", "--index", str(index), "--port", str(args.port),
           "--threads", "1", "--log-level", "warning", "--max-batch", str(args.max_batch),
           "--max-wait-ms", str(args.max_wait_ms)] + (["--onnx", str(onnx)] if onnx else [])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    server = subprocess.Popen(cmd, env=env)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit("the server did not start")
        queries = [Path(s.path).read_bytes() for s in load_dataset("market1501", args.root).query[::17][:200]]
        search = f"{url}/search?k={args.k}&thumbnails={'true' if args.thumbnails else 'false'}"
        lat, errors, lock = [], [], threading.Lock()
        counter = iter(range(args.requests))

        def client():
            with httpx.Client(timeout=60) as c:
                for i in counter:
                    t = time.perf_counter()
                    try:
                        r = c.post(search, files=[("images", (f"q{i}.jpg", queries[i % len(queries)], "image/jpeg"))])
                        ok = r.status_code == 200 and len(r.json()["results"][0]["matches"]) == args.k
                    except httpx.HTTPError as e:
                        ok, r = False, e
                    dt = time.perf_counter() - t
                    with lock:
                        lat.append(dt)
                        if not ok:
                            errors.append(str(getattr(r, "status_code", r)))

        httpx.post(search, files=[("images", ("w.jpg", queries[0], "image/jpeg"))])  # warm-up
        cpu0, before = cpu_seconds(server.pid), httpx.get(url + "/health").json()["queue"]
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(server.pid) - cpu0
        after = httpx.get(url + "/health").json()["queue"]
    finally:
        server.terminate()
        server.wait(30)
    ms = 1000 * np.array(lat)
    batches, items = after["batches"] - before["batches"], after["items"] - before["items"]
    print(f"\n{'ONNX (onnxruntime)' if onnx else 'PyTorch'} model, {args.kind} index of 19,732 crops, "
          f"{args.clients} clients, {args.requests} requests, k = {args.k}, thumbnails "
          f"{'on' if args.thumbnails else 'off'}, server 1 thread, max batch {args.max_batch}, "
          f"wait {args.max_wait_ms} ms\n")
    print("| requests | errors | wall (s) | requests/s | p50 ms | p90 ms | p99 ms | max ms | server CPU s / request "
          "| forward passes | mean images per pass |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {len(lat)} | {len(errors)} | {wall:.1f} | {len(lat) / wall:.1f} | {np.percentile(ms, 50):.1f} | "
          f"{np.percentile(ms, 90):.1f} | {np.percentile(ms, 99):.1f} | {ms.max():.1f} | "
          f"{cpu / len(lat) * 1000:.1f} ms "
          f"| {batches} | {items / max(batches, 1):.2f} |")
    if errors:
        print("errors:", sorted(set(errors))[:10])


if __name__ == "__main__":
    main()
