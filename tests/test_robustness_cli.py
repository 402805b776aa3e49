"""End to end: `robustreid bench` on a real (tiny, untrained) checkpoint and a Market-layout folder, through the
engine's extractor, the data loader and the evaluator; batch-size invariance and resume on that real path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from robustreid.robustness import read_results


def _deps():
    try:
        from robustreid.data import build_loader, load_dataset  # noqa: F401
        from robustreid.engine.checkpoint import load_model, save_weights  # noqa: F401
        from robustreid.engine.extract import extract_features  # noqa: F401
        from robustreid.eval import evaluate  # noqa: F401
        from robustreid.models import build_model  # noqa: F401
    except ImportError as e:
        return str(e)
    return None


pytestmark = pytest.mark.skipif(_deps() is not None, reason=f"needs data/engine/eval/models: {_deps()}")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("market")
    rng = np.random.default_rng(0)
    for split, cams in (("bounding_box_train", (1, 2)), ("query", (1,)), ("bounding_box_test", (1, 2, 3))):
        (root / split).mkdir()
        for pid in range(1, 6):
            base = rng.integers(0, 255, size=(4, 1, 3))
            for cam in cams:
                for j in range(2 if split == "bounding_box_test" else 1):
                    h, w = (32, 16) if (pid + j) % 3 else (36, 18)
                    img = np.repeat(np.repeat(base, h // 4, 0), w, 1).astype(float)
                    img = np.clip(img + rng.normal(0, 30, img.shape), 0, 255).astype(np.uint8)
                    Image.fromarray(img).save(root / split / f"{pid:04d}_c{cam}s1_{j:06d}_00.jpg", quality=95)
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from robustreid.config import to_dict
    from robustreid.engine.checkpoint import save_weights
    from robustreid.engine.config import load_train_config
    from robustreid.models import build_model

    cfg = load_train_config("demo", ["model.input_size=[32,16]"])
    torch.manual_seed(0)
    model = build_model(cfg.model, num_classes=5).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny" / "model.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    d = to_dict(cfg)
    d.setdefault("data", {})["augs"] = [{"name": "corrupt_aug", "corruptions": ["fog", "snow"], "holdout": ["snow"]}]
    save_weights(path, model, config=d)
    return path


def _bench(market, checkpoint, out, *extra):
    from robustreid.cli.main import cli

    args = ["bench", "--checkpoint", str(checkpoint), "--dataset", "market1501", "--root", str(market), "--out",
            str(out), "--corruptions", "gaussian_noise,contrast", "--severities", "2", "--mode", "sweep,mix",
            "--mix-passes", "2", "--device", "cpu", "--no-progress", *extra]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res


def test_bench_cli_end_to_end(market, checkpoint, tmp_path):
    out = tmp_path / "run"
    res = _bench(market, checkpoint, out, "--batch-size", "3")
    rows = read_results(out)
    assert len(rows) == 1 + 2 * 3 + 2 * 3
    assert {r["model"] for r in rows} == {"tiny"}
    assert "query (sweep)" in res.output and "results.csv" in res.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["models"]["tiny"]["train_corruptions"] == ["fog"]
    assert meta["command"].startswith("robustreid bench")
    # another batch size and a loader worker process: same numbers
    _bench(market, f"tiny={checkpoint}", tmp_path / "run7", "--batch-size", "7", "--num-workers", "1")
    other = {(r["protocol"], r["corruption"], r["severity"], r["pass"]): r for r in read_results(tmp_path / "run7")}
    for r in rows:
        o = other[(r["protocol"], r["corruption"], r["severity"], r["pass"])]
        for m in ("R1", "R5", "mAP", "mINP"):
            assert o[m] == pytest.approx(r[m], abs=1e-6)
    # the real evaluator agrees with a per-query computation on the clean features of the cache
    from robustreid.eval.features import load_features
    from test_robustness_helpers import reference_evaluate

    q = load_features(out / "cache" / "tiny" / "query.safetensors")
    g = load_features(out / "cache" / "tiny" / "gallery.safetensors")
    ref = reference_evaluate(q.features, g.features, q.pids, g.pids, q.camids, g.camids)
    clean = [r for r in rows if r["protocol"] == "clean"][0]
    assert clean["mAP"] == pytest.approx(ref.mAP, abs=1e-6) and clean["R1"] == pytest.approx(ref.cmc[0], abs=1e-6)
    # re-running finishes immediately with the same rows
    before = (out / "results.csv").read_text()
    _bench(market, checkpoint, out, "--batch-size", "3")
    assert (out / "results.csv").read_text() == before
    # the report of the real run (its "Inside the models" section and ranked lists have their own tests in
    # test_viz_report.py and test_report_html.py: here one ranked list, no inside section, 4x cheaper)
    from robustreid.cli.main import cli

    rep = CliRunner().invoke(cli, ["report", str(out), "--out", str(out / "report.html"), "--queries", "1",
                                   "--no-inside"])
    assert rep.exit_code == 0, rep.output
    assert "data:image/png;base64" in (out / "report.html").read_text()


def test_bench_cli_bad_input(market, tmp_path):
    from robustreid.cli.main import cli

    res = CliRunner().invoke(cli, ["bench", "--checkpoint", str(tmp_path / "nope.safetensors"), "--dataset",
                                   "market1501", "--root", str(market), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "does not exist" in res.output
    res = CliRunner().invoke(cli, ["bench", "--checkpoint", "x", "--dataset", "market1501", "--root", str(market),
                                   "--out", str(tmp_path / "o"), "--mode", "shuffle"])
    assert res.exit_code != 0 and "unknown mode" in res.output
