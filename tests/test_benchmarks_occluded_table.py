"""benchmarks/occluded_table.py: the joint occlusion × corruption table read back from real benchmark folders."""

import math

import pytest

from robustreid.robustness import read_results, run_benchmark
from script_support import load_script
from test_robustness_helpers import StripeModel, make_dataset, reference_evaluate, registered_test_corruptions


@pytest.fixture(scope="module")
def table():
    return load_script("occluded_table")


def test_joint_table_and_its_png_come_from_the_benchmark_rows(table, tmp_path):
    ds = make_dataset(tmp_path / "data")
    base = tmp_path / "occluded_duke"
    kw = dict(evaluator=reference_evaluate, progress=False, examples=0)
    with registered_test_corruptions():
        run_benchmark({"stripes": StripeModel()}, ds, base / "mix" / "stripes", modes="mix", corruptions="test_noise",
                      mix_passes=1, **kw)
    run_benchmark({"stripes": StripeModel()}, ds, base / "occlusion" / "stripes", protocols="clean,both",
                  corruptions="occlusion_solid", severities="1,3", **kw)
    joint = table.joint_table(base, ["stripes"])
    mix_rows = read_results(base / "mix" / "stripes")
    occ_rows = read_results(base / "occlusion" / "stripes")
    clean = [r["mAP"] for r in mix_rows if r["protocol"] == "clean"][0]
    both = [r["mAP"] for r in mix_rows if r["protocol"] == "both"]
    assert joint[(0, "clean", 0)]["stripes"] == pytest.approx(clean)
    assert joint[(0, "corruption mix, both", 0)]["stripes"] == pytest.approx(sum(both) / len(both))
    for sev in (1, 3):
        want = [r["mAP"] for r in occ_rows if r["protocol"] == "both" and int(r["severity"]) == sev][0]
        assert joint[(1, "occlusion_solid", sev)]["stripes"] == pytest.approx(want)
    # the order of the table: clean and the mix first, then the occluders by severity
    assert [k for k in joint][:4] == [(0, "clean", 0), (0, "corruption mix, both", 0),
                                      (0, "corruption mix, gallery", 0), (0, "corruption mix, query", 0)]
    assert not any(math.isnan(v) for row in joint.values() for v in row.values())
    png = tmp_path / "img" / "joint.png"
    assert table.joint_png(base, "the test set", png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not table.joint_png(tmp_path / "nothing", "nothing", tmp_path / "none.png")


def test_bar_lines_judge_the_margin_against_the_bar_given(table, tmp_path):
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "study"
    for name in ("base", "method"):
        run_benchmark({name: StripeModel()}, ds, out / "occluded_duke" / "mix" / name, protocols="clean",
                      evaluator=reference_evaluate, progress=False, examples=0)
    # the same model under two names: a margin of exactly 0, which misses a bar of +3 and meets a bar of 0
    assert "+0.0 (misses the bar of +3)" in table.bar_lines(out, "base", "method")[0]
    assert "+0.0 (meets the bar of +0)" in table.bar_lines(out, "base", "method", need=0.0)[0]
    assert "+2" in table.bar_lines(out, "base", "method", need=2.0)[0]
    assert table.bar_lines(out, "base", "absent") == []


def test_models_option_limits_and_orders_the_tables(table, tmp_path, capsys):
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "study"
    for name in ("alpha", "beta", "gamma"):
        run_benchmark({name: StripeModel()}, ds, out / "occluded_duke" / "mix" / name, protocols="clean",
                      evaluator=reference_evaluate, progress=False, examples=0)
    assert table._models(out / "occluded_duke") == ["alpha", "beta", "gamma"]
    assert table._models(out / "occluded_duke", ["gamma", "absent", "alpha"]) == ["gamma", "alpha"]
    assert table.main(["--out", str(out), "--models", "gamma, alpha"]) == 0
    text = capsys.readouterr().out
    rows = [ln.split(" | ")[0] for ln in text.splitlines() if ln.startswith("| `")]
    assert rows == ["| `gamma`", "| `alpha`"]  # the per-model table, in the order given, without beta
    header = [ln for ln in text.splitlines() if ln.startswith("| condition |")][0]
    assert header.index("`gamma`") < header.index("`alpha`") and "`beta`" not in header
