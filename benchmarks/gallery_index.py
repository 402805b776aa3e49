"""GalleryIndex at scale: build time, search time and recall@k of the approximate kinds (IVF-Flat, HNSW) against the
exact flat index, on a synthetic gallery (default 1,000,000 vectors, 128-d float32: 512 MB per copy).

The gallery is clustered (``--clusters`` centres plus Gaussian noise) like embeddings of many identities; queries are
drawn from the same distribution.

    python benchmarks/gallery_index.py                          # 1M × 128-d
    python benchmarks/gallery_index.py --n 200000 --dim 256 --kinds flat,ivf
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def make(n, nq, dim, clusters, noise, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim), dtype=np.float32)
    g = np.empty((n, dim), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        g[a:b] = centers[rng.integers(0, clusters, b - a)]
        g[a:b] += noise * rng.standard_normal((b - a, dim), dtype=np.float32)
    q = centers[rng.integers(0, clusters, nq)] + noise * rng.standard_normal((nq, dim), dtype=np.float32)
    return g, q


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--clusters", type=int, default=20_000)
    ap.add_argument("--noise", type=float, default=0.6)
    ap.add_argument("--kinds", default="flat,ivf,hnsw")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", default="8,32", help="comma list of nprobe values for ivf")
    ap.add_argument("--ivf-train", type=int, default=65536, help="IVF training sample size")
    ap.add_argument("--hnsw-m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=40)
    ap.add_argument("--ef-search", default="32,128", help="comma list of efSearch values for hnsw")
    ap.add_argument("--threads", type=int, default=0, help="FAISS OpenMP threads (0: FAISS default)")
    args = ap.parse_args()
    import faiss

    from robustreid.eval import GalleryIndex

    if args.threads:
        faiss.omp_set_num_threads(args.threads)
    g, q = make(args.n, args.queries, args.dim, args.clusters, args.noise)
    print(f"gallery {args.n} × {args.dim}-d float32 ({g.nbytes / 2**20:.0f} MB), {args.queries} queries, "
          f"k = {args.k}, {args.clusters} clusters, FAISS threads {faiss.omp_get_max_threads()}\n")
    kinds = args.kinds.split(",")
    rows = []
    exact = None
    t = time.perf_counter()
    flat = GalleryIndex.build(g, np.arange(args.n) % 1000, np.zeros(args.n, int), kind="flat")
    bt = time.perf_counter() - t
    t = time.perf_counter()
    exact = flat.search(q, args.k)[0]
    st = time.perf_counter() - t
    if "flat" in kinds:
        rows.append(("flat (exact)", "-", bt, st, 1.0))
    del flat
    gc.collect()

    def recall(ids):
        return float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids, exact)]))

    if "ivf" in kinds:
        t = time.perf_counter()
        ivf = GalleryIndex.build(g, kind="ivf", nlist=args.nlist, train_size=min(args.n, args.ivf_train))
        bt = time.perf_counter() - t
        for npb in [int(v) for v in args.nprobe.split(",")]:
            ivf.set_search_params(nprobe=npb)
            t = time.perf_counter()
            ids = ivf.search(q, args.k)[0]
            rows.append((f"ivf (nlist {args.nlist})", f"nprobe {npb}", bt, time.perf_counter() - t, recall(ids)))
        del ivf
        gc.collect()
    if "hnsw" in kinds:
        t = time.perf_counter()
        hn = GalleryIndex.build(g, kind="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
        bt = time.perf_counter() - t
        for ef in [int(v) for v in args.ef_search.split(",")]:
            hn.set_search_params(ef_search=ef)
            t = time.perf_counter()
            ids = hn.search(q, args.k)[0]
            rows.append((f"hnsw (M {args.hnsw_m}, efC {args.ef_construction})", f"efSearch {ef}", bt,
                         time.perf_counter() - t, recall(ids)))
    print(f"| index | search setting | build (s) | search {args.queries} queries (s) | ms / query | "
          f"recall@{args.k} vs exact |")
    print("|---|---|---|---|---|---|")
    for name, setting, b, s, r in rows:
        print(f"| {name} | {setting} | {b:.1f} | {s:.2f} | {1000 * s / args.queries:.2f} | {r:.3f} |")


if __name__ == "__main__":
    main()
