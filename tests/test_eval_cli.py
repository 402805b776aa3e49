"""`robustreid eval`: metrics from a feature file, JSON output, clear errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from robustreid.cli.main import cli
from robustreid.eval import evaluate, save_features


@pytest.fixture()
def feature_file(tmp_path):
    rng = np.random.default_rng(0)
    nq, ng, ids = 12, 60, 6
    pids = np.concatenate([rng.integers(0, ids, nq), rng.integers(0, ids, ng)])
    centers = rng.standard_normal((ids, 8))
    feats = (centers[pids] + 0.8 * rng.standard_normal((nq + ng, 8))).astype(np.float32)
    cams = np.concatenate([np.zeros(nq, int), rng.integers(0, 3, ng)])
    split = ["query"] * nq + ["gallery"] * ng
    path = tmp_path / "f.safetensors"
    save_features(path, feats, pids, cams, split, [f"{i}.jpg" for i in range(nq + ng)])
    return path, feats[:nq], feats[nq:], pids[:nq], pids[nq:], cams[:nq], cams[nq:]


def test_eval_features_table_and_json(feature_file, tmp_path):
    path, qf, gf, qp, gp, qc, gc = feature_file
    out = tmp_path / "m.json"
    r = CliRunner().invoke(cli, ["eval", "--features", str(path), "--json", str(out)])
    assert r.exit_code == 0, r.output
    ref = evaluate(qf, gf, qp, gp, qc, gc)
    assert "| R1 | R5 | R10 | mAP | mINP |" in r.output
    assert f"{100 * ref.mAP:.2f}" in r.output
    d = json.loads(out.read_text())
    assert d["mAP"] == pytest.approx(ref.mAP) and d["R1"] == pytest.approx(ref.cmc[0])
    assert d["num_valid_queries"] == ref.num_valid_queries and len(d["cmc"]) == 50


def test_eval_rerank_euclidean_options(feature_file, tmp_path):
    path, qf, gf, qp, gp, qc, gc = feature_file
    out = tmp_path / "m.json"
    r = CliRunner().invoke(cli, ["eval", "--features", str(path), "--rerank", "--metric", "euclidean", "--k1", "5",
                                 "--k2", "2", "--max-rank", "10", "--tpr", "--json", str(out)])
    assert r.exit_code == 0, r.output
    ref = evaluate(qf, gf, qp, gp, qc, gc, metric="euclidean", rerank=True, k1=5, k2=2, max_rank=10)
    d = json.loads(out.read_text())
    assert d["mAP"] == pytest.approx(ref.mAP) and d["rerank"] and len(d["cmc"]) == 10
    assert "TPR@FPR=0.01" in d


def test_eval_errors(feature_file, tmp_path):
    path = feature_file[0]
    runner = CliRunner()
    r = runner.invoke(cli, ["eval", "--features", str(tmp_path / "nope.safetensors")])
    assert r.exit_code != 0 and "does not exist" in r.output
    r = runner.invoke(cli, ["eval"])
    assert r.exit_code != 0 and "exactly one of" in r.output
    r = runner.invoke(cli, ["eval", "--checkpoint", "x"])
    assert r.exit_code != 0 and "--dataset" in r.output
    only_q = tmp_path / "q.safetensors"
    save_features(only_q, np.zeros((2, 4), np.float32), [1, 2], [0, 0], ["query", "query"], ["a", "b"])
    r = runner.invoke(cli, ["eval", "--features", str(only_q)])
    assert r.exit_code != 0 and "needs query and gallery rows" in r.output
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a file")
    r = runner.invoke(cli, ["eval", "--features", str(bad)])
    assert r.exit_code != 0 and "bad.safetensors" in r.output and "Traceback" not in r.output


def test_eval_checkpoint_mode_calls_extraction(feature_file, monkeypatch):
    import robustreid.engine.extract as ex
    from robustreid.eval import load_features

    path, qf, gf, qp, gp, qc, gc = feature_file
    calls = {}

    def fake(checkpoint, dataset, root, *, splits=("query", "gallery"), device=None, batch_size=128, flip=False,
             feature=None):
        calls.update(checkpoint=checkpoint, dataset=dataset, root=root, splits=splits, flip=flip, feature=feature)
        return load_features(path)

    monkeypatch.setattr(ex, "extract_dataset_features", fake)
    r = CliRunner().invoke(cli, ["eval", "--checkpoint", "runs/x", "--dataset", "synthetic", "--root", "/d", "--flip"])
    assert r.exit_code == 0, r.output
    assert calls == {"checkpoint": "runs/x", "dataset": "synthetic", "root": "/d", "splits": ("query", "gallery"),
                     "flip": True, "feature": None}
    assert f"{100 * evaluate(qf, gf, qp, gp, qc, gc).mAP:.2f}" in r.output
