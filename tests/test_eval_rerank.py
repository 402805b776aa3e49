"""k-reciprocal re-ranking: the sparse implementation against a dense textbook version written here from the paper
(Zhong et al., CVPR 2017) and the reference code's conventions (row-normalised distance, 2/3 expansion rule)."""

import numpy as np
import pytest
import torch

from robustreid.eval import evaluate, evaluate_distances, re_rank


def textbook(qf, gf, k1, k2, lam, metric):
    x = np.concatenate([qf, gf]).astype(np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1.0 - x @ x.T
    else:
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    d = d / d.max(axis=1, keepdims=True)
    n, nq = len(x), len(qf)
    rank = np.argsort(d, axis=1, kind="stable")

    def recip(i, k):
        return [j for j in rank[i, : k + 1] if i in rank[j, : k + 1]]

    V = np.zeros((n, n))
    for i in range(n):
        ri = recip(i, k1)
        s = set(ri)
        for c in ri:
            rc = recip(c, int(np.around(k1 / 2.0)))
            if len(set(rc) & set(ri)) > 2.0 / 3.0 * len(rc):
                s |= set(rc)
        idx = sorted(s)
        w = np.exp(-d[i, idx])
        V[i, idx] = w / w.sum()
    if k2 != 1:
        V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.zeros((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            jac[i, j - nq] = 1.0 - np.minimum(V[i], V[j]).sum() / np.maximum(V[i], V[j]).sum()
    return (1 - lam) * jac + lam * d[:nq, nq:]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k1,k2,lam", [(20, 6, 0.3), (5, 1, 0.5), (7, 3, 0.0)])
def test_matches_textbook(metric, k1, k2, lam):
    rng = np.random.default_rng(k1 * 10 + k2)
    centers = rng.standard_normal((6, 8))
    qf = (centers[rng.integers(0, 6, 15)] + 0.7 * rng.standard_normal((15, 8))).astype(np.float32)
    gf = (centers[rng.integers(0, 6, 45)] + 0.7 * rng.standard_normal((45, 8))).astype(np.float32)
    ref = textbook(qf, gf, k1, k2, lam, metric)
    for budget in (None, 20_000, 3_000):
        ours = re_rank(qf, gf, k1, k2, lam, metric=metric, memory_budget=budget)
        assert ours.dtype == torch.float32 and ours.shape == (15, 45)
        np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
        # same ranking up to ties within the tolerance: our order never puts a clearly farther item first
        order = np.argsort(ours.numpy(), 1, kind="stable")
        ranked_ref = np.take_along_axis(ref, order, 1)
        assert np.all(np.diff(ranked_ref, axis=1) >= -2e-5)


def test_tiny_sets_and_convenience():
    rng = np.random.default_rng(5)
    qf = rng.standard_normal((3, 4)).astype(np.float32)
    gf = rng.standard_normal((4, 4)).astype(np.float32)
    np.testing.assert_allclose(re_rank(qf, gf, 20, 6, 0.3).numpy(), textbook(qf, gf, 20, 6, 0.3, "cosine"),
                               atol=1e-5)
    qp, gp = np.array([0, 1, 2]), np.array([0, 1, 2, 0])
    qc, gc = np.zeros(3, int), np.ones(4, int)
    r = evaluate(qf, gf, qp, gp, qc, gc, rerank=True, k1=3, k2=2, lambda_value=0.3)
    ref = evaluate_distances(re_rank(qf, gf, 3, 2, 0.3), qp, gp, qc, gc)
    assert r.mAP == ref.mAP and np.array_equal(r.cmc, ref.cmc)
    with pytest.raises(ValueError, match="lambda_value"):
        re_rank(qf, gf, lambda_value=2.0)


def test_torch_sort_path_used_on_gpu(monkeypatch):
    """On CUDA the sparse steps sort with torch instead of numpy: same output (checked on CPU)."""
    import robustreid.eval.rerank as R

    rng = np.random.default_rng(9)
    qf = rng.standard_normal((10, 6)).astype(np.float32)
    gf = rng.standard_normal((30, 6)).astype(np.float32)
    ref = R.re_rank(qf, gf, 6, 3, 0.3)
    monkeypatch.setattr(R, "_sorted", lambda k: torch.sort(k).values)
    monkeypatch.setattr(R, "_unique", lambda k, return_inverse=False: torch.unique(k, sorted=True,
                                                                                  return_inverse=return_inverse))
    np.testing.assert_allclose(R.re_rank(qf, gf, 6, 3, 0.3).numpy(), ref.numpy(), atol=1e-6)
