"""Speed and peak memory of robustreid.eval.evaluate against the physical floor and two classic evaluators.

All in one process, on the same synthetic features (clustered by identity, so that the rankings look like a
trained model's; ``--noise`` sets how hard):

* ``matmul``: the bare q×g float32 matrix product (``--chunked``: in 1024-row chunks into one reused buffer,
  the same FLOPs without holding q×g);
* ``ours``: ``robustreid.eval.evaluate`` (cosine, distances included);
* ``full-matrix``: the classic vectorised evaluation (q×g distance, full argsort, q×g match matrix, per-query loop),
  as in BoT / torchreid;
* ``per-query``: the older toolboxes' per-query evaluation (score by matrix-vector product, argsort, set operations
  with np.isin (formerly np.in1d) / np.intersect1d per query); timed on ``--loop-queries`` queries and extrapolated when fewer than q.

Peak memory: VmHWM (peak RSS) is reset through /proc/self/clear_refs before each measurement and reported above the
RSS at its start (the inputs are already resident). Linux only.

    python benchmarks/eval_speed.py                       # Market-1501 scale
    python benchmarks/eval_speed.py --scale msmt --only matmul,ours --chunked

Real data instead of synthetic features: ``--root`` takes a dataset's query and gallery (their real pids and
cameras, junk and distractors included) and describes every crop by striped colour histograms
(``benchmarks/color_histogram.py``: 4 stripes × 8³ bins = 2048-d, Hellinger-normalised), a weak descriptor whose
positives rank far down, so that the ranking has many candidates to order; ``--features`` takes a feature file
written by ``robustreid extract`` (a real model's embeddings). ``--cache`` keeps the histograms of ``--root``
between runs (decoding 19,281 Market crops takes a while):

    python benchmarks/eval_speed.py --root real/data/market1501 --only matmul,ours --threads 1 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

SCALES = {"market": (3368, 15913, 750), "msmt": (11659, 82161, 3060), "small": (500, 3000, 200)}


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def measure(fn, repeat: int = 1):
    """(result, best time over ``repeat`` runs, largest peak RSS above the start)."""
    best, peak = float("inf"), 0.0
    for _ in range(max(1, repeat)):
        gc.collect()
        base = rss_mb()
        reset_peak()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        peak = max(peak, rss_mb("VmHWM") - base)
    return out, best, peak


def make_data(nq, ng, nid, dim, noise, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((nid, dim), dtype=np.float32)
    qp = rng.integers(0, nid, nq)
    gp = rng.integers(0, nid, ng)
    qc = rng.integers(0, 6, nq)
    gc_ = rng.integers(0, 6, ng)
    qf = centers[qp]
    qf += noise * rng.standard_normal((nq, dim), dtype=np.float32)
    gf = centers[gp]
    gf += noise * rng.standard_normal((ng, dim), dtype=np.float32)
    return qf, gf, qp, gp, qc, gc_


def real_data(root, dataset, cache=None):
    """(qf, gf, q_pids, g_pids, q_camids, g_camids) of a dataset's query and gallery, described by 2048-d striped
    colour histograms (4 stripes × 8³ bins) at 128×64."""
    import os
    import sys

    if cache and os.path.exists(cache):
        with np.load(cache) as z:
            return tuple(z[k] for k in ("qf", "gf", "qp", "gp", "qc", "gc"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from color_histogram import features

    from robustreid.data import load_dataset

    ds = load_dataset(dataset, root)
    out = [features(ds.query, (128, 64), 8, 4).numpy(), features(ds.gallery, (128, 64), 8, 4).numpy()]
    for attr in ("pid", "camid"):
        out += [np.array([getattr(s, attr) for s in ds.query]), np.array([getattr(s, attr) for s in ds.gallery])]
    out = tuple(out)
    if cache:
        np.savez(cache, **dict(zip(("qf", "gf", "qp", "gp", "qc", "gc"), out)))
    return out


def feature_file(path):
    from robustreid.eval.features import load_features

    fs = load_features(path)
    q, g = fs.select("query"), fs.select("gallery")
    return (np.ascontiguousarray(q.features, np.float32), np.ascontiguousarray(g.features, np.float32),
            q.pids, g.pids, q.camids, g.camids)


def matmul(qf, gf, chunked):
    q, g = torch.from_numpy(qf), torch.from_numpy(gf)
    if not chunked:
        return torch.mm(q, g.t()).shape
    buf = torch.empty(1024, g.shape[0])
    for a in range(0, q.shape[0], 1024):
        b = min(q.shape[0], a + 1024)
        torch.mm(q[a:b], g.t(), out=buf[: b - a])
    return None


def full_matrix_reference(qf, gf, qp, gp, qc, gc_, max_rank=50):
    """BoT / torchreid style: full distance, full argsort, q×g match matrix, per-query loop."""
    q = torch.nn.functional.normalize(torch.from_numpy(qf), dim=1)
    g = torch.nn.functional.normalize(torch.from_numpy(gf), dim=1)
    distmat = (1 - q @ g.t()).numpy()
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (gp[indices] == qp[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(len(qp)):
        order = indices[i]
        remove = ((gp[order] == qp[i]) & (gc_[order] == qc[i])) | (gp[order] == -1)
        raw = matches[i][~remove]
        if not raw.any():
            continue
        cmc = raw.cumsum()
        pos = np.where(raw == 1)[0]
        all_inp.append(cmc[pos.max()] / (pos.max() + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        tmp = raw.cumsum() / (np.arange(len(raw)) + 1.0)
        all_ap.append((tmp * raw).sum() / raw.sum())
    return float(np.mean(all_ap)), float(np.mean(all_inp)), np.asarray(all_cmc).mean(0)


def per_query_loop(qf, gf, qp, gp, qc, gc_, n_queries):
    """Older toolboxes (person-reid-baseline style): per query a matrix-vector score, an argsort, set operations
    (np.isin, intersect1d), a per-query CMC vector added up. AP here is the non-interpolated one (to check the
    result against ours); the trapezoid variant those toolboxes use costs the same."""
    qn = torch.nn.functional.normalize(torch.from_numpy(qf), dim=1)
    gn = torch.nn.functional.normalize(torch.from_numpy(gf), dim=1)
    aps = []
    cmc_sum = torch.zeros(len(gp), dtype=torch.int32)
    for i in range(n_queries):
        score = torch.mm(gn, qn[i].view(-1, 1)).squeeze(1).numpy()
        index = np.argsort(-score, kind="stable")
        query_index = np.argwhere(gp == qp[i])
        camera_index = np.argwhere(gc_ == qc[i])
        good_index = np.setdiff1d(query_index, camera_index, assume_unique=True)
        junk_index = np.append(np.argwhere(gp == -1), np.intersect1d(query_index, camera_index))
        index = index[np.isin(index, junk_index, invert=True)]
        if good_index.size == 0:
            continue
        rows_good = np.argwhere(np.isin(index, good_index)).flatten()
        cmc = torch.zeros(len(gp), dtype=torch.int32)
        cmc[rows_good[0]:] = 1
        cmc_sum += cmc
        aps.append(np.mean([(k + 1) / (r + 1) for k, r in enumerate(rows_good)]))
    return float(np.mean(aps)) if aps else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=list(SCALES), default="market")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--noise", type=float, default=3.0, help="feature noise around identity centres (harder: 4)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for every evaluator (1: the shared 2-core machine is oversubscribed)")
    ap.add_argument("--only", default="matmul,ours,full,loop", help="comma list of matmul,ours,full,loop")
    ap.add_argument("--chunked", action="store_true", help="time the floor matmul in 1024-row chunks")
    ap.add_argument("--loop-queries", type=int, default=200, help="queries timed for the per-query loop")
    ap.add_argument("--memory-budget", type=int, default=None, help="ours: working-memory budget in bytes")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3, help="runs of matmul and ours (best time reported)")
    ap.add_argument("--repeat-slow", type=int, default=1, help="runs of the full-matrix reference and the loop")
    ap.add_argument("--root", default=None, help="real data: this dataset's query and gallery (colour histograms)")
    ap.add_argument("--dataset", default="market1501", help="dataset name for --root")
    ap.add_argument("--cache", default=None, help="--root: .npz file keeping the histograms between runs")
    ap.add_argument("--features", default=None, help="real data: a feature file from `robustreid extract`")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:  # numpy's BLAS (the per-query loop's matrix-vector products) gets the same number of threads
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        pass
    from robustreid.eval import evaluate

    only = set(args.only.split(","))
    if args.features or args.root:
        qf, gf, qp, gp, qc, gc_ = feature_file(args.features) if args.features else \
            real_data(args.root, args.dataset, args.cache)
        source = args.features or f"{args.dataset} at {args.root}, colour histograms"
        nq, ng = len(qf), len(gf)
        print(f"real data ({source}): {nq} query × {ng} gallery, {qf.shape[1]}-d float32, "
              f"torch and BLAS threads {args.threads}, device {args.device}; inputs resident: {rss_mb():.0f} MB RSS\n")
    else:
        nq, ng, nid = SCALES[args.scale]
        qf, gf, qp, gp, qc, gc_ = make_data(nq, ng, nid, args.dim, args.noise)
        print(f"scale {args.scale}: {nq} query × {ng} gallery, {args.dim}-d float32, noise {args.noise}, "
              f"torch and BLAS threads {args.threads}, device {args.device}; inputs resident: {rss_mb():.0f} MB RSS\n")
    rows = []
    floor = None
    base_rss = rss_mb()
    if "matmul" in only:
        _, dt, pk = measure(lambda: matmul(qf, gf, args.chunked), args.repeat)
        floor = dt
        rows.append(("matmul q×g float32" + (" (chunked)" if args.chunked else ""), dt, pk, ""))
    res = None
    if "ours" in only:
        if args.device != "cpu":  # warm-up (CUDA context, kernels)
            evaluate(qf[:64], gf, qp[:64], gp, qc[:64], gc_, device=args.device)
        res, dt, pk = measure(lambda: evaluate(qf, gf, qp, gp, qc, gc_, device=args.device,
                                               memory_budget=args.memory_budget), args.repeat)
        ours = dt
        rows.append(("robustreid.eval.evaluate", dt, pk, f"mAP {res.mAP:.4f} mINP {res.mINP:.4f} R1 {res.cmc[0]:.4f}"))
    if "full" in only:
        (mAP, mINP, cmc), dt, pk = measure(lambda: full_matrix_reference(qf, gf, qp, gp, qc, gc_), args.repeat_slow)
        same = "" if res is None else f"; |ΔmAP| {abs(mAP - res.mAP):.1e} |ΔmINP| {abs(mINP - res.mINP):.1e}"
        rows.append(("full-matrix numpy reference", dt, pk, f"mAP {mAP:.4f}{same}"))
    if "loop" in only:
        n = min(nq, args.loop_queries)
        m, dt, pk = measure(lambda: per_query_loop(qf, gf, qp, gp, qc, gc_, n), args.repeat_slow)
        note = f"mAP over first {n} queries {m:.4f}"
        if res is not None:
            note += f" (ours on them: {np.nanmean(res.per_query_ap[:n]):.4f})"
        if n < nq:
            dt = dt * nq / n
            note += f"; time extrapolated from {n} queries"
        rows.append(("per-query loop (older toolboxes)", dt, pk, note))
    print("| evaluator | time (s) | × matmul | ours is × faster | peak above inputs (MB) | peak RSS (MB) | notes |")
    print("|---|---|---|---|---|---|---|")
    ours_t = next((r[1] for r in rows if r[0].startswith("robustreid")), None)
    for name, dt, pk, note in rows:
        xm = f"{dt / floor:.2f}" if floor else "-"
        xf = f"{dt / ours_t:.1f}" if ours_t and not name.startswith("robustreid") else "-"
        print(f"| {name} | {dt:.2f} | {xm} | {xf} | {pk:.0f} | {pk + base_rss:.0f} | {note} |")


if __name__ == "__main__":
    main()
