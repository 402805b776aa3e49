"""benchmarks/keep_results.py: a study's result files copied into the repository, nothing else, never fewer cells."""

from __future__ import annotations

import json

import pytest

from robustreid.robustness.results import ResultStore, read_results
from script_support import load_script


@pytest.fixture(scope="module")
def kr():
    return load_script("keep_results")


def _row(model, protocol, corruption, severity, pas, mAP):
    return {"model": model, "dataset": "occluded_duke", "protocol": protocol, "corruption": corruption,
            "family": "clean" if corruption == "none" else "mix", "severity": severity, "pass": pas, "seed": 0,
            "R1": mAP, "R5": mAP, "R10": mAP, "mAP": mAP, "mINP": mAP / 2, "num_query": 3, "num_gallery": 9,
            "extract_s": 0.1, "corrupt_s": 0.0, "metrics_s": 0.0}


def _study(root, passes=2):
    """A study folder as the scripts leave it: results, run.json, features, and what must not be kept."""
    mix = root / "occluded_duke" / "mix" / "fed_lite0"
    store = ResultStore(mix)
    store.append(_row("fed_lite0", "clean", "none", 0, 0, 0.2))
    for p in range(passes):
        store.append(_row("fed_lite0", "both", "mix", 0, p, 0.05 + p / 100))
    (mix / "run.json").write_text(json.dumps({"command": f"robustreid bench --checkpoint m={root}/models/m",
                                              "root": "/data/Occluded_Duke"}))
    (mix / "examples").mkdir()
    (mix / "examples" / "fed_lite0.json").write_text("{}")
    occ = root / "occluded_duke" / "occlusion" / "fed_lite0"
    ResultStore(occ).append(_row("fed_lite0", "both", "occlusion_solid", 1, 0, 0.1))
    feats = root / "occluded_duke" / "features"
    feats.mkdir()
    (feats / "oem_fed_lite0.json").write_text(json.dumps({"auc": 0.7}))
    model = root / "occluded_duke" / "models" / "fed_lite0"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    (root / "logs").mkdir()
    (root / "logs" / "train.log").write_text("log")
    return root


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_keeps_the_result_files_in_the_study_layout_and_nothing_else(kr, tmp_path):
    out, to = _study(tmp_path / "study"), tmp_path / "kept"
    written = kr.keep(out, to, data=["/data/Occluded_Duke", "/data/market1501"])
    assert _files(to) == ["occluded_duke/features/oem_fed_lite0.json",
                          "occluded_duke/mix/fed_lite0/results.csv", "occluded_duke/mix/fed_lite0/run.json",
                          "occluded_duke/occlusion/fed_lite0/results.csv"]
    assert sorted(written) == sorted(to / f for f in _files(to))
    for f in _files(to):
        if f.endswith("mix/fed_lite0/run.json"):  # this machine's paths are not kept
            assert json.loads((to / f).read_text()) == {"command": "robustreid bench --checkpoint m=$OUT/models/m",
                                                        "root": "$DATA/Occluded_Duke"}
        else:
            assert (to / f).read_bytes() == (out / f).read_bytes()
    # the tables read the kept folder as the study's: the same rows
    assert read_results(to / "occluded_duke" / "mix" / "fed_lite0") == read_results(out / "occluded_duke" / "mix"
                                                                                     / "fed_lite0")
    assert kr.keep(out, to, data=["/data/Occluded_Duke", "/data/market1501"]) == []  # nothing changed: nothing written


def test_a_resumed_benchmark_with_more_cells_replaces_the_kept_one(kr, tmp_path):
    to = tmp_path / "kept"
    kr.keep(_study(tmp_path / "a", passes=1), to)
    bigger = _study(tmp_path / "b", passes=3)
    written = kr.keep(bigger, to)
    assert to / "occluded_duke" / "mix" / "fed_lite0" / "results.csv" in written
    assert len(read_results(to / "occluded_duke" / "mix" / "fed_lite0")) == 4  # clean + 3 passes


def test_fewer_cells_are_refused_and_nothing_is_copied(kr, tmp_path, capsys):
    to = tmp_path / "kept"
    kr.keep(_study(tmp_path / "a", passes=3), to)
    smaller = _study(tmp_path / "b", passes=1)
    (smaller / "occluded_duke" / "features" / "new.json").write_text("{}")
    kept = (to / "occluded_duke" / "mix" / "fed_lite0" / "results.csv").read_bytes()
    assert kr.main(["--out", str(smaller), "--to", str(to)]) == 2
    err = capsys.readouterr().err
    assert "mix/fed_lite0/results.csv lacks 2 cell(s)" in err and "refusing" in err
    assert (to / "occluded_duke" / "mix" / "fed_lite0" / "results.csv").read_bytes() == kept
    assert not (to / "occluded_duke" / "features" / "new.json").exists()


def test_a_missing_study_folder_is_named(kr, tmp_path, capsys):
    assert kr.main(["--out", str(tmp_path / "nope"), "--to", str(tmp_path / "kept")]) == 2
    assert "nope is not a folder" in capsys.readouterr().err
