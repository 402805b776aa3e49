"""The digits study runs end to end on a tiny setting and writes its table and figures; resume; CLI."""

import csv

import pytest
import torch
from click.testing import CliRunner

pytest.importorskip("sklearn")

from robustreid.studies.noise_mlp import StudyConfig, run_study, summarise, unchanged_units, weight_tv  # noqa: E402


def test_weight_tv_on_hand_cases():
    flat = torch.ones(2, 64)
    assert weight_tv(flat) == 0.0
    checker = torch.tensor([[(-1.0) ** (i + j) for j in range(8)] for i in range(8)]).view(1, 64)
    # 2*8*7 neighbour pairs, each |difference| 2, over an L1 norm of 64
    assert weight_tv(checker) == pytest.approx(2 * 8 * 7 * 2 / 64)
    # an all-zero unit (never updated) is left out of the mean
    assert weight_tv(torch.cat([checker, torch.zeros(1, 64)])) == pytest.approx(2 * 8 * 7 * 2 / 64)
    w0 = torch.randn(3, 64)
    w = w0.clone()
    w[1] += 0.1
    assert unchanged_units(w, w0) == 2


def test_summary_paired_difference():
    cfg = StudyConfig(seeds=2, sigmas=(0.5,), placements=("input",))
    rows = [{"config": "baseline", "seed": "0", "test_acc": "0.90", "weight_tv": "1"},
            {"config": "baseline", "seed": "1", "test_acc": "0.80", "weight_tv": "1"},
            {"config": "input@0.5", "seed": "0", "test_acc": "0.95", "weight_tv": "0.5"},
            {"config": "input@0.5", "seed": "1", "test_acc": "0.80", "weight_tv": "0.7"}]
    s = {r["config"]: r for r in summarise(rows, cfg)}
    assert s["baseline"]["test_acc_mean"] == pytest.approx(0.85)
    assert s["baseline"]["test_acc_std"] == pytest.approx(0.0707107, rel=1e-5)
    assert s["input@0.5"]["delta_mean"] == pytest.approx(0.025)
    assert (s["input@0.5"]["wins"], s["input@0.5"]["losses"]) == (1, 0)
    assert s["input@0.5"]["weight_tv_mean"] == pytest.approx(0.6)


def test_study_end_to_end_tiny(tmp_path):
    from robustreid.cli.main import cli

    out = tmp_path / "study"
    res = CliRunner().invoke(cli, ["study", "noise-mlp", "--out", str(out), "--seeds", "1", "--epochs", "3",
                                   "--sigmas", "0.3", "--placements", "input,hidden2", "--no-tsne"])
    assert res.exit_code == 0, res.output
    for f in ["runs.csv", "summary.csv", "summary.md", "weights.png", "index.html"]:
        assert (out / f).is_file(), f
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert [r["config"] for r in rows] == ["baseline", "input@0.3", "hidden2@0.3"]
    assert all(0.3 < float(r["test_acc"]) <= 1.0 for r in rows)  # 3 epochs already far above chance (0.1)
    md = (out / "summary.md").read_text()
    assert "hidden2@0.3" in md and "±" in md
    assert (out / "weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # resume: a second run trains nothing new and keeps the rows
    run_study(out, StudyConfig(seeds=1, epochs=3, sigmas=(0.3,), placements=("input", "hidden2"), figures=False,
                               tsne=False), log=lambda *_: None)
    assert len(list(csv.DictReader((out / "runs.csv").open()))) == 3


def test_cli_rejects_bad_placement(tmp_path):
    from robustreid.cli.main import cli

    res = CliRunner().invoke(cli, ["study", "noise-mlp", "--out", str(tmp_path), "--placements", "hidden9"])
    assert res.exit_code != 0 and "hidden9" in res.output
