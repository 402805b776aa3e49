"""The benchmark runner: protocols, identity equality, seeds vs batch size, resume after an interruption, cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from robustreid.robustness import run_benchmark, read_results
from robustreid.robustness.apply import CorruptionTransform
from robustreid.robustness.extract import read_image_any
from robustreid.robustness.protocols import mix_choice
from test_robustness_helpers import (BOOM, StripeModel, corrupted_features, make_dataset, reference_evaluate,
                                     registered_test_corruptions)

METRICS = ("R1", "R5", "R10", "mAP", "mINP")


@pytest.fixture(scope="module", autouse=True)
def _test_corruptions():
    with registered_test_corruptions():
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinyds")
    return make_dataset(root)


def _run(ds, out, **kw):
    kw.setdefault("evaluator", reference_evaluate)
    kw.setdefault("progress", False)
    kw.setdefault("examples", 2)
    model = kw.pop("model", None) or StripeModel()
    return run_benchmark({"stripes": model}, ds, out, **kw), model


def _by(rows, **where):
    return [r for r in rows if all(r[k] == v for k, v in where.items())]


def test_identity_corruption_every_protocol_equals_clean(tiny, tmp_path):
    rows, _ = _run(tiny, tmp_path / "run", modes="sweep,mix", corruptions="test_identity", severities="1,3",
                   passes=1, mix_passes=2, mix_corruptions="test_identity")
    clean = _by(rows, protocol="clean")[0]
    corrupted = [r for r in rows if r["protocol"] != "clean"]
    # 2 severities x 3 protocols + 2 mix passes x 3 protocols
    assert len(corrupted) == 12
    assert 0 < clean["mAP"] < 1  # the tiny task is neither trivial nor hopeless
    for r in corrupted:
        for m in METRICS:
            assert r[m] == clean[m], (r["protocol"], r["corruption"], m)


def test_protocols_corrupt_the_right_side_with_the_seeding_rule(tiny, tmp_path):
    seed = 7
    rows, model = _run(tiny, tmp_path / "run", corruptions="test_noise", severities="2", seed=seed, batch_size=4)
    m = StripeModel()
    ev = lambda qf, gf: reference_evaluate(qf, gf, *[np.array(v) for v in (  # noqa: E731
        [s.pid for s in tiny.query], [s.pid for s in tiny.gallery], [s.camid for s in tiny.query],
        [s.camid for s in tiny.gallery])])
    cq = corrupted_features(m, tiny.query, "tiny", "test_noise", 2, 0, seed, tiny.root)
    cg = corrupted_features(m, tiny.gallery, "tiny", "test_noise", 2, 0, seed, tiny.root)
    from robustreid.robustness.extract import simple_extract

    q = simple_extract(m, tiny.query)
    g = simple_extract(m, tiny.gallery)
    expect = {"clean": ev(q, g), "query": ev(cq, g), "gallery": ev(q, cg), "both": ev(cq, cg)}
    for prot, res in expect.items():
        (r,) = _by(rows, protocol=prot)
        assert r["mAP"] == pytest.approx(res.mAP, abs=1e-9), prot
        assert r["R1"] == pytest.approx(res.cmc[0], abs=1e-9), prot
        assert r["mINP"] == pytest.approx(res.mINP, abs=1e-9), prot
    # the noise really hurts: a test that cannot pass by returning clean numbers
    assert _by(rows, protocol="both")[0]["mAP"] < _by(rows, protocol="clean")[0]["mAP"]
    assert {r["family"] for r in rows} == {"clean", "other"}


def test_same_seed_same_numbers_whatever_batch_size(tiny, tmp_path):
    # (worker counts go through the engine's loader: see tests/test_robustness_cli.py)
    kw = dict(modes="sweep,mix", corruptions="test_noise,test_identity", severities="1,4", passes=1, mix_passes=2,
              seed=3, examples=0)
    a, _ = _run(tiny, tmp_path / "a", batch_size=1, **kw)
    b, _ = _run(tiny, tmp_path / "b", batch_size=5, **kw)
    c, _ = _run(tiny, tmp_path / "c", batch_size=5, **dict(kw, seed=4))
    key = lambda r: (r["protocol"], r["corruption"], r["severity"], r["pass"])  # noqa: E731
    assert len(a) == len(b) == 1 + 3 * 4 + 3 * 2
    for ra, rb in zip(sorted(a, key=key), sorted(b, key=key)):
        assert key(ra) == key(rb)
        assert all(ra[m] == rb[m] for m in METRICS)
    # another seed gives other corrupted numbers (noise cells), but the same clean ones
    na = {key(r): r["mAP"] for r in a}
    nc = {key(r): r["mAP"] for r in c}
    assert na[("clean", "none", 0, 0)] == nc[("clean", "none", 0, 0)]
    assert any(na[k] != nc[k] for k in na if k[1] == "test_noise")


def test_transform_is_batch_independent_and_groups_shapes(tiny):
    imgs = [read_image_any(s.path) for s in tiny.query + tiny.gallery]
    samples = tiny.query + tiny.gallery
    assert len({tuple(i.shape) for i in imgs}) == 2  # two native sizes
    t = CorruptionTransform("tiny", tiny.root, "mix", 0, 1, 5, mix_corruptions=("test_noise", "test_identity"),
                            mix_severities=(1, 5))
    whole = t(imgs, samples)
    singles = [t([im], [s])[0] for im, s in zip(imgs, samples)]
    for w, s, im in zip(whole, singles, imgs):
        assert w.shape == im.shape and torch.equal(w, s)
    # the input list is untouched and the mix choices follow mix_choice
    assert torch.equal(imgs[0], read_image_any(samples[0].path))
    rel = "query/0001_c1_0.png"
    c, sev = mix_choice("tiny", rel, 1, 5, ("test_noise", "test_identity"), (1, 5))
    assert t.choice(samples[0].path) == (c, sev)
    choices = {t.choice(s.path) for s in samples}
    assert len(choices) > 1 and choices <= {(a, b) for a in ("test_noise", "test_identity") for b in (1, 5)}


def test_resume_after_interruption_loses_only_the_cell_in_progress(tiny, tmp_path):
    out = tmp_path / "run"
    kw = dict(corruptions="test_noise,test_boom,test_identity", severities="3", seed=1, examples=0,
              protocols="clean,query,both")
    BOOM["armed"] = True
    model = StripeModel()
    with pytest.raises(RuntimeError, match="boom"):
        _run(tiny, out, model=model, **kw)
    done = read_results(out)
    assert [(r["protocol"], r["corruption"]) for r in done] == [
        ("clean", "none"), ("query", "test_noise"), ("both", "test_noise")]
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    before = (out / "results.csv").read_text()
    BOOM["armed"] = False
    try:
        model2 = StripeModel()
        rows, _ = _run(tiny, out, model=model2, **kw)
    finally:
        BOOM["armed"] = True
    assert (out / "results.csv").read_text().startswith(before)  # finished rows untouched
    assert len(rows) == 1 + 2 * 3
    # second run: clean features came from the cache and test_noise was skipped: only 2 corrupted groups x (q+g)
    n = len(tiny.query) + len(tiny.gallery)
    assert model2.images == 2 * n
    # a third run does nothing at all
    model3 = StripeModel()
    _run(tiny, out, model=model3, **kw)
    assert model3.images == 0
    assert len(read_results(out)) == 7


def test_clean_cache_keyed_by_model_and_run_json(tiny, tmp_path):
    out = tmp_path / "run"
    lin = torch.nn.Linear(3, 3)

    class Mod(torch.nn.Module):
        input_size = (16, 8)

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.bn = torch.nn.BatchNorm1d(2)  # 0-dim num_batches_tracked buffer in the state dict
            self.seen = 0

        def forward(self, x):
            self.seen += x.shape[0]
            return StripeModel()(x) * self.w

    m = Mod()
    from robustreid.robustness.extract import simple_extract

    run_benchmark({"mod": m}, tiny, out, protocols="clean", evaluator=reference_evaluate, progress=False,
                  extractor=simple_extract, examples=0, command="robustreid bench test")
    assert (out / "cache" / "mod" / "query.safetensors").exists()
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["seed"] == 0 and meta["command"] == "robustreid bench test"
    assert meta["models"]["mod"]["fingerprint"] and "torch" in meta["versions"]
    # same weights, other folder state: the cache serves the clean features -> no images seen
    m.seen = 0
    (out / "results.csv").unlink()
    (out / "results.jsonl").unlink()
    run_benchmark({"mod": m}, tiny, out, protocols="clean", evaluator=reference_evaluate, progress=False,
                  extractor=simple_extract, examples=0)
    assert m.seen == 0
    # changed weights under the same name in the same folder -> refused with a clear message
    with torch.no_grad():
        m.w.fill_(2.0)
    with pytest.raises(ValueError, match="another checkpoint"):
        run_benchmark({"mod": m}, tiny, out, protocols="clean", evaluator=reference_evaluate, progress=False,
                      extractor=simple_extract, examples=0)
    # another seed in the same folder -> refused
    with pytest.raises(ValueError, match="seed"):
        run_benchmark({"other": StripeModel()}, tiny, out, protocols="clean", seed=9, evaluator=reference_evaluate,
                      progress=False, examples=0)
    del lin


def test_examples_written_for_the_report(tiny, tmp_path):
    rows, _ = _run(tiny, tmp_path / "run", modes="mix", corruptions="test_noise", mix_passes=1, examples=3)
    ex = json.loads((tmp_path / "run" / "examples" / "stripes.json").read_text())
    assert len(ex["queries"]) == 3 and len(ex["clean"]) == 3
    assert ex["corrupted"]["corruption"] == "mix" and len(ex["corrupted"]["lists"]) == 3
    q0 = ex["clean"][0]
    assert len(q0["gallery"]) == len(q0["match"]) <= 10
    # match flags agree with the identities encoded in the file names
    qpid = ex["query_pids"][0]
    assert q0["match"] == [int(p.split("/")[-1][:4]) == qpid for p in q0["gallery"]]


def test_examples_gain_corrupted_lists_when_a_clean_run_is_resumed_with_corruptions(tiny, tmp_path):
    out = tmp_path / "run"
    _run(tiny, out, protocols="clean", corruptions="test_noise", examples=3)
    ex = json.loads((out / "examples" / "stripes.json").read_text())
    assert len(ex["clean"]) == 3 and "corrupted" not in ex  # nothing corrupted to show yet
    _run(tiny, out, modes="mix", corruptions="test_noise", mix_passes=1, examples=3)
    ex2 = json.loads((out / "examples" / "stripes.json").read_text())
    assert ex2["clean"] == ex["clean"] and ex2["queries"] == ex["queries"]
    assert ex2["corrupted"]["corruption"] == "mix" and len(ex2["corrupted"]["lists"]) == 3
    # the same lists as a run that had the corruptions from the start
    _run(tiny, tmp_path / "fresh", modes="mix", corruptions="test_noise", mix_passes=1, examples=3)
    assert json.loads((tmp_path / "fresh" / "examples" / "stripes.json").read_text()) == ex2


def test_bad_inputs_give_clear_messages(tiny, tmp_path):
    with pytest.raises(ValueError, match="unknown protocol"):
        _run(tiny, tmp_path / "r", protocols="clean,sideways")
    with pytest.raises(ValueError, match="severities"):
        _run(tiny, tmp_path / "r", severities="0-7")
    with pytest.raises(ValueError, match="unknown corruption 'nope'"):
        _run(tiny, tmp_path / "r", corruptions="nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_benchmark({"x": str(tmp_path / "missing.safetensors")}, tiny, tmp_path / "r", evaluator=reference_evaluate)


def test_max_ids_subset_is_deterministic_and_consistent(tiny, tmp_path):
    from robustreid.robustness.runner import subset_identities

    sub = subset_identities(tiny, 3)
    qp = sorted({s.pid for s in sub.query})
    assert qp == [1, 3, 5]  # 6 pids, every second one
    assert {s.pid for s in sub.gallery} == set(qp)
    assert len(sub.gallery) == 3 * 3 and subset_identities(tiny, 3).query == sub.query
    assert subset_identities(tiny, 0) is tiny
    rows, _ = _run(tiny, tmp_path / "run", protocols="clean", max_ids=3, examples=0)
    assert rows[0]["num_query"] == 3 and rows[0]["num_gallery"] == 9
    with pytest.raises(ValueError, match="max_ids"):
        _run(tiny, tmp_path / "run", protocols="clean", max_ids=4, examples=0)


def test_occlusion_family_runs_through_the_same_protocols(tiny, tmp_path):
    from robustreid.corruptions import OCCLUSIONS
    from robustreid.robustness import family_summary

    rows, _ = _run(tiny, tmp_path / "run", corruptions="occlusion", severities="3", examples=0)
    occ = [r for r in rows if r["protocol"] != "clean"]
    assert sorted({r["corruption"] for r in occ}) == sorted(OCCLUSIONS)
    assert {r["family"] for r in occ} == {"occlusion"} and len(occ) == 3 * len(OCCLUSIONS)
    clean = _by(rows, protocol="clean")[0]["mAP"]
    assert any(r["mAP"] < clean for r in occ)
    fam = family_summary(rows)
    assert [(d["protocol"], d["family"]) for d in fam] == [(p, "occlusion") for p in ("query", "gallery", "both")]
