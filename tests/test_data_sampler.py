"""PKSampler properties (hypothesis): batch structure, rank disjointness, determinism, coverage, resume."""

from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from robustreid.data.sampler import PKSampler


def pid_lists():
    # identity -> number of images (1..6), 2..30 identities
    return st.lists(st.integers(1, 6), min_size=2, max_size=30).map(
        lambda counts: [pid for pid, c in enumerate(counts) for _ in range(c)])


@settings(max_examples=60, deadline=None)
@given(pids=pid_lists(), p=st.integers(1, 5), k=st.integers(1, 4), seed=st.integers(0, 1000),
       world=st.integers(1, 3), epoch=st.integers(0, 5), repeats=st.integers(1, 2))
def test_pk_properties(pids, p, k, seed, world, epoch, repeats):
    n_ids = len(set(pids))
    if n_ids < p * world:
        with pytest.raises(ValueError, match="at least"):
            PKSampler(pids, p, k, seed=seed, world_size=world)
        return
    samplers = [PKSampler(pids, p, k, seed=seed, rank=r, world_size=world, repeats=repeats) for r in range(world)]
    per_rank = []
    for s in samplers:
        s.set_epoch(epoch)
        flat = list(s)
        assert len(flat) == len(s)
        batches = [flat[i:i + p * k] for i in range(0, len(flat), p * k)]
        assert len(batches) == s.num_batches == samplers[0].num_batches  # every rank steps together
        ids_of_rank = set()
        for b in batches:
            assert len(b) == p * k
            ids = [pids[i] for i in b]
            chunks = [ids[j * k:(j + 1) * k] for j in range(p)]
            assert all(len(set(c)) == 1 for c in chunks), "K consecutive images of one identity"
            assert len({c[0] for c in chunks}) == p, "P distinct identities per batch"
            for c in chunks:  # without replacement when the identity has >= K images
                idx = b[ids.index(c[0]):ids.index(c[0]) + k]
                if pids.count(c[0]) >= k:
                    assert len(set(idx)) == k
            ids_of_rank |= set(ids)
        per_rank.append(ids_of_rank)
        assert s.batches(epoch) == batches  # deterministic per (seed, epoch)
    for a in range(world):
        for b in range(a + 1, world):
            assert not per_rank[a] & per_rank[b], "ranks own disjoint identities"
    assert set().union(*per_rank) == set(pids), "every identity appears each epoch"
    assert samplers[0].num_batches == repeats * -(-(-(-n_ids // world)) // p)


def test_epochs_differ_and_resume_mid_epoch():
    pids = [i // 3 for i in range(60)]
    s = PKSampler(pids, 4, 2, seed=3)
    assert s.batches(0) != s.batches(1)
    s.set_epoch(2)
    full = list(s)
    state = s.state_dict(batches_done=2)
    r = PKSampler(pids, 4, 2, seed=3)
    r.load_state_dict(state)
    assert r.epoch == 2 and list(r) == full[2 * 8:]
    assert list(r) == full  # the skip applies to the resumed epoch only
    with pytest.raises(ValueError, match="seed"):
        PKSampler(pids, 4, 2, seed=4).load_state_dict(state)


def test_small_identities_sampled_with_replacement():
    pids = [0, 1, 1, 2, 2, 2]
    s = PKSampler(pids, 3, 4, seed=0)
    (batch,) = s.batches(0)
    counts = Counter(pids[i] for i in batch)
    assert counts == {0: 4, 1: 4, 2: 4}
    assert [i for i in batch if pids[i] == 0] == [0, 0, 0, 0]


def test_three_ranks_disjoint_and_in_step():
    pids = [i // 2 for i in range(2 * 31)]  # 31 identities: shares of 11, 10, 10
    ranks = [PKSampler(pids, 4, 2, seed=7, rank=r, world_size=3, repeats=2) for r in range(3)]
    owned = [{pids[i] for i in s} for s in ranks]
    assert [len(o) for o in owned] == [11, 10, 10]
    assert not (owned[0] & owned[1] or owned[0] & owned[2] or owned[1] & owned[2])
    assert {len(s) for s in ranks} == {2 * 3 * 4 * 2}  # repeats × ceil(11 / 4) batches × P × K on every rank
