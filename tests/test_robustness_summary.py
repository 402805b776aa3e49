"""Summaries, the mCE-style ratio, the correlation analysis and the result files, on hand-made rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from robustreid.robustness.protocols import build_cells, mix_choice, parse_corruptions, parse_severities
from robustreid.robustness.results import COLUMNS, ResultStore, read_results
from robustreid.robustness.summary import (corruption_matrix, error_ratio, family_summary, protocol_summary,
                                           robustness_table)


def row(model, protocol, corruption, severity, pas, mAP, R1=None, family=None, dataset="d"):
    return {"model": model, "dataset": dataset, "protocol": protocol, "corruption": corruption,
            "family": family or ("clean" if corruption == "none" else "mix" if corruption == "mix" else "noise"),
            "severity": severity, "pass": pas, "seed": 0, "R1": R1 if R1 is not None else mAP, "R5": mAP,
            "R10": mAP, "mAP": mAP, "mINP": mAP / 2, "num_query": 3, "num_gallery": 9, "extract_s": 0.1,
            "corrupt_s": 0.05, "metrics_s": 0.01}


def test_protocol_summary_means_std_and_retained():
    rows = [row("a", "clean", "none", 0, 0, 0.8),
            row("a", "both", "gaussian_noise", 1, 0, 0.6), row("a", "both", "gaussian_noise", 3, 0, 0.4),
            row("a", "both", "mix", 0, 0, 0.5), row("a", "both", "mix", 0, 1, 0.3), row("a", "both", "mix", 0, 2, 0.4)]
    s = {(d["protocol"], d["source"]): d for d in protocol_summary(rows)}
    assert s[("clean", "clean")]["mAP"] == pytest.approx(0.8)
    assert s[("both", "sweep")]["mAP"] == pytest.approx(0.5)
    assert s[("both", "sweep")]["cells"] == 2 and math.isnan(s[("both", "sweep")]["mAP_std"])
    mix = s[("both", "mix")]
    assert mix["mAP"] == pytest.approx(0.4) and mix["passes"] == 3
    assert mix["mAP_std"] == pytest.approx(np.std([0.5, 0.3, 0.4], ddof=1))
    assert mix["retained_mAP"] == pytest.approx(0.4 / 0.8)
    assert mix["mINP"] == pytest.approx(0.2)


def test_family_summary_and_matrix():
    rows = [row("a", "clean", "none", 0, 0, 1.0),
            row("a", "query", "gaussian_noise", 1, 0, 0.9, family="noise"),
            row("a", "query", "gaussian_noise", 2, 0, 0.7, family="noise"),
            row("a", "query", "fog", 1, 0, 0.5, family="weather"),
            row("a", "query", "fog", 1, 1, 0.3, family="weather")]
    fam = {d["family"]: d for d in family_summary(rows)}
    assert fam["noise"]["mAP"] == pytest.approx(0.8) and fam["weather"]["mAP"] == pytest.approx(0.4)
    assert list(fam) == ["noise", "weather"]
    corrs, sevs, m = corruption_matrix(rows, "a", "query")
    assert corrs == ["gaussian_noise", "fog"] and sevs == [1, 2]
    assert m[0, 0] == pytest.approx(0.9) and m[1, 0] == pytest.approx(0.4) and math.isnan(m[1, 1])


@given(st.lists(st.floats(0, 1), min_size=1, max_size=8), st.lists(st.floats(0, 0.99), min_size=1, max_size=8))
@settings(max_examples=40, deadline=None)
def test_error_ratio_is_ratio_of_summed_errors(a, b):
    n = min(len(a), len(b))
    rows = [row("m", "both", f"c{i}", 1, 0, a[i]) for i in range(n)]
    rows += [row("ref", "both", f"c{i}", 1, 0, b[i]) for i in range(n)]
    rows += [row("ref", "both", "only_ref", 1, 0, 0.0)]  # not shared: ignored
    expect = sum(1 - x for x in a[:n]) / sum(1 - x for x in b[:n])
    assert error_ratio(rows, "m", "ref") == pytest.approx(expect)
    assert error_ratio(rows, "ref", "ref") == pytest.approx(1.0)
    assert math.isnan(error_ratio(rows, "m", "nobody"))


def test_robustness_table_lists_every_protocol():
    rows = [row("a", "clean", "none", 0, 0, 0.8), row("a", "query", "fog", 3, 0, 0.4, family="weather"),
            row("b", "clean", "none", 0, 0, 0.6), row("b", "query", "fog", 3, 0, 0.5, family="weather")]
    t = robustness_table(rows, reference_model="b")
    lines = t.splitlines()
    assert len(lines) == 2 + 4
    assert "| a | d | query (sweep) | 1 | 40.0 | 40.0 | 20.0 | 0.500 | 1.200 |" in lines


def test_parsers_and_cells():
    assert parse_severities("1-3,5") == (1, 2, 3, 5)
    assert parse_severities(3) == (3,)
    assert len(parse_corruptions("all")) == 20
    assert parse_corruptions("occlusion")[0].startswith("occlusion")
    assert parse_corruptions("fog,noise,fog") == ("fog", "gaussian_noise", "shot_noise", "impulse_noise",
                                                   "speckle_noise")
    cells = build_cells(("clean", "query", "both"), ("sweep", "mix"), ("fog", "snow"), (1, 5), 1, 3)
    assert len(cells) == 1 + 2 * 2 * 2 + 3 * 2
    assert cells[0].protocol == "clean"
    # the full published sweep: 20 x 5 x 3 protocols + clean
    assert len(build_cells(("clean", "query", "gallery", "both"), ("sweep",), parse_corruptions("all"),
                           (1, 2, 3, 4, 5), 1)) == 301


def test_mix_choice_is_deterministic_and_covers_the_grid():
    corrs, sevs = ("a", "b", "c", "d"), (1, 2, 3, 4, 5)
    picks = [mix_choice("ds", f"q/{i}.jpg", 0, 0, corrs, sevs) for i in range(400)]
    assert picks == [mix_choice("ds", f"q/{i}.jpg", 0, 0, corrs, sevs) for i in range(400)]
    assert {p[0] for p in picks} == set(corrs) and {p[1] for p in picks} == set(sevs)
    counts = np.array([sum(p[0] == c for p in picks) for c in corrs])
    assert counts.min() > 60  # roughly uniform (expected 100 each)
    other_pass = [mix_choice("ds", f"q/{i}.jpg", 1, 0, corrs, sevs) for i in range(400)]
    assert sum(x != y for x, y in zip(picks, other_pass)) > 250


def test_result_store_round_trip_and_jsonl_repair(tmp_path):
    s = ResultStore(tmp_path)
    r1 = row("a", "clean", "none", 0, 0, 0.123456789012345)
    s.append(r1)
    s.append(r1)  # duplicate key: ignored
    s.append(row("a", "query", "fog", 3, 0, 0.5, family="weather"))
    back = read_results(tmp_path)
    assert len(back) == 2 and back[0]["mAP"] == 0.123456789012345 and back[1]["severity"] == 3
    assert (tmp_path / "results.csv").read_text().splitlines()[0] == ",".join(COLUMNS)
    # simulate a crash between the CSV and the JSONL write: the JSONL lacks the last row
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    (tmp_path / "results.jsonl").write_text(lines[0] + "\n")
    ResultStore(tmp_path)
    again = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [a["protocol"] for a in again] == ["clean", "query"]


def _fake_run(d, model_maps, dataset="d"):
    s = ResultStore(d)
    for model, (clean, corrupted) in model_maps.items():
        s.append(row(model, "clean", "none", 0, 0, clean, dataset=dataset))
        if corrupted is not None:
            s.append(row(model, "both", "mix", 0, 0, corrupted, dataset=dataset))
            s.append(row(model, "both", "mix", 0, 1, corrupted, dataset=dataset))
    return d


def test_correlation_analysis_and_cli(tmp_path):
    from scipy import stats

    from robustreid.robustness.correlation import correlation_analysis

    rob = {"m1": (0.8, 0.2), "m2": (0.85, 0.35), "m3": (0.7, 0.3), "m4": (0.9, 0.5)}
    cross = {"m1": (0.10, None), "m2": (0.25, None), "m3": (0.20, None), "m4": (0.22, None), "other": (0.5, None)}
    a = _fake_run(tmp_path / "a", rob, "market")
    b = _fake_run(tmp_path / "b", cross, "duke")
    res = correlation_analysis([a], [b], out_dir=tmp_path / "corr")
    x = [0.2, 0.35, 0.3, 0.5]
    y = [0.10, 0.25, 0.20, 0.22]
    assert res["n"] == 4
    assert res["pearson_r"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert res["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0])
    assert (tmp_path / "corr" / "correlation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from robustreid.cli.main import cli

    out = CliRunner().invoke(cli, ["analyze", "correlation", str(a), "--cross", str(b)])
    assert out.exit_code == 0, out.output
    assert "Pearson r = " + f"{res['pearson_r']:.3f}" in out.output
    bad = CliRunner().invoke(cli, ["analyze", "correlation", str(b), "--cross", str(tmp_path / "a")])
    assert bad.exit_code != 0 and "matched by name" in bad.output


def test_correlation_p_values_exact_for_small_n():
    from scipy import stats

    from robustreid.robustness.correlation import EXACT_MAX_N, correlate

    # hand-worked: three points in order; of the 3! = 6 pairings only the identity and the reversal reach |rho| = 1
    r = correlate([0.1, 0.2, 0.3], [0.05, 0.07, 0.2])
    assert r["p_method"] == "exact"
    assert r["spearman_rho"] == pytest.approx(1.0) and r["spearman_p"] == pytest.approx(2 / 6)
    assert r["pearson_p"] == pytest.approx(2 / 6)  # the reversal gives -r: as extreme, the rest smaller
    # against scipy's own exhaustive permutation test (a different implementation), with a tie in y
    rng = np.random.default_rng(3)
    x = rng.random(6)
    y = np.round(x + rng.normal(0, 0.2, 6), 1)
    y[1] = y[4]
    r = correlate(x, y)
    # (two-sided as |statistic| >= |observed|: scipy's own "two-sided" doubles the smaller tail instead).
    # Permuting y alone against a fixed x gives the 6! = 720 pairings (permuting both samples would enumerate
    # 720² orderings of the same pairings and take minutes); the statistics are vectorised over the permutations,
    # Spearman's rho from its definition (Pearson's r of mid-ranks).
    def pearson(yy, axis):
        return np.abs(stats.pearsonr(np.broadcast_to(x, yy.shape), yy, axis=axis)[0])

    def spearman(yy, axis):
        rx = np.broadcast_to(stats.rankdata(x), yy.shape)
        return np.abs(stats.pearsonr(rx, stats.rankdata(yy, axis=axis), axis=axis)[0])

    for key, fn in (("pearson_p", pearson), ("spearman_p", spearman)):
        ref = stats.permutation_test((y,), fn, permutation_type="pairings", n_resamples=10**6,
                                     alternative="greater", vectorized=True)
        assert ref.pvalue == pytest.approx(r[key], abs=1e-9), key
    assert r["spearman_rho"] == pytest.approx(stats.spearmanr(x, y)[0])
    # above the exact limit: scipy's asymptotic p-values
    x = rng.random(EXACT_MAX_N + 2)
    y = x + rng.normal(0, 0.3, len(x))
    r = correlate(x, y)
    assert r["p_method"] == "asymptotic" and r["spearman_p"] == pytest.approx(stats.spearmanr(x, y)[1])


def test_topk_ranking_filters_like_the_evaluator():
    from robustreid.robustness import topk_ranking

    q = np.array([[1.0, 0.0]])
    g = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.05], [1.0, 0.1]])
    g_pids = np.array([7, 7, 7, 3, -1])
    g_cams = np.array([0, 1, 1, 1, 1])
    (idx, match), = topk_ranking(q, g, np.array([7]), g_pids, np.array([0]), g_cams, k=3)
    # item 0: same pid and camera -> removed; item 4: junk -> removed; then by similarity
    assert idx == [3, 1, 2] and match == [False, True, True]
