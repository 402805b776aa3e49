"""Issue 17, evaluation: features without information are refused, ties decided by gallery index are counted,
queries without a true match are reported (and `null` in JSON), damaged feature files name the field."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from robustreid.cli.main import cli
from robustreid.eval import evaluate, evaluate_distances, load_features, save_features


def _labels(nq, ng):
    """Query i has pid i % 3, camera 0; gallery j has pid j % 3, camera 1 (every query has positives)."""
    return np.arange(nq) % 3, np.arange(ng) % 3, np.zeros(nq, int), np.ones(ng, int)


# ------------------------------------------------------------------------------------------- no information
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_constant_and_empty_features_are_refused(metric):
    labels = _labels(4, 9)
    for qf, gf, what in ((np.zeros((4, 8)), np.zeros((9, 8)), "gallery feature rows are equal"),
                         (np.full((4, 8), 0.5), np.full((9, 8), 0.5), "gallery feature rows are equal"),
                         (np.zeros((4, 0)), np.zeros((9, 0)), "dimension 0")):
        with pytest.raises(ValueError, match=what):
            evaluate(qf.astype(np.float32), gf.astype(np.float32), *labels, metric=metric)


def test_zero_norm_rows_refused_under_cosine_only():
    rng = np.random.default_rng(0)
    qf, gf = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((9, 6)).astype(np.float32)
    gf[[2, 5]] = 0
    with pytest.raises(ValueError, match=r"gallery_features: 2 rows .*zero"):
        evaluate(qf, gf, *_labels(4, 9), metric="cosine")
    res = evaluate(qf, gf, *_labels(4, 9), metric="euclidean")  # a zero vector has a Euclidean distance
    assert res.num_valid_queries == 4


# ------------------------------------------------------------------------------------------------ ties
def tied_queries(dist, qp, gp, qc, gc):
    """Reference from the definition: queries where some positive has exactly the distance of some valid
    negative (their order then comes from the gallery index alone)."""
    n = 0
    for i in range(len(qp)):
        valid = (gp != -1) & ~((gp == qp[i]) & (gc == qc[i]))
        pos = valid & (gp == qp[i])
        neg = valid & (gp != qp[i])
        if np.intersect1d(dist[i, pos], dist[i, neg]).size:
            n += 1
    return n


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 14), st.integers(1, 4), st.integers(0, 2**31 - 1),
       st.sampled_from([np.float32, np.float64, np.int64]), st.sampled_from([None, 700]))
def test_ties_broken_by_index_are_counted(nq, ng, levels, seed, dtype, budget):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(-1, 3, nq), rng.integers(-1, 3, ng)
    qc, gc = rng.integers(0, 2, nq), rng.integers(0, 2, ng)
    dist = rng.integers(0, levels + 1, (nq, ng))
    res = evaluate_distances(dist.astype(dtype), qp, gp, qc, gc, memory_budget=budget)
    assert res.num_tied_queries == tied_queries(dist, qp, gp, qc, gc)


def test_ties_between_positives_only_do_not_count():
    # gallery: two positives at the same distance, then a negative further away
    r = evaluate_distances(np.array([[1.0, 1.0, 2.0]], np.float32), [0], [0, 0, 5], [0], [1, 1, 1])
    assert r.num_tied_queries == 0
    r = evaluate_distances(np.array([[1.0, 2.0, 1.0]], np.float32), [0], [0, 0, 5], [0], [1, 1, 1])
    assert r.num_tied_queries == 1
    # from features: a duplicated negative of the positive ties on both metrics
    qf = np.array([[1.0, 0.0]], np.float32)
    gf = np.array([[0.6, 0.8], [0.6, 0.8], [0.0, 1.0]], np.float32)
    for metric in ("cosine", "euclidean"):
        assert evaluate(qf, gf, [1], [1, 2, 3], [0], [1, 1, 1], metric=metric).num_tied_queries == 1


# ------------------------------------------------------------------------------------------------ the CLI
def _cli(*args):
    return CliRunner().invoke(cli, list(args))


def _strict_json(text):
    def bad(name):
        raise AssertionError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=bad)


def _features(path, qf, gf, qp, gp, qc, gc):
    save_features(path, np.concatenate([qf, gf]), np.concatenate([qp, gp]), np.concatenate([qc, gc]),
                  ["query"] * len(qf) + ["gallery"] * len(gf), [f"{i}.jpg" for i in range(len(qf) + len(gf))])
    return str(path)


def test_cli_refuses_constant_features(tmp_path):
    f = _features(tmp_path / "f.safetensors", np.zeros((4, 8), np.float32), np.zeros((9, 8), np.float32),
                  *_labels(4, 9))
    r = _cli("eval", "--features", f)
    assert r.exit_code != 0 and "gallery feature rows are equal" in r.output and "f.safetensors" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_cli_warns_about_ties_and_records_them(tmp_path):
    rng = np.random.default_rng(1)
    qf = rng.standard_normal((4, 8)).astype(np.float32)
    gf = np.repeat(rng.standard_normal((3, 8)).astype(np.float32), 3, axis=0)  # each vector three times
    qp, gp, qc, gc = _labels(4, 9)
    gp = np.array([0, 1, 2, 1, 2, 0, 2, 0, 1])  # each triple of equal vectors holds three identities
    f = _features(tmp_path / "f.safetensors", qf, gf, qp, gp, qc, gc)
    r = _cli("eval", "--features", f, "--json", str(tmp_path / "m.json"))
    assert r.exit_code == 0, r.output
    assert "warning" in r.output.lower() and "4 of 4 queries" in r.output and "gallery index" in r.output
    assert _strict_json((tmp_path / "m.json").read_text())["num_tied_queries"] == 4


def test_cli_queries_without_a_true_match(tmp_path):
    rng = np.random.default_rng(2)
    qf, gf = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((9, 8)).astype(np.float32)
    qp, gp, qc, gc = _labels(4, 9)
    qp = np.array([0, 1, 7, 8])  # pids 7 and 8 are not in the gallery
    out = tmp_path / "m.json"
    r = _cli("eval", "--features", _features(tmp_path / "a.safetensors", qf, gf, qp, gp, qc, gc), "--tpr",
             "--json", str(out))
    assert r.exit_code == 0, r.output
    assert "2 of 4 queries skipped" in r.output and "no gallery image of the same person" in r.output
    d = _strict_json(out.read_text())
    assert d["num_valid_queries"] == 2 and d["num_skipped_queries"] == 2
    # none valid: a failure, not R1 0.00 beside mAP nan
    r = _cli("eval", "--features", _features(tmp_path / "b.safetensors", qf, gf, qp + 10, gp, qc, gc),
             "--json", str(tmp_path / "none.json"))
    assert r.exit_code != 0 and "no query" in r.output and "4 queries" in r.output
    assert not (tmp_path / "none.json").exists()
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_json_writes_null_for_undefined_values(tmp_path, monkeypatch):
    real = evaluate

    def with_nan(*a, **k):
        res = real(*a, **k)
        res.tpr_at_fpr = {1e-4: float("nan")}
        return res

    monkeypatch.setattr("robustreid.eval.evaluate", with_nan)
    rng = np.random.default_rng(3)
    f = _features(tmp_path / "f.safetensors", rng.standard_normal((4, 8)).astype(np.float32),
                  rng.standard_normal((9, 8)).astype(np.float32), *_labels(4, 9))
    r = _cli("eval", "--features", f, "--json", str(tmp_path / "m.json"))
    assert r.exit_code == 0, r.output
    assert _strict_json((tmp_path / "m.json").read_text())["TPR@FPR=0.0001"] is None


# ------------------------------------------------------------------------------------------- feature files
def _raw(path, n=4, d=3, *, drop=(), meta_paths="default", **override):
    tensors = {"features": (np.ones((n, d)) * np.arange(n)[:, None]).astype(np.float32), "pids": np.arange(n, dtype=np.int64),
               "camids": np.zeros(n, np.int64), "split": (np.arange(n) % 2).astype(np.int8)}
    tensors.update(override)
    for k in drop:
        tensors.pop(k)
    meta = {"format": "robustreid.features/1"}
    if meta_paths == "default":
        meta["paths"] = json.dumps([f"{i}.jpg" for i in range(n)])
    elif meta_paths is not None:
        meta["paths"] = meta_paths
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("kw, msg", [
    (dict(split=np.array([0, 1, 5, 1], np.int8)), r"split: 1 row has an unknown code \(5\)"),
    (dict(pids=np.arange(3, dtype=np.int64)), "pids has 3 entries but features has 4 rows"),
    (dict(camids=np.zeros(5, np.int64)), "camids has 5 entries but features has 4 rows"),
    (dict(meta_paths=json.dumps(["a.jpg"])), "paths has 1 entries but features has 4 rows"),
    (dict(meta_paths="{not json"), "metadata 'paths' is not a JSON list"),
    (dict(meta_paths=json.dumps({"a": 1})), "metadata 'paths' is not a JSON list"),
    (dict(meta_paths=None), "metadata 'paths' is missing"),
    (dict(features=np.ones(4, np.float32)), r"features: expected an N×D matrix, got shape \(4,\)"),
    (dict(pids=np.ones(4, np.float32)), "pids: expected integers, got float32"),
    (dict(split=np.zeros((4, 1), np.int8)), r"split: expected one value per row, got shape \(4, 1\)"),
    (dict(features=np.ones((4, 3), np.int64)), "features: expected floating-point values, got int64"),
])
def test_damaged_feature_files_name_the_field(tmp_path, kw, msg):
    path = _raw(tmp_path / "f.safetensors", **kw)
    with pytest.raises(ValueError, match=msg) as e:
        load_features(path)
    assert "f.safetensors" in str(e.value)
    r = _cli("eval", "--features", str(path))
    assert r.exit_code != 0 and "f.safetensors" in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_valid_feature_file_round_trip(tmp_path):
    fs = load_features(_raw(tmp_path / "f.safetensors"))
    assert len(fs) == 4 and fs.paths == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
    assert len(fs.select("query")) == 2 and len(fs.select("gallery")) == 2
