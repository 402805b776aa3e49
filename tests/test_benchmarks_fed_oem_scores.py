"""benchmarks/fed_oem_scores.py: OEM scores against the occluder actually pasted (coverage, NPO target, AUC, ρ)."""

import json
import math

import numpy as np
import pytest
import torch

from robustreid.corruptions import OCCLUSIONS
from robustreid.robustness.apply import CorruptionTransform
from script_support import load_script
from serving_support import save_checkpoint, tiny_model
from test_robustness_helpers import make_dataset


@pytest.fixture(scope="module")
def oem():
    return load_script("fed_oem_scores")


def test_coverage_is_the_changed_share_of_each_stripe(oem):
    clean = torch.zeros(3, 8, 4, dtype=torch.uint8)
    occ = clean.clone()
    occ[1, 2:4, :] = 9  # the whole second stripe (rows 2-3), one channel is enough
    occ[0, 4, :2] = 1  # half a row of the third stripe (rows 4-5): 2 of its 8 pixels
    cov = oem.stripe_coverage(clean, occ, 4)
    assert cov.tolist() == [0.0, 1.0, 0.25, 0.0]
    assert clean.sum() == 0  # the caller's crop untouched


def test_summary_from_hand_made_scores(oem):
    targets = np.array([[1, 0, 1, 1], [1, 1, 0, 0]], float)
    coverage = np.array([[0, 0.9, 0, 0.1], [0, 0, 0.6, 0.8]])
    perfect = np.array([[0.9, 0.2, 0.8, 0.7], [0.95, 0.85, 0.3, 0.1]])  # every occluded stripe below every visible one
    d = oem.detection_summary(perfect, targets, coverage)
    assert d["stripes"] == 8 and d["occluded_stripes"] == 3
    assert d["auc"] == 1.0
    assert d["score_occluded"] == pytest.approx((0.2 + 0.3 + 0.1) / 3)
    assert d["score_visible"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.95 + 0.85) / 5)
    # ρ from the definition: Pearson's r of the ranks (average ranks for ties)
    from scipy.stats import rankdata

    rs, rc = rankdata(perfect.ravel()), rankdata(coverage.ravel())
    assert d["spearman_coverage"] == pytest.approx(np.corrcoef(rs, rc)[0, 1])
    assert d["spearman_coverage"] < 0
    # reversed scores: AUC 0; one class only (all visible): AUC undefined, reported NaN, not a number made up
    assert oem.detection_summary(1 - perfect, targets, coverage)["auc"] == 0.0
    allvis = oem.detection_summary(perfect, np.ones_like(targets), coverage)
    assert math.isnan(allvis["auc"]) and math.isnan(allvis["score_occluded"])
    # a constant score says nothing: ρ NaN
    assert math.isnan(oem.detection_summary(np.full_like(perfect, 0.5), targets, coverage)["spearman_coverage"])


def test_measure_pairs_each_score_with_the_pasted_occluder(oem, tmp_path):
    ds = make_dataset(tmp_path / "data", n_ids=3)
    model = tiny_model("fed")
    m = oem.measure(model, ds.query, ds.name, ds.root, [2], batch_size=2)
    n = len(ds.query)
    assert m["clean_scores"].shape == (n, 4)
    assert set(m["conditions"]) == {(c, 2) for c in OCCLUSIONS} | {("npo", 0)}
    # the control: NPO's own occluders and targets; every stripe it calls occluded has changed pixels
    npo = m["conditions"][("npo", 0)]
    assert npo["scores"].shape == npo["targets"].shape == npo["coverage"].shape == (n, 4)
    assert (npo["coverage"][npo["targets"] < 0.5] > 0).all() and (npo["targets"] < 0.5).any()
    # the targets and coverage of one condition recomputed here from the benchmark's own seeded occluder
    q = ds.query[1]
    from robustreid.transforms.decode import read_image

    img = read_image(q.path)
    occ = CorruptionTransform(ds.name, ds.root, "occlusion_solid", 2, 0, 0).apply([img], [q.path])[0]
    d = m["conditions"][("occlusion_solid", 2)]
    assert np.allclose(d["coverage"][1], oem.stripe_coverage(img, occ, 4).numpy())
    assert d["coverage"][1].sum() > 0  # something was pasted
    # the scores are the model's own on that occluded crop
    from robustreid.viz.source import model_batch

    with torch.no_grad():
        want = model.occlusion_scores(model_batch(model, [occ]))[0].numpy()
    assert np.allclose(d["scores"][1], want, atol=1e-6)
    assert ((d["scores"] >= 0) & (d["scores"] <= 1)).all()


def test_cli_writes_the_summary_and_refuses_a_model_without_oem(oem, tmp_path, capsys, monkeypatch):
    ds = make_dataset(tmp_path / "data", n_ids=3)
    monkeypatch.setattr(oem, "open_dataset", lambda name, root: ds)  # a hand-made set, not a named layout
    ck = save_checkpoint(tiny_model("fed"), tmp_path / "fed" / "model.safetensors")
    out = tmp_path / "oem.json"
    args = ["--checkpoint", f"fed={ck}", "--dataset", "folder", "--root", ds.root, "--severities", "3",
            "--device", "cpu", "--out", str(out)]
    assert oem.main(args) == 0
    r = json.loads(out.read_text())["models"]["fed"]
    assert r["queries"] == len(ds.query) and len(r["clean_score_per_stripe"]) == 4
    assert set(r["conditions"]) == {f"{c}:3" for c in OCCLUSIONS} | {"npo"}
    assert "| `fed` | occlusion_solid:3 |" in capsys.readouterr().out
    bot = save_checkpoint(tiny_model("bot_resnet"), tmp_path / "bot" / "model.safetensors")
    assert oem.main(["--checkpoint", f"bot={bot}", "--dataset", "folder", "--root", ds.root, "--device", "cpu"]) == 2
    assert "bot: the model has no occlusion erasing module" in capsys.readouterr().err
    # the same inputs again: the file is kept and its table printed, nothing measured
    monkeypatch.setattr(oem, "measure", lambda *a, **k: pytest.fail("measured again"))
    before = out.read_bytes()
    assert oem.main(args) == 0 and out.read_bytes() == before
    printed = capsys.readouterr()
    assert "kept" in printed.err and "| `fed` | occlusion_solid:3 |" in printed.out
    # other inputs into the same file: refused, the file untouched
    assert oem.main([*args[:7], "1", *args[8:]]) == 2 and out.read_bytes() == before
    assert "exists with other inputs" in capsys.readouterr().err
    # bad arguments: a message naming the option, no traceback
    for bad, msg in ((["--severities", "1,x"], "--severities"), (["--queries", "-1"], "--queries")):
        assert oem.main([*args[:6], *bad, "--device", "cpu"]) == 2
        assert msg in capsys.readouterr().err
