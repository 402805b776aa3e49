"""CMC, mAP and mINP: exact, chunked, memory-bounded; optional TPR at fixed FPR.

Conventions (docs/metrics.md has the full text):

* per query, gallery items with the same pid *and* the same camid, and gallery items with pid -1, are removed;
* queries with no positive left are skipped (counted in ``num_skipped_queries``);
* CMC(k) = fraction of valid queries with a positive in the top k; AP = mean over the positives of the precision at
  the positive's rank (not interpolated); INP = #positives / rank of the last positive (1-based);
* ties in distance are broken by gallery index (the earlier gallery item ranks first), as a stable sort would;
  ``num_tied_queries`` counts the queries where that decided something (a positive at exactly the distance of a
  negative);
* features that carry no information are refused (:func:`check_informative`): dimension 0, all gallery rows equal,
  all-zero rows under cosine.

How it works: the q×g distance is computed one block of queries at a time (size from ``memory_budget``). In a block,
the only gallery items that can rank before some positive of query i are those with a distance at most the
distance of its farthest positive. These *candidates* are found with one comparison pass; only they are ordered
(by row, distance, gallery index) and the rank of each positive is its position among its row's candidates. No
q×g integer matrix, no full sort.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.parallel import in_worker, parallel_map
from .distance import BlockDistance, as_tensor, check_metric, prepare_features

DEFAULT_FPRS = (1e-4, 1e-3, 1e-2)
DEFAULT_MEMORY_BUDGET = 512 * 2**20  # bytes of working memory for the distance blocks and candidates


#: rankings decided by the gallery index (a true match tied with a wrong one) worth a warning: this share of queries
TIE_WARN_FRACTION = 0.01


def many_ties(num_tied: int, num_valid: int) -> bool:
    """Whether ``num_tied`` of ``num_valid`` queries is enough tie-decided rankings to warn about."""
    return bool(num_tied) and num_tied >= TIE_WARN_FRACTION * num_valid


@dataclass
class EvalResult:
    """Result of :func:`evaluate`. Rates are fractions in [0, 1]."""

    mAP: float
    mINP: float
    cmc: np.ndarray  # float64, length max_rank; cmc[0] is Rank-1
    num_valid_queries: int
    num_skipped_queries: int
    tpr_at_fpr: Optional[Dict[float, float]] = None
    #: per-query AP / INP (NaN for skipped queries) and 0-based rank of the first positive (-1 when skipped)
    per_query_ap: Optional[np.ndarray] = field(default=None, repr=False)
    per_query_inp: Optional[np.ndarray] = field(default=None, repr=False)
    first_positive_rank: Optional[np.ndarray] = field(default=None, repr=False)
    #: valid queries where a positive and a negative had exactly the same distance (so the gallery index ordered them)
    num_tied_queries: int = 0

    def rank(self, k: int) -> float:
        """CMC at rank k (1-based); ranks past the computed length repeat the last value."""
        if k < 1:
            raise ValueError("rank k is 1-based")
        if len(self.cmc) == 0:
            return float("nan")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def as_dict(self) -> Dict[str, float]:
        d = {"R1": self.rank(1), "R5": self.rank(5), "R10": self.rank(10), "mAP": float(self.mAP),
             "mINP": float(self.mINP), "num_valid_queries": int(self.num_valid_queries),
             "num_skipped_queries": int(self.num_skipped_queries), "num_tied_queries": int(self.num_tied_queries)}
        if self.tpr_at_fpr:
            for f, v in self.tpr_at_fpr.items():
                d[f"TPR@FPR={f:g}"] = float(v)
        return d

    def __str__(self) -> str:
        cols = [("R1", self.rank(1)), ("R5", self.rank(5)), ("R10", self.rank(10)), ("mAP", self.mAP),
                ("mINP", self.mINP)]
        if self.tpr_at_fpr:
            cols += [(f"TPR@{f:g}", v) for f, v in self.tpr_at_fpr.items()]
        head = " | ".join(f"{n:>8}" for n, _ in cols) + " |    valid | skipped"
        vals = " | ".join(f"{100 * v:7.2f}%" for _, v in cols) + f" | {self.num_valid_queries:8d} | " \
            f"{self.num_skipped_queries:7d}"
        return head + "\n" + vals


# --------------------------------------------------------------------------------------------------------------
# input handling


def _labels(x, name: str, n: int, device) -> torch.Tensor:
    t = as_tensor(x, name, ndim=1)
    if t.is_floating_point():
        if not bool((t == t.round()).all()):
            raise ValueError(f"{name}: expected integer labels")
    t = t.to(device=device, dtype=torch.int64)
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} entries but there are {n} feature rows")
    return t


def _same_pid_pairs(q_pids: torch.Tensor, g_pids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """All (query, gallery) index pairs with the same pid and gallery pid != -1, ordered by query then gallery."""
    order = torch.sort(g_pids, stable=True).indices
    gs = g_pids[order]
    lo = torch.searchsorted(gs, q_pids, right=False)
    hi = torch.searchsorted(gs, q_pids, right=True)
    cnt = hi - lo
    cnt = torch.where(q_pids == -1, torch.zeros_like(cnt), cnt)
    total = int(cnt.sum())
    dev = q_pids.device
    if total == 0:
        e = torch.zeros(0, dtype=torch.int64, device=dev)
        return e, e
    qidx = torch.repeat_interleave(torch.arange(q_pids.numel(), device=dev), cnt)
    starts = torch.cumsum(cnt, 0) - cnt
    offs = torch.arange(total, device=dev) - starts[qidx]
    gidx = order[lo[qidx] + offs]
    # ordered by query, then by gallery index (order is a stable sort, so within a pid ascending gallery index)
    return qidx, gidx


class _Labels:
    def __init__(self, q_pids, g_pids, q_camids, g_camids, nq: int, ng: int, device):
        self.qp = _labels(q_pids, "query_pids", nq, device)
        self.gp = _labels(g_pids, "gallery_pids", ng, device)
        self.qc = _labels(q_camids, "query_camids", nq, device)
        self.gc = _labels(g_camids, "gallery_camids", ng, device)
        sq, sg = _same_pid_pairs(self.qp, self.gp)
        self.same_q, self.same_g = sq, sg
        pos = self.qc[sq] != self.gc[sg]
        self.pos_q, self.pos_g = sq[pos], sg[pos]
        self.junk_q, self.junk_g = sq[~pos], sg[~pos]
        self.gjunk_cols = torch.nonzero(self.gp == -1).squeeze(1)

    def pair_slice(self, pq: torch.Tensor, a: int, b: int) -> Tuple[int, int]:
        lo = int(torch.searchsorted(pq, torch.tensor(a, device=pq.device)))
        hi = int(torch.searchsorted(pq, torch.tensor(b, device=pq.device)))
        return lo, hi


# --------------------------------------------------------------------------------------------------------------
# the core


def _rows_per_block(ng: int, budget: int, itemsize: int) -> int:
    # per cell: the distance block (itemsize) + the candidate mask (1) + worst-case candidate index (8); the
    # candidates themselves are processed in slices of at most ``budget // 4 // 96`` entries.
    per_cell = itemsize + 1 + 8
    return max(1, int(budget * 0.7) // (per_cell * max(ng, 1)))


class _Accumulator:
    def __init__(self, nq: int, device):
        self.ap = torch.full((nq,), float("nan"), dtype=torch.float64, device=device)
        self.inp = torch.full((nq,), float("nan"), dtype=torch.float64, device=device)
        self.first = torch.full((nq,), -1, dtype=torch.int64, device=device)
        self.tied = torch.zeros(nq, dtype=torch.bool, device=device)


def _row_bounds(flat: torch.Tensor, c: int, g: int, slice_cap: int):
    """Split the candidate list (flat indices, row-major) at row boundaries into slices of <= ~slice_cap."""
    m = flat.numel()
    if m <= slice_cap:
        return [(0, m)]
    row_start = torch.searchsorted(flat, torch.arange(c + 1, device=flat.device, dtype=torch.int64) * g).cpu()
    bounds, s = [], 0
    while s < m:
        r = int(torch.searchsorted(row_start, torch.tensor(s + slice_cap), right=True)) - 1
        e = int(row_start[r])
        if e <= s:  # a single row larger than the cap: take the whole row
            r0 = int(torch.searchsorted(row_start, torch.tensor(s), right=True)) - 1
            e = int(row_start[r0 + 1])
        bounds.append((s, e))
        s = e
    return bounds


def _col_bits(g: int) -> int:
    return max(1, int(g - 1).bit_length())


def _max_rows_fast(g: int) -> int:
    """Rows per block allowed by the 63-bit sort key (row | float bits | column)."""
    return 2 ** max(0, 30 - _col_bits(g))


def _float_key(vals: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, cb: int) -> torch.Tensor:
    """Exact int64 key ordered like (row, value, column) for float32 values (-0.0 == +0.0, as in comparisons)."""
    v = vals + 0.0  # -0.0 -> +0.0
    b = v.view(torch.int32)
    u = torch.bitwise_xor(b, torch.bitwise_and(b >> 31, 0x7FFFFFFF))  # signed int order == float order
    return (rows << (32 + cb)) + (u.to(torch.int64) << cb) + cols


def _candidate_keys_cpu(Dflat: np.ndarray, f: np.ndarray, r0: int, r1: int, g: int, cb: int) -> np.ndarray:
    """Sorted :func:`_float_key` s of the candidates ``f`` (flat indices into the c×g block, ascending, rows r0..r1)
    with numpy: ``row·2^(32+cb) + u·2^cb + col`` is written ``row·(2^(32+cb) - g) + f + u·2^cb`` (col = f - row·g),
    so no division and a few in-place passes (3-4x faster than the torch expression on the CPU)."""
    vals = np.take(Dflat, f)
    vals += 0.0  # -0.0 -> +0.0
    u = vals.view(np.int32)
    u ^= (u >> 31) & 0x7FFFFFFF  # signed int order == float order
    key = u.astype(np.int64)
    key <<= cb
    key += f
    counts = np.diff(np.searchsorted(f, np.arange(r0, r1 + 2, dtype=np.int64) * g))
    key += np.repeat(np.arange(r0, r1 + 1, dtype=np.int64) * ((1 << (32 + cb)) - g), counts)
    key.sort()  # numpy's vectorised quicksort; the keys are unique, so stability does not matter
    return key


def _sort_keys(key: torch.Tensor) -> torch.Tensor:
    if key.device.type == "cpu":
        # numpy's vectorised (AVX-512 / AVX2) quicksort is several times faster than torch's CPU sort; the keys
        # are unique, so stability does not matter
        return torch.from_numpy(np.sort(key.numpy()))
    return torch.sort(key).values


def _accumulate(acc: _Accumulator, a: int, prow: torch.Tensor, rank: torch.Tensor, c: int) -> None:
    """Per-query AP / INP / first rank from the (row, rank) of every positive (any order)."""
    if prow.numel() == 0:
        return
    dev = rank.device
    order = torch.sort(prow * (int(rank.max()) + 1) + rank).indices
    prow, rank = prow[order], rank[order]
    npos = torch.bincount(prow, minlength=c)
    pstart = torch.cumsum(npos, 0) - npos
    i = torch.arange(prow.numel(), device=dev) - pstart[prow]
    prec = (i + 1).to(torch.float64) / (rank + 1).to(torch.float64)
    apsum = torch.zeros(c, dtype=torch.float64, device=dev).index_add_(0, prow, prec)
    hr = torch.nonzero(npos > 0).squeeze(1)
    q = a + hr
    acc.ap[q] = apsum[hr] / npos[hr].to(torch.float64)
    last = rank[pstart[hr] + npos[hr] - 1]
    acc.inp[q] = npos[hr].to(torch.float64) / (last + 1).to(torch.float64)
    acc.first[q] = rank[pstart[hr]]


def _rank_block(D: torch.Tensor, a: int, lab: _Labels, acc: _Accumulator, mask_buf: torch.Tensor,
                slice_cap: int) -> None:
    """Ranks of all positives of queries a..a+c against block D (c×g ranking keys: smaller ranks first).

    D may be modified (junk entries are set to +inf)."""
    c, g = D.shape
    dev = D.device
    lo, hi = lab.pair_slice(lab.pos_q, a, a + c)
    if hi == lo:
        return  # no query in this block has a positive
    pq = lab.pos_q[lo:hi] - a
    pg = lab.pos_g[lo:hi]
    pd = D[pq, pg]
    thr = torch.full((c,), -math.inf, dtype=D.dtype, device=dev)
    thr.scatter_reduce_(0, pq, pd, reduce="amax", include_self=True)
    fast = D.dtype == torch.float32 and not bool(torch.isinf(thr).any())
    if fast:  # junk can never be a candidate once it is +inf (every threshold is finite)
        jlo, jhi = lab.pair_slice(lab.junk_q, a, a + c)
        if jhi > jlo:
            D[lab.junk_q[jlo:jhi] - a, lab.junk_g[jlo:jhi]] = math.inf
        if lab.gjunk_cols.numel():
            D.index_fill_(1, lab.gjunk_cols, math.inf)
    mask = torch.le(D, thr.unsqueeze(1), out=mask_buf[: c * g].view(c, g))
    if dev.type == "cpu":  # numpy's flatnonzero is several times faster than torch's nonzero on the CPU
        flat = torch.from_numpy(np.flatnonzero(mask.numpy()))
    else:
        flat = mask.view(-1).nonzero().squeeze(1)
    del mask
    Dflat = D.view(-1)
    if fast:
        cb = _col_bits(g)
        pkey = _float_key(pd, pq, pg, cb)
        rank = torch.empty_like(pq)
        # (row, value) prefix of each positive, and how many positives share it
        ppre = pkey >> cb
        spre = torch.sort(ppre).values
        npos_same = torch.searchsorted(spre, ppre, right=True) - torch.searchsorted(spre, ppre)
        on_cpu = dev.type == "cpu"
        for s, e in _row_bounds(flat, c, g, slice_cap):
            f = flat[s:e]
            r0, r1 = int(f[0]) // g, int(f[-1]) // g
            if on_cpu:
                skey = torch.from_numpy(_candidate_keys_cpu(Dflat.numpy(), f.numpy(), r0, r1, g, cb))
            else:
                rows = torch.div(f, g, rounding_mode="floor")
                skey = _sort_keys(_float_key(Dflat[f], rows, f - rows * g, cb))
                del rows
            del f
            sel = (pq >= r0) & (pq <= r1)
            # the smallest possible key of a row: row << (32 + cb) - 2**(31 + cb)
            row_lo = (pq[sel] << (32 + cb)) - (1 << (31 + cb))
            rank[sel] = torch.searchsorted(skey, pkey[sel]) - torch.searchsorted(skey, row_lo)
            # candidates of the same row at exactly a positive's value: more than its fellow positives = a tie
            lo_key = ppre[sel] << cb
            same = torch.searchsorted(skey, lo_key + (1 << cb)) - torch.searchsorted(skey, lo_key)
            acc.tied[a + pq[sel][same > npos_same[sel]]] = True
        _accumulate(acc, a, pq, rank, c)
        return
    # generic path (float64 / integer distances, or infinite distances): filter junk per candidate, two stable sorts
    for s, e in _row_bounds(flat, c, g, slice_cap):
        f = flat[s:e]
        rows = torch.div(f, g, rounding_mode="floor")
        cols = f - rows * g
        vals = Dflat[f]
        del f
        gp = lab.gp[cols]
        same = gp == lab.qp[a:a + c][rows]
        keep = (gp != -1) & ~(same & (lab.gc[cols] == lab.qc[a:a + c][rows]))
        if not bool(keep.all()):
            rows, vals, same = rows[keep], vals[keep], same[keep]
        del cols, gp, keep
        # candidates come in (row, column) order: stable sort by value, then stable sort by row
        o1 = torch.sort(vals, stable=True).indices
        perm = o1[torch.sort(rows[o1], stable=True).indices]
        del o1
        rows_s = rows[perm]
        pos_s = same[perm]
        vals_s = vals[perm]
        del perm, same, vals
        if rows_s.numel() == 0:
            continue
        _mark_ties(acc, a, rows_s, vals_s, pos_s)
        del vals_s
        counts = torch.bincount(rows_s, minlength=c)
        starts = torch.cumsum(counts, 0) - counts
        idx = pos_s.nonzero().squeeze(1)
        prow = rows_s[idx]
        _accumulate(acc, a, prow, idx - starts[prow], c)


def _mark_ties(acc: _Accumulator, a: int, rows_s: torch.Tensor, vals_s: torch.Tensor, pos_s: torch.Tensor) -> None:
    """Candidates sorted by (row, value): a run of equal (row, value) holding a positive and a negative is a tie."""
    new = torch.ones_like(pos_s)
    new[1:] = (rows_s[1:] != rows_s[:-1]) | (vals_s[1:] != vals_s[:-1])
    run = torch.cumsum(new.to(torch.int64), 0) - 1
    total = torch.bincount(run)
    npos = torch.bincount(run, weights=pos_s.to(torch.float64)).to(torch.int64)
    tied_run = (npos > 0) & (npos < total)
    if bool(tied_run.any()):
        acc.tied[a + rows_s[tied_run[run]]] = True


class _NegTopK:
    """Keeps the k smallest ranking keys over all negative query–gallery pairs (for TPR at FPR)."""

    def __init__(self, k: int, dtype, device):
        self.k = k
        self.best = torch.empty(0, dtype=dtype, device=device)
        self.pos_keys = []

    def update(self, D: torch.Tensor, a: int, lab: _Labels) -> None:
        c, g = D.shape
        lo, hi = lab.pair_slice(lab.same_q, a, a + c)
        sq, sg = lab.same_q[lo:hi] - a, lab.same_g[lo:hi]
        pos = lab.qc[a:a + c][sq] != lab.gc[sg]
        self.pos_keys.append(D[sq[pos], sg[pos]].clone())
        if self.k == 0:
            return
        D[sq, sg] = math.inf  # D is our own block: positives and same-camera junk are no negatives
        if lab.gjunk_cols.numel():
            D.index_fill_(1, lab.gjunk_cols, math.inf)
        k = min(self.k, D.numel())
        top = torch.topk(D.view(-1), k, largest=False, sorted=False).values
        merged = torch.cat([self.best, top])
        self.best = torch.topk(merged, min(self.k, merged.numel()), largest=False, sorted=False).values

    def result(self, fprs: Sequence[float], num_neg: int) -> Dict[float, float]:
        pos = torch.cat(self.pos_keys) if self.pos_keys else torch.empty(0)
        best = torch.sort(self.best).values
        out = {}
        for f in fprs:
            k = int(math.floor(f * num_neg + 1e-9))
            # accept pairs ranked strictly before the (k+1)-th best negative: at most k false positives
            t = best[k] if k < best.numel() and k < num_neg else math.inf
            out[f] = float((pos < t).sum()) / pos.numel() if pos.numel() else float("nan")
        return out


def _finish(acc: _Accumulator, max_rank: int, nq: int, tpr: Optional[Dict[float, float]]) -> EvalResult:
    ap = acc.ap.cpu().numpy()
    inp = acc.inp.cpu().numpy()
    first = acc.first.cpu().numpy()
    valid = first >= 0
    nv = int(valid.sum())
    cmc = np.zeros(max_rank, dtype=np.float64)
    if nv:
        h = np.bincount(first[valid][first[valid] < max_rank], minlength=max_rank)[:max_rank]
        cmc = np.cumsum(h).astype(np.float64) / nv
        mAP = float(ap[valid].mean())
        mINP = float(inp[valid].mean())
    else:
        mAP = mINP = float("nan")
    return EvalResult(mAP, mINP, cmc, nv, nq - nv, tpr, ap, inp, first,
                      num_tied_queries=int(acc.tied.sum()))


def _plan(nq: int, ng: int, budget: int, itemsize: int, device, tpr_at_fpr) -> Tuple[int, int]:
    """(rows per query block, worker threads). On the CPU the blocks are spread over torch's threads
    (:func:`~robustreid.utils.parallel.parallel_map`: each worker computes its own block's distances with one BLAS
    thread and ranks it), each worker with its share of the memory budget; one worker on CUDA and for TPR@FPR (its
    top-k merge is sequential)."""
    workers = torch.get_num_threads() if device.type == "cpu" and not tpr_at_fpr and not in_worker() else 1
    rows = min(max(nq, 1), _rows_per_block(ng, budget // workers, itemsize), _max_rows_fast(ng))
    if workers > 1:
        rows = min(rows, -(-nq // workers))  # at least one block per worker
    return rows, workers


def _run(nq: int, ng: int, block_fn, dtype, lab: _Labels, *, max_rank: int, device, tpr_at_fpr,
         memory_budget: Optional[int], block_buffer: bool = False) -> EvalResult:
    """``block_fn(a, b, buf)`` returns the b-a × ng ranking keys of queries a..b (it may write them into ``buf``, a
    per-thread flat buffer of rows × ng when ``block_buffer``)."""
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    budget = int(memory_budget) if memory_budget else DEFAULT_MEMORY_BUDGET
    itemsize = torch.empty(0, dtype=dtype).element_size()
    rows, workers = _plan(nq, ng, budget, itemsize, torch.device(device), tpr_at_fpr)
    slice_cap = max(ng, budget // workers // 4 // 96)
    acc = _Accumulator(nq, device)
    fprs = None
    negk = None
    if tpr_at_fpr:
        fprs = tuple(DEFAULT_FPRS) if tpr_at_fpr is True else tuple(float(f) for f in tpr_at_fpr)
        same_per_q = torch.bincount(lab.same_q, minlength=nq) if lab.same_q.numel() else torch.zeros(nq)
        num_neg = int(nq * (ng - lab.gjunk_cols.numel()) - int(same_per_q.sum()))
        negk = _NegTopK(int(math.floor(max(fprs) * num_neg + 1e-9)) + 1, dtype, device)
    scratch = threading.local()  # each worker's block and mask buffers, made once

    def one_block(a: int) -> None:
        if not hasattr(scratch, "mask"):
            scratch.mask = torch.empty(rows * ng, dtype=torch.bool, device=device)
            scratch.buf = torch.empty(rows * ng, dtype=dtype, device=device) if block_buffer else None
        b = min(nq, a + rows)
        D = block_fn(a, b, scratch.buf)
        _rank_block(D, a, lab, acc, scratch.mask, slice_cap)
        if negk is not None:
            negk.update(D, a, lab)

    parallel_map(one_block, range(0, nq, rows), threads=workers)
    tpr = negk.result(fprs, num_neg) if negk is not None else None
    return _finish(acc, max_rank, nq, tpr)


# --------------------------------------------------------------------------------------------------------------
# public API


def check_informative(qf: torch.Tensor, gf: torch.Tensor, metric: str) -> None:
    """Refuse features from which no ranking can be learnt (they would score by tie order alone).

    ``qf`` / ``gf`` come from :func:`~robustreid.eval.distance.prepare_features` (L2-normalised for cosine).
    Raises ``ValueError`` for dimension 0, a gallery of two or more rows that are all equal, and all-zero rows
    under cosine (no direction, so no cosine)."""
    if qf.shape[1] == 0:
        raise ValueError(f"features have dimension 0 ({qf.shape[0]}×0 query, {gf.shape[0]}×0 gallery): there is "
                         f"nothing to rank by")
    # reductions only (no N×D temporaries): rows are all equal iff every column's min equals its max
    if gf.shape[0] > 1 and bool((gf.amin(0) == gf.amax(0)).all()):
        same_q = qf.shape[0] and bool((qf.amin(0) == gf[0]).all()) and bool((qf.amax(0) == gf[0]).all())
        also = " (the query rows too)" if same_q else ""
        raise ValueError(f"all {gf.shape[0]} gallery feature rows are equal{also}: the features carry no "
                         f"information and every ranking would follow the gallery order alone (is the model "
                         f"trained, and are its weights intact?)")
    if metric == "cosine":
        for name, t in (("query_features", qf), ("gallery_features", gf)):
            zero = int((torch.linalg.vector_norm(t, dim=1) == 0).sum()) if t.shape[0] else 0
            if zero:
                raise ValueError(f"{name}: {zero} row{'s' if zero > 1 else ''} of {t.shape[0]} "
                                 f"{'are' if zero > 1 else 'is'} all zero: cosine similarity is undefined for a "
                                 f"zero vector (use metric='euclidean' if zero embeddings are meaningful)")


@torch.no_grad()
def evaluate(query_features, gallery_features, query_pids, gallery_pids, query_camids, gallery_camids, *,
             metric: str = "cosine", max_rank: int = 50, device=None, tpr_at_fpr=False,
             memory_budget: Optional[int] = None, rerank: bool = False, k1: int = 20, k2: int = 6,
             lambda_value: float = 0.3) -> EvalResult:
    """CMC / mAP / mINP of a query set against a gallery (conventions in the module docstring).

    Features without information are refused (:func:`check_informative`); ``num_tied_queries`` of the result
    counts the queries whose ranking the gallery index decided. Queries without a positive are skipped and counted
    (``num_skipped_queries``); when none is valid the rates are NaN (callers that report them should refuse).

    Inputs are numpy arrays or torch tensors (features N×D, labels N). ``metric``: ``"cosine"`` or ``"euclidean"``
    (squared). ``device``: where to compute (default: the query features' device). ``tpr_at_fpr``: True for TPR at
    FPR 1e-4/1e-3/1e-2 over all non-junk query–gallery pairs, or a sequence of FPRs. ``memory_budget``: bytes of
    working memory (default 512 MiB). ``rerank=True`` applies k-reciprocal re-ranking (k1, k2, lambda_value) first.
    """
    check_metric(metric)
    if device is None:
        device = query_features.device if isinstance(query_features, torch.Tensor) else "cpu"
    device = torch.device(device)
    qf = prepare_features(query_features, "query_features", metric, device)
    gf = prepare_features(gallery_features, "gallery_features", metric, device)
    bd = BlockDistance(qf, gf, metric)
    lab = _Labels(query_pids, gallery_pids, query_camids, gallery_camids, qf.shape[0], gf.shape[0], device)
    check_informative(qf, gf, metric)
    if rerank:
        from .rerank import re_rank

        del qf, gf, bd
        dist = re_rank(query_features, gallery_features, k1=k1, k2=k2, lambda_value=lambda_value, metric=metric,
                       device=device, memory_budget=memory_budget)
        return evaluate_distances(dist, query_pids, gallery_pids, query_camids, gallery_camids, max_rank=max_rank,
                                  device=device, tpr_at_fpr=tpr_at_fpr, memory_budget=memory_budget)
    ng = gf.shape[0]

    def block(a, b, buf):
        return bd.block(a, b, out=buf[: (b - a) * ng].view(b - a, ng))

    return _run(qf.shape[0], ng, block, torch.float32, lab, max_rank=max_rank, device=device,
                tpr_at_fpr=tpr_at_fpr, memory_budget=memory_budget, block_buffer=True)


@torch.no_grad()
def evaluate_distances(distmat, query_pids, gallery_pids, query_camids, gallery_camids, *, max_rank: int = 50,
                       device=None, tpr_at_fpr=False, memory_budget: Optional[int] = None) -> EvalResult:
    """Same metrics from a precomputed q×g distance matrix (smaller = more similar), e.g. re-ranking output.

    Any real dtype; integer matrices are compared exactly (as float64). NaN distances are rejected.
    """
    dist = as_tensor(distmat, "distmat", ndim=2)
    if device is None:
        device = dist.device
    device = torch.device(device)
    if not dist.is_floating_point():
        dist = dist.to(torch.float64)
    if dist.numel() and bool(torch.isnan(dist).any()):
        raise ValueError("distmat contains NaN")
    nq, ng = dist.shape
    lab = _Labels(query_pids, gallery_pids, query_camids, gallery_camids, nq, ng, device)

    def block(a, b, buf):
        # a private copy: the TPR pass writes into the block
        return dist[a:b].to(device=device, copy=True).contiguous()

    return _run(nq, ng, block, dist.dtype, lab, max_rank=max_rank, device=device, tpr_at_fpr=tpr_at_fpr,
                memory_budget=memory_budget)
