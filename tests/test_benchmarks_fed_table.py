"""benchmarks/fed_table.py: the FED study's feature and OEM tables read back from the files the study writes."""

import json

import numpy as np
import pytest

from robustreid.robustness import read_results, run_benchmark
from script_support import load_script
from test_robustness_helpers import StripeModel, make_dataset, reference_evaluate


@pytest.fixture(scope="module")
def table():
    return load_script("fed_table")


def test_feature_and_oem_tables_read_their_own_files(table, tmp_path):
    oem = load_script("fed_oem_scores")
    folder = tmp_path / "occluded_duke" / "features"
    folder.mkdir(parents=True)
    (folder / "fed_lite0.json").write_text(json.dumps({"fprime": {"R1": 0.5, "mAP": 0.4},
                                                       "fdm": {"R1": 0.45, "mAP": 0.3}}))
    # fed_oem_scores.py's own summary of a hand-made measurement: the control separates perfectly, the benchmark's
    # occluders not at all
    t = np.array([[1.0, 0.0, 1.0, 1.0]] * 2)
    cov = np.array([[0.0, 0.8, 0.0, 0.0]] * 2)
    good, flat = np.array([[0.9, 0.2, 0.9, 0.9]] * 2), np.array([[0.9, 0.9, 0.9, 0.9]] * 2)
    m = {"clean_scores": np.array([[1.0, 0.8, 0.6, 0.4], [1.0, 0.8, 0.6, 0.4]]),
         "conditions": {("npo", 0): {"scores": good, "targets": t, "coverage": cov},
                        ("occlusion_solid", 3): {"scores": flat, "targets": t, "coverage": cov}}}
    summary = oem.summarise(m)
    (folder / "oem_fed_lite0.json").write_text(json.dumps({"meta": {}, "models": {"fed_lite0": summary}}))

    feats = table.features_table(tmp_path, ["occluded_duke"])
    assert feats[2:] == ["| Occluded-Duke | `fed_lite0` | 50.0 / 40.0 | 45.0 / 30.0 |"]  # the OEM file is not read here
    rows = table.oem_table(tmp_path, ["occluded_duke"])
    assert len(rows) == 3
    cells = [c.strip() for c in rows[2].strip("|").split("|")]
    assert cells[:4] == ["Occluded-Duke", "`fed_lite0`", "1.000 (0.20 / 0.90)", "0.500 (0.90 / 0.90)"]
    assert cells[4] == "—"  # a constant score: no ρ
    assert cells[5] == "1.00 / 0.80 / 0.60 / 0.40"
    assert table.oem_table(tmp_path / "none", ["occluded_duke"]) == []


class _MeanColour(StripeModel):
    """A weaker model than the stripes: the mean colour of the whole crop (3-d)."""

    fingerprint = "mean-colour-v1"

    def __call__(self, x):
        return super().__call__(x).reshape(x.shape[0], 3, 4).mean(dim=2)


def test_set_table_orders_the_ablation_and_reports_each_steps_change(table, tmp_path):
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "study"
    kw = dict(protocols="clean", evaluator=reference_evaluate, progress=False, examples=0)
    models = {"fed_lite0": StripeModel(), "bot_lite0": _MeanColour(), "zz_other": StripeModel()}
    for ds_name in ("occluded_duke", "market1501"):
        for name, model in models.items():
            run_benchmark({name: model}, ds, out / ds_name / "mix" / name, **kw)
    clean = {m: [r["mAP"] for r in read_results(out / "occluded_duke" / "mix" / m)][0] for m in models}
    assert clean["fed_lite0"] != clean["bot_lite0"]  # the case has a change to report

    rows = table.set_table(out, "occluded_duke")
    cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows[4:]]
    assert [c[0] for c in cells] == ["`bot_lite0`", "`fed_lite0`"]  # the ablation's order, not the folder's
    assert cells[0][2] == "—" and cells[1][2] == f"{100 * (clean['fed_lite0'] - clean['bot_lite0']):+.1f}"
    assert cells[1][1].split(" / ")[1] == f"{100 * clean['fed_lite0']:.1f}"
    rows = table.set_table(out, "occluded_duke", others=True)
    others = [[c.strip() for c in r.strip("|").split("|")] for r in rows[4:]]
    assert others[2][0] == "`zz_other`" and others[2][2] == "—"  # outside the ablation: no Δ

    bar = table.bar_lines(out, "bot_lite0", "fed_lite0")
    assert len(bar) == 1 and bar[0].startswith("- Occluded-Duke:")  # FED's bar is on Occluded-Duke only
    d = 100 * (clean["fed_lite0"] - clean["bot_lite0"])
    assert f"{d:+.1f} ({'meets' if d >= 2 else 'misses'} the bar of +2)" in bar[0]
