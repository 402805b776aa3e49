"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) from k-nearest-neighbour lists and sparse vectors.

Same definition as the textbook (dense) implementation — k1-reciprocal sets, expansion by the k1/2-reciprocal sets
of their members when at least 2/3 of such a set lies in the original one, Gaussian-kernel weights exp(-d) on the
row-normalised distance, local query expansion over the k2 nearest neighbours, Jaccard distance via an inverted
index, final ``(1 - λ)·jaccard + λ·original`` — but without any dense (q+g)² matrix:

1. one chunked pass over the joint set computes, for every row, its max distance (the textbook normalises each row
   by it) and its ``max(k1 + 1, k2)`` nearest neighbours (matmul + topk); the query rows' gallery blocks are kept
   (they are the λ·original term of the output);
2. reciprocity, expansion, weights and query expansion work on sparse (row, column, value) lists;
3. the Jaccard term is accumulated query block by query block through an inverted index over the gallery rows.

Memory: the q×g float32 output, the features, O((q+g)·k1·k1/2) sparse entries and one block (``memory_budget``).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from .distance import check_metric, prepare_features

DEFAULT_BUDGET = 512 * 2**20


def _pair_dist(x: torch.Tensor, sq: Optional[torch.Tensor], rows: torch.Tensor, cols: torch.Tensor,
               metric: str, chunk: int) -> torch.Tensor:
    """Distance between x[rows[k]] and x[cols[k]] for every k (same formula as the blocks)."""
    out = torch.empty(rows.numel(), dtype=torch.float32, device=x.device)
    for s in range(0, rows.numel(), chunk):
        r, c = rows[s:s + chunk], cols[s:s + chunk]
        dot = torch.bmm(x[r].unsqueeze(1), x[c].unsqueeze(2)).view(-1)
        out[s:s + chunk] = (1.0 - dot) if metric == "cosine" else (sq[r] + sq[c] - 2.0 * dot)
    return out


def _member(sorted_keys: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, keys).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


def _reciprocal(knn: torch.Tensor, m: int) -> torch.Tensor:
    """mask[i, t]: knn[i, t] is among the first m entries of knn and i is among the first m of knn[knn[i, t]]."""
    n = knn.shape[0]
    nb = knn[:, :m]
    rows = torch.arange(n, device=knn.device).unsqueeze(1).expand_as(nb)
    keys = _sorted((rows * n + nb).reshape(-1))
    return _member(keys, (nb * n + rows).reshape(-1)).view(n, m)


def _unique(keys: torch.Tensor, return_inverse: bool = False):
    """Sorted unique int64 keys; on CPU through numpy's vectorised sort (much faster than torch's CPU sort)."""
    if keys.device.type == "cpu":
        if return_inverse:
            uk, inv = np.unique(keys.numpy(), return_inverse=True)
            return torch.from_numpy(uk), torch.from_numpy(inv.reshape(-1).astype(np.int64, copy=False))
        return torch.from_numpy(np.unique(keys.numpy()))
    return torch.unique(keys, sorted=True, return_inverse=return_inverse)


def _sorted(keys: torch.Tensor) -> torch.Tensor:
    if keys.device.type == "cpu":
        return torch.from_numpy(np.sort(keys.numpy()))
    return torch.sort(keys).values


def _segment_sum(keys: torch.Tensor, vals: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    uk, inv = _unique(keys, return_inverse=True)
    return uk, torch.zeros(uk.numel(), dtype=vals.dtype, device=vals.device).index_add_(0, inv, vals)


@torch.no_grad()
def re_rank(query_features, gallery_features, k1: int = 20, k2: int = 6, lambda_value: float = 0.3, *,
            metric: str = "cosine", device=None, memory_budget: Optional[int] = None) -> torch.Tensor:
    """k-reciprocal re-ranked q×g float32 distance matrix (smaller = more similar), as a torch tensor.

    ``metric``: original distance ``1 - cos`` (``"cosine"``) or squared Euclidean (``"euclidean"``); each row of
    the original distance is divided by its maximum over the joint query+gallery set, as in the reference code.
    """
    check_metric(metric)
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1 (got k1={k1}, k2={k2})")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    if device is None:
        device = query_features.device if isinstance(query_features, torch.Tensor) else "cpu"
    device = torch.device(device)
    qf = prepare_features(query_features, "query_features", metric, device)
    gf = prepare_features(gallery_features, "gallery_features", metric, device)
    if qf.shape[1] != gf.shape[1]:
        raise ValueError(f"query features have dimension {qf.shape[1]} but gallery features {gf.shape[1]}")
    nq, ng = qf.shape[0], gf.shape[0]
    x = torch.cat([qf, gf])
    n = x.shape[0]
    if nq == 0 or ng == 0:
        return torch.zeros(nq, ng, dtype=torch.float32, device=device)
    budget = int(memory_budget) if memory_budget else DEFAULT_BUDGET
    kk = min(n, max(k1 + 1, k2))
    # a longer neighbour list (with distances) so that the weights of the expanded sets rarely need a new dot
    kx = min(n, max(kk, 3 * (k1 + 1)))
    sq = (x * x).sum(1) if metric == "euclidean" else None
    out = torch.empty(nq, ng, dtype=torch.float32, device=device)

    knn, knn_d, rowmax = _neighbours(x, sq, nq, kx, metric, budget, out)
    vi, vc = _expanded_sets(knn, k1, n)
    vv = _kernel_weights(x, sq, knn, knn_d, rowmax, vi, vc, metric, budget)
    if k2 != 1:
        vi, vc, vv = _local_expansion(knn, vi, vc, vv, k2, n)
    _jaccard_blend(out, vi, vc, vv, nq, float(lambda_value), budget)
    return out


def _neighbours(x: torch.Tensor, sq: Optional[torch.Tensor], nq: int, kx: int, metric: str, budget: int,
                out: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 1: each row's ``kx`` nearest neighbours (ties by index) with their distances, the row maxima of the
    original distance (0 replaced by 1), and the query rows' row-normalised original distances written into ``out``."""
    n, device = x.shape[0], x.device
    rows_per = max(1, int(budget * 0.5) // (12 * n))
    knn = torch.empty(n, kx, dtype=torch.int64, device=device)
    knn_d = torch.empty(n, kx, dtype=torch.float32, device=device)
    rowmax = torch.empty(n, dtype=torch.float32, device=device)
    buf = torch.empty(rows_per * n, dtype=torch.float32, device=device)
    xt = x.t()
    for a in range(0, n, rows_per):
        b = min(n, a + rows_per)
        blk = buf[: (b - a) * n].view(b - a, n)
        # only monotone maps separate the block from the distances (1 - sim; + |x_a|²): max and top-k are taken
        # on the raw block (two passes over it) and the map is applied to the selected values only
        if metric == "cosine":
            torch.mm(x[a:b], xt, out=blk)  # similarity
            rowmax[a:b] = 1.0 - blk.min(1).values
            vals, idx = torch.topk(blk, kx, dim=1, largest=True, sorted=True)
            vals = 1.0 - vals
        else:
            torch.addmm(sq.unsqueeze(0).expand(b - a, -1), x[a:b], xt, alpha=-2.0, out=blk)  # |g|² - 2 q·g
            rowmax[a:b] = blk.max(1).values + sq[a:b]
            vals, idx = torch.topk(blk, kx, dim=1, largest=False, sorted=True)
            vals = vals + sq[a:b].unsqueeze(1)
        # order ties by index, like a stable argsort of the row
        o = torch.sort(idx, dim=1).indices
        vals, idx = vals.gather(1, o), idx.gather(1, o)
        o = torch.sort(vals, dim=1, stable=True).indices
        knn[a:b] = idx.gather(1, o)
        knn_d[a:b] = vals.gather(1, o)
        if a < nq:
            e = min(b, nq)
            g_part = blk[: e - a, nq:]
            if metric == "cosine":
                out[a:e] = (1.0 - g_part) / rowmax[a:e].unsqueeze(1)
            else:
                out[a:e] = (g_part + sq[a:e].unsqueeze(1)) / rowmax[a:e].unsqueeze(1)
    rowmax = torch.where(rowmax > 0, rowmax, torch.ones_like(rowmax))  # all-equal rows: avoid 0/0
    return knn, knn_d, rowmax


def _expanded_sets(knn: torch.Tensor, k1: int, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Step 2: the k-reciprocal sets R(i, k1) expanded by the members' R(c, k1/2) that overlap them by more than 2/3,
    as sorted unique (row, column) pairs."""
    kh = int(round(k1 / 2.0))  # numpy.around / round: half to even, as in the reference code
    m1, mh = min(n, k1 + 1), min(n, kh + 1)
    r1 = _reciprocal(knn, m1)  # N × m1
    rh = _reciprocal(knn, mh)  # N × mh
    pi, pt = torch.nonzero(r1, as_tuple=True)  # pairs (i, slot) with knn[i, slot] in R(i, k1)
    pc = knn[pi, pt]
    r1_keys = _sorted(pi * n + pc)
    cand = knn[pc, :mh]  # P × mh: the k1/2 lists of each member
    cvalid = rh[pc]
    inside = _member(r1_keys, (pi.unsqueeze(1) * n + cand).reshape(-1)).view_as(cand) & cvalid
    take = 3 * inside.sum(1) > 2 * cvalid.sum(1)  # |R(c, k1/2) ∩ R(i, k1)| > 2/3 |R(c, k1/2)|
    extra_i = pi[take].unsqueeze(1).expand(-1, mh)[cvalid[take]]
    extra_c = cand[take][cvalid[take]]
    keys = _unique(torch.cat([r1_keys, extra_i * n + extra_c]))
    vi = torch.div(keys, n, rounding_mode="floor")
    vc = keys - vi * n
    return vi, vc


def _kernel_weights(x: torch.Tensor, sq: Optional[torch.Tensor], knn: torch.Tensor, knn_d: torch.Tensor,
                    rowmax: torch.Tensor, vi: torch.Tensor, vc: torch.Tensor, metric: str, budget: int) -> torch.Tensor:
    """Step 3: the Gaussian-kernel weight of each (row, column) pair on the row-normalised distance, rows summing
    to one."""
    n, device = x.shape[0], x.device
    ar = torch.arange(n, device=device)
    # distances of (i, e) pairs: from the extended neighbour list when e is in it, else a fresh dot product
    ext_keys = (ar.unsqueeze(1) * n + knn).reshape(-1)
    ext_order = torch.sort(ext_keys).indices if device.type != "cpu" else \
        torch.from_numpy(np.argsort(ext_keys.numpy()))
    ext_sorted = ext_keys[ext_order]
    pkeys = vi * n + vc
    pos = torch.searchsorted(ext_sorted, pkeys).clamp_(max=ext_sorted.numel() - 1)
    hit = ext_sorted[pos] == pkeys
    d = torch.empty(vi.numel(), dtype=torch.float32, device=device)
    d[hit] = knn_d.reshape(-1)[ext_order[pos[hit]]]
    miss = torch.nonzero(~hit).squeeze(1)
    if miss.numel():
        d[miss] = _pair_dist(x, sq, vi[miss], vc[miss], metric, chunk=max(1, budget // 4 // (8 * x.shape[1])))
    del ext_keys, ext_order, ext_sorted, pkeys, pos, hit, miss
    d = d / rowmax[vi]
    w = torch.exp(-d)
    wsum = torch.zeros(n, dtype=torch.float32, device=device).index_add_(0, vi, w)
    return w / wsum[vi]


def _local_expansion(knn: torch.Tensor, vi: torch.Tensor, vc: torch.Tensor, vv: torch.Tensor, k2: int,
                     n: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 4: local query expansion, V'[i] = the mean of V over the k2 nearest neighbours of i (sparse)."""
    device = knn.device
    ar = torch.arange(n, device=device)
    counts = torch.bincount(vi, minlength=n)
    indptr = torch.cumsum(counts, 0) - counts
    nb = knn[:, :k2]  # N × k2 (fewer when N < k2)
    k2e = nb.shape[1]
    lens = counts[nb].reshape(-1)
    src_row = ar.repeat_interleave(k2e)
    dst_i = src_row.repeat_interleave(lens)
    starts = indptr[nb.reshape(-1)].repeat_interleave(lens)
    offs = torch.arange(dst_i.numel(), device=device) - (torch.cumsum(lens, 0) - lens).repeat_interleave(lens)
    src = starts + offs
    keys, vals = _segment_sum(dst_i * n + vc[src], vv[src] / k2e)
    vi = torch.div(keys, n, rounding_mode="floor")
    return vi, keys - vi * n, vals


def _jaccard_blend(out: torch.Tensor, vi: torch.Tensor, vc: torch.Tensor, vv: torch.Tensor, nq: int, lam: float,
                   budget: int) -> None:
    """Step 5: the Jaccard distance of each query and gallery row (1 - Σmin / Σmax = 1 - t / (2 - t) for rows
    summing to one) by an inverted index, blended in place into ``out`` (the original distance): λ·d + (1-λ)·jac."""
    ng, device = out.shape[1], out.device
    qsel = vi < nq
    qi, qc, qv = vi[qsel], vc[qsel], vv[qsel]
    gsel = ~qsel
    order = torch.sort(vc[gsel], stable=True).indices
    gj = (vi[gsel] - nq)[order]
    gc = vc[gsel][order]
    gw = vv[gsel][order]
    lo = torch.searchsorted(gc, qc)
    hi = torch.searchsorted(gc, qc, right=True)
    cnt = hi - lo
    q_rows = max(1, min(nq, int(budget * 0.25) // (4 * ng)))
    cap = max(1, budget // 4 // 24)
    qstart = torch.searchsorted(qi, torch.arange(0, nq + q_rows, q_rows, device=device).clamp_(max=nq))
    tbuf = torch.empty(q_rows * ng, dtype=torch.float32, device=device)
    for bi, a in enumerate(range(0, nq, q_rows)):
        b = min(nq, a + q_rows)
        t = tbuf[: (b - a) * ng].zero_()
        s0, s1 = int(qstart[bi]), int(qstart[bi + 1])
        ccum = torch.cumsum(cnt[s0:s1], 0)
        s = s0
        while s < s1:  # sub-slices of query entries whose expanded pair count stays below ``cap``
            base = int(ccum[s - s0 - 1]) if s > s0 else 0
            e = int(torch.searchsorted(ccum, torch.tensor(base + cap, device=device), right=True)) + s0
            e = max(e, s + 1)
            e = min(e, s1)
            c = cnt[s:e]
            tot = int(c.sum())
            if tot:
                ent = torch.arange(s, e, device=device).repeat_interleave(c)
                offs = torch.arange(tot, device=device) - (torch.cumsum(c, 0) - c).repeat_interleave(c)
                gidx = lo[ent] + offs
                t.index_add_(0, (qi[ent] - a) * ng + gj[gidx], torch.minimum(qv[ent], gw[gidx]))
            s = e
        t = t.view(b - a, ng)
        jac = 1.0 - t / (2.0 - t)
        out[a:b].mul_(lam).add_(jac, alpha=1.0 - lam)
