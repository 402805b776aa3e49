"""parallel_map: the sequential loop's results in order, on torch's threads, one intra-op thread per worker; the
evaluator and a chunked corruption give identical results with 1 and 2 threads through it."""

import threading

import numpy as np
import pytest
import torch

from robustreid.utils import parallel as P


@pytest.fixture
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def test_results_in_order_on_worker_threads(two_threads):
    main = threading.get_ident()
    seen = []

    def fn(i):
        seen.append((threading.get_ident(), torch.get_num_threads(), P.in_worker()))
        # a nested call runs in the worker itself
        inner = P.parallel_map(lambda j: (threading.get_ident(), j), range(3))
        assert {t for t, _ in inner} == {threading.get_ident()}
        return i * i

    assert P.parallel_map(fn, range(9)) == [i * i for i in range(9)]
    assert all(t != main and n == 1 and w for t, n, w in seen), [(t == main, n, w) for t, n, w in seen]
    assert torch.get_num_threads() == 2  # restored for the caller
    assert not P.in_worker()


def test_a_worker_that_started_idle_still_runs_on_one_intraop_thread(two_threads, monkeypatch):
    """A worker made in one call that ran no torch op there reads the caller's restored thread count at its first
    torch call (torch initialises a thread's count lazily): its pieces in the next call must still get one
    intra-op thread. (This was a CI flake of the test above: it depended on which earlier test made the pool.)"""
    monkeypatch.setattr(P, "_pool", None)
    monkeypatch.setattr(P, "_pool_key", (0, 0))
    P.parallel_map(lambda i: i, range(4), threads=2)  # the workers start; no torch call in them
    assert torch.get_num_threads() == 2
    counts = P.parallel_map(lambda i: torch.get_num_threads(), range(8), threads=2)
    assert counts == [1] * 8
    assert torch.get_num_threads() == 2


def test_one_thread_runs_in_the_caller_and_errors_propagate(two_threads):
    main = threading.get_ident()
    assert P.parallel_map(lambda i: threading.get_ident(), range(4), threads=1) == [main] * 4
    assert P.parallel_map(lambda i: threading.get_ident(), [7]) == [main]  # one item: no pool

    def boom(i):
        if i == 2:
            raise ValueError("item 2")
        return i

    with pytest.raises(ValueError, match="item 2"):
        P.parallel_map(boom, range(5))


def test_evaluate_same_with_one_and_two_threads(two_threads):
    """Query blocks spread over two workers (small memory budget: many blocks) give the numbers of one thread."""
    from robustreid.eval import evaluate

    rng = np.random.default_rng(0)
    nq, ng, dim = 60, 400, 8
    qp, gp = rng.integers(0, 12, nq), rng.integers(-1, 12, ng)
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    qf = rng.standard_normal((nq, dim)).astype(np.float32)
    gf = rng.standard_normal((ng, dim)).astype(np.float32)
    gf[100:110] = gf[90:100]  # exact duplicates: ties broken by index
    two = evaluate(qf, gf, qp, gp, qc, gc, memory_budget=60_000)
    torch.set_num_threads(1)
    one = evaluate(qf, gf, qp, gp, qc, gc, memory_budget=60_000)
    whole = evaluate(qf, gf, qp, gp, qc, gc)  # one block
    for r in (two, whole):
        np.testing.assert_array_equal(r.per_query_ap, one.per_query_ap)
        np.testing.assert_array_equal(r.first_positive_rank, one.first_positive_rank)
        assert (r.num_valid_queries, r.num_tied_queries) == (one.num_valid_queries, one.num_tied_queries)


def test_chunked_corruption_same_with_one_and_two_threads(two_threads):
    from robustreid.corruptions import corrupt

    x = torch.randint(0, 256, (40, 3, 24, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    two = corrupt(x, "gaussian_noise", 3, seed=5)
    torch.set_num_threads(1)
    assert torch.equal(two, corrupt(x, "gaussian_noise", 3, seed=5))
