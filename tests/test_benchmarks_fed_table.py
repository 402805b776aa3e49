"""benchmarks/fed_table.py: the FED study's feature and OEM tables read back from the files the study writes."""

import json

import numpy as np
import pytest

from script_support import load_script


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
