"""Speed and peak memory of robustreid.eval.re_rank (sparse k-reciprocal re-ranking) against its physical floor,
the (q+g)² float32 matrix product that any exact k-nearest-neighbour search needs.

Same synthetic identity-clustered features as benchmarks/eval_speed.py. Peak memory: VmHWM reset through
/proc/self/clear_refs before each measurement, reported above the RSS at its start (inputs resident). Linux only.

    python benchmarks/rerank_speed.py                    # Market-1501 scale: N = 3,368 + 15,913
    python benchmarks/rerank_speed.py --scale msmt       # N = 93,820 (about 40 TFLOP: long)
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_speed import SCALES, make_data, measure, rss_mb  # noqa: E402


def floor_matmul(x: torch.Tensor, rows: int = 1024) -> None:
    buf = torch.empty(rows, x.shape[0])
    for a in range(0, x.shape[0], rows):
        b = min(x.shape[0], a + rows)
        torch.mm(x[a:b], x.t(), out=buf[: b - a])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=list(SCALES), default="market")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--noise", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--k1", type=int, default=20)
    ap.add_argument("--k2", type=int, default=6)
    ap.add_argument("--lambda-value", type=float, default=0.3)
    ap.add_argument("--skip-floor", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from robustreid.eval import evaluate, evaluate_distances, re_rank

    nq, ng, nid = SCALES[args.scale]
    qf, gf, qp, gp, qc, gc_ = make_data(nq, ng, nid, args.dim, args.noise)
    n = nq + ng
    print(f"scale {args.scale}: N = {nq} + {ng} = {n}, {args.dim}-d float32, k1={args.k1} k2={args.k2} "
          f"λ={args.lambda_value}, torch threads {args.threads}; inputs resident: {rss_mb():.0f} MB RSS\n")
    rows = []
    floor = None
    if not args.skip_floor:
        x = torch.from_numpy(np.concatenate([qf, gf]))
        x = torch.nn.functional.normalize(x, dim=1)
        _, floor, pk = measure(lambda: floor_matmul(x))
        rows.append(("(q+g)² float32 matmul (1024-row chunks)", floor, pk, ""))
        del x
    dist, dt, pk = measure(lambda: re_rank(qf, gf, args.k1, args.k2, args.lambda_value))
    before = evaluate(qf, gf, qp, gp, qc, gc_)
    after = evaluate_distances(dist, qp, gp, qc, gc_)
    rows.append(("robustreid.eval.re_rank", dt, pk,
                 f"mAP {before.mAP:.4f} → {after.mAP:.4f}, R1 {before.cmc[0]:.4f} → {after.cmc[0]:.4f}; "
                 f"output q×g float32 = {dist.numel() * 4 / 2**20:.0f} MB (included)"))
    print("| step | time (s) | × matmul | peak above inputs (MB) | notes |")
    print("|---|---|---|---|---|")
    for name, t, p, note in rows:
        print(f"| {name} | {t:.2f} | {t / floor:.2f} | {p:.0f} | {note} |" if floor else
              f"| {name} | {t:.2f} | - | {p:.0f} | {note} |")


if __name__ == "__main__":
    main()
