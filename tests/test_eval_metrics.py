"""Exactness of robustreid.eval.evaluate / evaluate_distances against a per-query algorithm written here from the
definitions (docs/metrics.md, shared/reference/datasets-and-metrics.md)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustreid.eval import EvalResult, compute_distance, evaluate, evaluate_distances


def classic(dist, qp, gp, qc, gc, max_rank=50):
    """Per query: drop same pid & same cam and pid -1, rank the rest by (distance, gallery index)."""
    dist = np.asarray(dist, dtype=np.float64)
    aps, inps, firsts = [], [], []
    for i in range(dist.shape[0]):
        order = sorted(range(dist.shape[1]), key=lambda j: (dist[i, j], j))
        ranked = [j for j in order if gp[j] != -1 and not (gp[j] == qp[i] and gc[j] == qc[i])]
        hits = [r for r, j in enumerate(ranked) if gp[j] == qp[i]]
        if not hits:
            continue
        aps.append(sum((n + 1) / (r + 1) for n, r in enumerate(hits)) / len(hits))
        inps.append(len(hits) / (hits[-1] + 1))
        firsts.append(hits[0])
    nv = len(aps)
    cmc = np.array([sum(f <= k for f in firsts) / nv if nv else 0.0 for k in range(max_rank)])
    return (float(np.mean(aps)) if nv else math.nan, float(np.mean(inps)) if nv else math.nan, cmc, nv)


def assert_same(res: EvalResult, ref, nq):
    mAP, mINP, cmc, nv = ref
    assert res.num_valid_queries == nv
    assert res.num_skipped_queries == nq - nv
    if nv == 0:
        assert math.isnan(res.mAP) and math.isnan(res.mINP)
        return
    assert res.mAP == pytest.approx(mAP, abs=1e-6)
    assert res.mINP == pytest.approx(mINP, abs=1e-6)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-6)


@st.composite
def problems(draw, max_q=12, max_g=30):
    nq = draw(st.integers(1, max_q))
    ng = draw(st.integers(1, max_g))
    npid = draw(st.integers(1, 5))
    ints = lambda n, lo, hi: np.array(draw(st.lists(st.integers(lo, hi), min_size=n, max_size=n)), dtype=np.int64)
    qp, gp = ints(nq, -1, npid), ints(ng, -1, npid)
    qc, gc = ints(nq, 0, 2), ints(ng, 0, 2)
    levels = draw(st.integers(1, 5))  # few distinct values: many ties
    # the matrix from a drawn seed: drawing its up to 360 entries one by one was half of these tests' time
    dist = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, levels + 1, (nq, ng))
    return dist, qp, gp, qc, gc


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(problems(), st.sampled_from([None, 600, 5000]), st.sampled_from([np.float32, np.float64, np.int64]))
def test_distances_match_classic(prob, budget, dtype):
    dist, qp, gp, qc, gc = prob
    res = evaluate_distances(dist.astype(dtype), qp, gp, qc, gc, max_rank=7, memory_budget=budget)
    assert_same(res, classic(dist, qp, gp, qc, gc, 7), len(qp))


@SETTINGS
@given(problems(max_q=6, max_g=20))
def test_infinite_distances(prob):
    dist, qp, gp, qc, gc = prob
    d = dist.astype(np.float32)
    d[d == d.max()] = np.inf
    res = evaluate_distances(torch.from_numpy(d), qp, gp, qc, gc, max_rank=5)
    assert_same(res, classic(d, qp, gp, qc, gc, 5), len(qp))


@SETTINGS
@given(problems(max_q=10, max_g=25), st.integers(0, 2**31 - 1))
def test_euclidean_integer_features(prob, seed):
    _, qp, gp, qc, gc = prob
    rng = np.random.default_rng(seed)
    dim = 3
    pool = rng.integers(-2, 3, (4, dim))  # few distinct vectors: duplicates and ties
    qf = pool[rng.integers(0, 4, len(qp))].astype(np.float32)
    gf = pool[rng.integers(0, 4, len(gp))].astype(np.float32)
    exact = ((qf[:, None, :].astype(np.int64) - gf[None].astype(np.int64)) ** 2).sum(-1)
    if len(gf) > 1 and (gf == gf[0]).all():  # no information: refused (issue 17)
        with pytest.raises(ValueError, match="gallery feature rows are equal"):
            evaluate(qf, gf, qp, gp, qc, gc, metric="euclidean")
        return
    res = evaluate(qf, gf, qp, gp, qc, gc, metric="euclidean", max_rank=6, memory_budget=800)
    assert_same(res, classic(exact, qp, gp, qc, gc, 6), len(qp))


@SETTINGS
@given(problems(max_q=10, max_g=25), st.integers(0, 2**31 - 1))
def test_cosine_exact_unit_vectors(prob, seed):
    """Vectors with four entries ±3 (norm 6): normalised entries ±0.5, all cosines exact multiples of 1/4."""
    _, qp, gp, qc, gc = prob
    rng = np.random.default_rng(seed)
    dim = 6
    pool = np.zeros((5, dim), dtype=np.float32)
    for v in pool:
        idx = rng.choice(dim, 4, replace=False)
        v[idx] = 3 * rng.choice([-1, 1], 4)
    qf, gf = pool[rng.integers(0, 5, len(qp))], pool[rng.integers(0, 5, len(gp))]
    cos = (qf @ gf.T) / 36.0
    if len(gf) > 1 and (gf == gf[0]).all():  # no information: refused (issue 17)
        with pytest.raises(ValueError, match="gallery feature rows are equal"):
            evaluate(qf, gf, qp, gp, qc, gc)
        return
    res = evaluate(torch.from_numpy(qf), torch.from_numpy(gf), torch.from_numpy(qp), gp, qc, gc, max_rank=6)
    assert_same(res, classic(1 - cos, qp, gp, qc, gc, 6), len(qp))


def test_random_float_features_many_blocks():
    rng = np.random.default_rng(3)
    nq, ng, dim = 40, 300, 16
    qp, gp = rng.integers(-1, 10, nq), rng.integers(-1, 10, ng)
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    qf = rng.standard_normal((nq, dim)).astype(np.float32)
    gf = rng.standard_normal((ng, dim)).astype(np.float32)
    gf[50:60] = gf[40:50]  # exact duplicates: tied distances
    for metric in ("cosine", "euclidean"):
        dist = compute_distance(qf, gf, metric).numpy()
        ref = classic(dist, qp, gp, qc, gc, 50)
        for budget in (None, 20_000, 100_000):
            assert_same(evaluate(qf, gf, qp, gp, qc, gc, metric=metric, memory_budget=budget), ref, nq)
        assert_same(evaluate_distances(dist, qp, gp, qc, gc, memory_budget=30_000), ref, nq)


def test_all_junk_gallery_and_hand_case():
    qp, qc = np.array([1, 2]), np.array([0, 0])
    res = evaluate_distances(np.zeros((2, 3)), qp, np.array([-1, -1, -1]), qc, np.array([1, 1, 1]))
    assert res.num_valid_queries == 0 and res.num_skipped_queries == 2 and math.isnan(res.mAP)
    assert np.all(res.cmc == 0)
    # hand case: gallery ranked 0..4 by distance; query pid 7 cam 0; gallery (pid, cam):
    # (7,0) junk, (3,1) neg, (7,1) pos at rank 1, (-1,1) junk, (7,2) pos at rank 2 -> AP = (1/2 + 2/3)/2
    d = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    r = evaluate_distances(d, [7], [7, 3, 7, -1, 7], [0], [0, 1, 1, 1, 2], max_rank=3)
    assert r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert r.mINP == pytest.approx(2 / 3)
    np.testing.assert_allclose(r.cmc, [0, 1, 1])
    assert r.as_dict()["R1"] == 0.0 and r.as_dict()["R5"] == 1.0
    assert "mINP" in str(r)


def test_ties_broken_by_gallery_index():
    # positive and negative at the same distance: the earlier gallery index ranks first
    r = evaluate_distances([[1.0, 1.0]], [0], [0, 5], [0], [1, 1], max_rank=2)
    assert r.cmc[0] == 1.0
    r = evaluate_distances([[1.0, 1.0]], [0], [5, 0], [0], [1, 1], max_rank=2)
    assert r.cmc[0] == 0.0 and r.mAP == pytest.approx(0.5)


def test_tpr_at_fpr_matches_roc_definition():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    nq, ng = 30, 400
    qp, gp = rng.integers(0, 8, nq), rng.integers(-1, 8, ng)
    qc, gc = rng.integers(0, 2, nq), rng.integers(0, 2, ng)
    dist = rng.integers(0, 50, (nq, ng)).astype(np.float32)
    fprs = (1e-3, 1e-2, 0.1)
    res = evaluate_distances(dist, qp, gp, qc, gc, tpr_at_fpr=fprs, memory_budget=50_000)
    labels, scores = [], []
    for i in range(nq):
        for j in range(ng):
            if gp[j] == -1 or (gp[j] == qp[i] and gc[j] == qc[i]):
                continue
            labels.append(gp[j] == qp[i])
            scores.append(-dist[i, j])
    fpr, tpr, _ = roc_curve(labels, scores)
    for f in fprs:
        assert res.tpr_at_fpr[f] == pytest.approx(tpr[fpr <= f + 1e-12].max(), abs=1e-9)
    assert set(evaluate_distances(dist, qp, gp, qc, gc, tpr_at_fpr=True).tpr_at_fpr) == {1e-4, 1e-3, 1e-2}


def test_clear_errors():
    f = np.zeros((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="query_pids has 3 entries"):
        evaluate(f, f, [1, 2, 3], [1, 2], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="metric"):
        evaluate(f, f, [1, 2], [1, 2], [0, 0], [1, 1], metric="manhattan")
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate(bad, f, [1, 2], [1, 2], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="dimension"):
        evaluate(f, np.zeros((2, 3), np.float32), [1, 2], [1, 2], [0, 0], [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        evaluate_distances(np.full((2, 2), np.nan), [1, 2], [1, 2], [0, 0], [1, 1])


def test_inputs_not_modified():
    rng = np.random.default_rng(1)
    qf = rng.standard_normal((5, 8)).astype(np.float32)
    gf = rng.standard_normal((9, 8)).astype(np.float32)
    q0, g0 = qf.copy(), gf.copy()
    d = compute_distance(qf, gf).numpy()
    d0 = d.copy()
    labels = (rng.integers(0, 3, 5), rng.integers(-1, 3, 9), rng.integers(0, 2, 5), rng.integers(0, 2, 9))
    evaluate(qf, gf, *labels, tpr_at_fpr=True)
    evaluate_distances(d, *labels, tpr_at_fpr=True)
    np.testing.assert_array_equal(qf, q0)
    np.testing.assert_array_equal(gf, g0)
    np.testing.assert_array_equal(d, d0)


def test_torch_inputs_with_grad_and_float16():
    rng = np.random.default_rng(2)
    qf = torch.randn(6, 8, requires_grad=True)
    gf = torch.randn(20, 8, requires_grad=True)
    labels = (rng.integers(0, 4, 6), rng.integers(0, 4, 20), rng.integers(0, 2, 6), rng.integers(0, 2, 20))
    ref = classic(compute_distance(qf.detach(), gf.detach()).numpy(), *labels, 50)
    assert_same(evaluate(qf, gf, *labels), ref, 6)
    # float16 features are upcast exactly; same ranking as their float32 copy
    h = evaluate(qf.detach().half(), gf.detach().half(), *labels)
    f = evaluate(qf.detach().half().float(), gf.detach().half().float(), *labels)
    assert h.mAP == f.mAP and np.array_equal(h.cmc, f.cmc)


@SETTINGS
@given(problems(max_q=8, max_g=25))
def test_torch_sort_path_used_on_gpu(prob):
    """On CUDA the candidate keys are sorted with torch.sort instead of numpy: same results (checked on CPU)."""
    import robustreid.eval.metrics as M

    dist, qp, gp, qc, gc = prob
    orig = M._sort_keys
    M._sort_keys = lambda key: torch.sort(key).values
    try:
        res = evaluate_distances(dist.astype(np.float32), qp, gp, qc, gc, max_rank=7, memory_budget=5000)
    finally:
        M._sort_keys = orig
    assert_same(res, classic(dist, qp, gp, qc, gc, 7), len(qp))
