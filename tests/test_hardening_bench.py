"""Issue 17, benchmark: a run directory pins what its cells depend on (dataset root and files, checkpoint, seed,
protocol settings) and refuses to resume with other values, saying which changed and how to start a new run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from robustreid.data.sample import ReidDataset
from robustreid.robustness import read_results, run_benchmark
from test_robustness_helpers import StripeModel, make_dataset, reference_evaluate


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("a") / "tiny")


def _run(ds, out, **kw):
    kw.setdefault("evaluator", reference_evaluate)
    return run_benchmark({"stripes": StripeModel()}, ds, out, protocols="clean", corruptions="gaussian_noise",
                         severities="1", progress=False, examples=0, **kw)


def _moved(ds, root):
    """The same dataset object read from another root."""
    shutil.copytree(ds.root, root)
    swap = lambda s: s.replace(path=s.path.replace(ds.root, str(root)))  # noqa: E731
    return ReidDataset(ds.name, [], [swap(s) for s in ds.query], [swap(s) for s in ds.gallery], str(root))


def test_another_root_is_refused_and_run_json_kept(tiny, tmp_path):
    out = tmp_path / "run"
    rows = _run(tiny, out)
    before = (out / "run.json").read_text()
    other = _moved(tiny, tmp_path / "copy")
    with pytest.raises(ValueError, match=r"(?s)dataset at .*tiny.*this one is at .*copy.*another --out"):
        _run(other, out)
    assert (out / "run.json").read_text() == before and read_results(out) == rows
    assert _run(tiny, out) == rows  # the same root resumes (nothing to do)


def test_changed_files_under_the_same_root_are_refused(tiny, tmp_path):
    ds = _moved(tiny, tmp_path / "d")
    out = tmp_path / "run"
    _run(ds, out)
    # same names, other content (what `robustreid corrupt` writes into a copy has the same names)
    p = ds.gallery[0].path
    Image.fromarray(np.zeros((40, 20, 3), np.uint8)).save(p)
    with pytest.raises(ValueError, match=r"(?s)files .* have changed.*another --out"):
        _run(ds, out)
    # one image fewer
    ds2 = ReidDataset(ds.name, [], ds.query, ds.gallery[1:], ds.root)
    with pytest.raises(ValueError, match="have changed"):
        _run(ds2, out)


def test_seed_and_protocol_settings_stay_pinned(tiny, tmp_path):
    out = tmp_path / "run"
    _run(tiny, out)
    with pytest.raises(ValueError, match="seed=0.*seed=1"):
        _run(tiny, out, seed=1)
    with pytest.raises(ValueError, match="mix_severities"):
        _run(tiny, out, mix_severities="3")


def test_no_valid_query_is_refused(tiny, tmp_path):
    lonely = ReidDataset(tiny.name, [], [s.replace(pid=99) for s in tiny.query], tiny.gallery, tiny.root)
    with pytest.raises(ValueError, match=r"no query has a true match"):
        _run(lonely, tmp_path / "run")
    assert not (tmp_path / "run" / "results.csv").exists()


def _market(root, dark=False):
    rng = np.random.default_rng(0)
    for split, cams in (("query", (1,)), ("bounding_box_test", (2, 3))):
        (root / split).mkdir(parents=True)
        for pid in range(1, 4):
            for cam in cams:
                img = rng.integers(0, 255, (16, 8, 3), dtype=np.uint8) // (4 if dark else 1)
                Image.fromarray(img).save(root / split / f"{pid:04d}_c{cam}s1_000001_00.png")
    return root


def test_bench_cli_refuses_another_root(tmp_path):
    from robustreid.cli.main import cli
    from robustreid.engine.checkpoint import save_weights
    from robustreid.engine.config import load_train_config
    from robustreid.models import build_model

    cfg = load_train_config("base", ["model.backbone=resnet18", "model.backbone_kwargs={width: 0.125}",
                                     "model.input_size=[16, 8]"])
    torch.manual_seed(0)
    ckpt = save_weights(tmp_path / "m" / "model.safetensors", build_model(cfg.model, 3), cfg.to_dict())
    a, b = _market(tmp_path / "a"), _market(tmp_path / "b", dark=True)  # test-only sets: no train folder

    def bench(root):
        return CliRunner().invoke(cli, ["bench", "--checkpoint", str(ckpt), "--dataset", "market1501", "--root",
                                        str(root), "--out", str(tmp_path / "run"), "--protocols", "clean",
                                        "--corruptions", "contrast", "--severities", "1", "--device", "cpu",
                                        "--no-progress", "--examples", "0"])

    r = bench(a)
    assert r.exit_code == 0, r.output
    r = bench(b)
    assert r.exit_code != 0 and "nothing to do" not in r.output
    assert "another --out" in r.output and str(b) in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["config"]["root"] == str(a)


def test_cells_record_valid_skipped_and_tied_query_counts(tiny, tmp_path):
    # one query's identity is removed from the gallery: it has no true match, so it is skipped, and the counts
    # say so in every cell (the real evaluator; ties are counted by it)
    gone = tiny.query[0].pid
    ds = ReidDataset(tiny.name, [], tiny.query, [s for s in tiny.gallery if s.pid != gone], tiny.root)
    rows = _run(ds, tmp_path / "run", evaluator=None)
    assert rows and all(r["num_valid"] == len(ds.query) - 1 and r["num_skipped"] == 1 for r in rows)
    assert all(0 <= r["num_tied"] <= r["num_valid"] for r in rows)
    back = json.loads((tmp_path / "run" / "results.jsonl").read_text().splitlines()[0])
    assert back["num_skipped"] == 1


def test_results_file_of_an_older_version_is_upgraded_in_place(tmp_path):
    from robustreid.robustness.results import COLUMNS, COUNT_COLUMNS, ResultStore

    old_cols = [c for c in COLUMNS if c not in COUNT_COLUMNS]
    old = dict(model="m", dataset="d", protocol="clean", corruption="none", severity=0, family="clean", seed=0,
               R1=0.5, R5=0.6, R10=0.7, mAP=0.25, mINP=0.1, num_query=4, num_gallery=9, extract_s=1.0,
               corrupt_s=0.0, metrics_s=0.1, **{"pass": 0})
    (tmp_path / "results.csv").write_text(",".join(old_cols) + "\n" + ",".join(str(old[c]) for c in old_cols) + "\n")
    store = ResultStore(tmp_path)
    store.append(dict(old, protocol="query", corruption="fog", num_valid=4, num_skipped=0, num_tied=1))
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == 3
    a, b = read_results(tmp_path)
    assert a["mAP"] == 0.25 and a["num_tied"] is None  # unknown for the old row, not a made-up 0
    assert (b["num_valid"], b["num_skipped"], b["num_tied"]) == (4, 0, 1)
    assert [json.loads(x)["num_tied"] for x in (tmp_path / "results.jsonl").read_text().splitlines()] == [None, 1]


def test_bench_cli_warns_about_skipped_and_tied_cells():
    from robustreid.cli.bench import _count_warnings

    base = dict(model="m", protocol="both", corruption="fog", severity=3)
    assert _count_warnings([dict(base, num_valid=100, num_skipped=0, num_tied=0)]) == []
    assert _count_warnings([dict(base, num_valid=None, num_skipped=None, num_tied=None)]) == []  # older rows
    assert _count_warnings([dict(base, num_valid=1000, num_skipped=0, num_tied=9)]) == []  # < 1 %: normal
    w = _count_warnings([dict(base, num_valid=100, num_skipped=2, num_tied=0),
                         dict(base, corruption="snow", num_valid=100, num_skipped=2, num_tied=40)])
    assert len(w) == 2 and "2 queries skipped" in w[0] and "snow" in w[1] and "40 of 100" in w[1]
