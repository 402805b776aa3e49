"""`robustreid demo` end to end on a tiny synthetic set: every step runs, the report is written, a re-run resumes."""

import csv

from click.testing import CliRunner

from robustreid.cli.main import cli


def test_demo_runs_end_to_end_and_resumes(tmp_path):
    out = tmp_path / "demo"
    # 34 identities: the demo preset's 16×4 batches need 16 train ids; 4 images each (the default 12 made the 21
    # corrupted extractions of the test set two thirds of this test's time)
    args = ["demo", "--out", str(out), "--identities", "34", "--images-per-id", "4", "--epochs", "1", "--mix-passes",
            "1", "--device", "cpu"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert (out / "model" / "best.safetensors").is_file()
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<table" in html and "data:image/png;base64," in html
    with open(out / "bench" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    protocols = {r["protocol"] for r in rows}
    assert protocols == {"clean", "query", "gallery", "both"}
    swept = {r["corruption"] for r in rows if r["protocol"] == "both" and r["severity"] == "3"}
    from robustreid.corruptions import CORRUPTIONS

    assert set(CORRUPTIONS) <= swept
    # a second run finds everything done: no new benchmark cells, same results file
    before = (out / "bench" / "results.csv").read_bytes()
    res2 = CliRunner().invoke(cli, args)
    assert res2.exit_code == 0, res2.output
    assert (out / "bench" / "results.csv").read_bytes() == before
    assert "kept the existing set" in res2.output
