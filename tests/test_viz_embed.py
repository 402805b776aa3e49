"""Embedding maps (deterministic for a seed, displacement by definition) and the ranked-list helpers."""

from __future__ import annotations

import numpy as np
import pytest

from robustreid.viz.embed import cosine_displacement, embedding_figure, embedding_map, identity_yardsticks
from robustreid.viz.ranks import worst_queries


def _features(seed=0, n_ids=4, per_id=3, dim=16):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_ids, dim)) * 3
    pids = np.repeat(np.arange(n_ids), per_id)
    clean = centres[pids] + rng.normal(size=(len(pids), dim)) * 0.3
    return clean, pids, {"clean": clean, "fog s3": clean + rng.normal(size=clean.shape),
                         "noise s3": clean + 3 * rng.normal(size=clean.shape)}


def test_embedding_map_is_deterministic_for_a_seed():
    _, pids, feats = _features()
    a = embedding_map(feats, pids, seed=0)
    b = embedding_map(feats, pids, seed=0)
    for v in feats:
        assert a.coords[v].shape == (12, 2)
        np.testing.assert_array_equal(a.coords[v], b.coords[v])
    # the layout keeps neighbourhoods: each clean crop's nearest clean neighbour on the map is of its identity
    xy = a.coords["clean"]
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    assert np.all(pids[d.argmin(axis=1)] == pids)
    assert a.variants == ["clean", "fog s3", "noise s3"] and set(a.displacement) == {"fog s3", "noise s3"}
    assert embedding_figure(a, title="t")[:8] == b"\x89PNG\r\n\x1a\n"


def test_displacement_and_yardsticks_by_hand():
    clean = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    other = np.array([[2.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    np.testing.assert_allclose(cosine_displacement(clean, other), [0.0, 1.0, 2.0], atol=1e-12)
    y = identity_yardsticks(clean, [7, 7, 8])
    # same identity: the pair (0, 1), orthogonal -> 1; other identities: (0, 2) and (1, 2), both at 45° -> 1 − √½
    assert y["same identity"] == pytest.approx(1.0)
    assert y["other identities"] == pytest.approx(1 - np.sqrt(0.5))
    _, pids, feats = _features()
    em = embedding_map(feats, pids, seed=0)
    assert em.displacement["noise s3"].mean() > em.displacement["fog s3"].mean()  # 3× the noise moves farther


def test_embedding_map_rejects_bad_input():
    clean, pids, feats = _features()
    with pytest.raises(ValueError, match="identities for"):
        embedding_map(feats, pids[:-1])
    with pytest.raises(ValueError, match="shape"):
        embedding_map({"clean": clean, "x": clean[:, :3]}, pids)
    with pytest.raises(ValueError, match="umap-learn|unknown layout"):
        embedding_map(feats, pids, method="umap" if not _has_umap() else "pca")


def _has_umap():
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def test_worst_queries_one_per_identity_by_ap_drop():
    ap0 = np.array([1.0, 0.9, 0.8, 0.5, np.nan, 0.7])
    ap1 = np.array([0.2, 0.1, 0.8, 0.4, 0.0, 0.1])
    pids = [1, 1, 2, 3, 4, 5]
    # drops: -0.8, -0.8, 0, -0.1, NaN, -0.6; ties (0, 1) broken by the lower corrupted AP -> 1 first, then pid 1 done
    assert worst_queries(ap0, ap1, pids, 3) == [1, 5, 3]
    assert worst_queries(ap0, ap1, pids, 10) == [1, 5, 3, 2]


def test_record_rows_corrupt_what_the_protocol_corrupted(tmp_path):
    import torch

    from robustreid.viz.ranks import load_crop, record_rows
    from viz_support import make_market

    root = make_market(tmp_path / "m", ids=2)
    q, g = "query/0001_c1s1_000000_00.jpg", ["bounding_box_test/0001_c2s1_000000_00.jpg",
                                           "bounding_box_test/0002_c2s1_000000_00.jpg"]
    rec = {"model": "m", "dataset": "market1501", "root": str(root), "seed": 0, "queries": [q], "query_pids": [1],
           "clean": [{"gallery": g, "match": [True, False]}],
           "corrupted": {"protocol": "query", "corruption": "gaussian_noise", "severity": 5, "pass": 0,
                         "lists": [{"gallery": g[::-1], "match": [False, True]}]}}
    clean, noisy = record_rows(rec, 4, prefix="A ")
    assert (clean["label"], noisy["label"]) == ("A q1 clean", "A q1 gaussian noise s5 (q)")
    assert torch.equal(clean["query"], load_crop(str(root), q))
    assert not torch.equal(noisy["query"], clean["query"])
    assert all(torch.equal(a, load_crop(str(root), p)) for a, p in zip(noisy["gallery"], g[::-1]))
    rec["corrupted"]["protocol"] = "both"
    both = record_rows(rec, 4)[1]
    assert both["label"] == "q1 gaussian noise s5" and not torch.equal(both["gallery"][0], noisy["gallery"][0])
    assert torch.equal(both["query"], noisy["query"])  # the same per-image seed, whatever the protocol
