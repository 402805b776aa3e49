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
