"""The report's "Inside the models" section: built from a benchmark of a real checkpoint, self-contained, rendered
in headless Chromium (when /usr/bin/chromium exists)."""

from __future__ import annotations

import json
import os
import re

import pytest

from robustreid.report import build_report
from robustreid.report.html import _inside_section, _worst_variants
from robustreid.robustness import read_results, run_benchmark
from script_support import load_script
from viz_support import make_checkpoint, make_market


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    base = tmp_path_factory.mktemp("inside")
    root = make_market(base / "market")
    ckpt = make_checkpoint(base / "tiny" / "model.safetensors", ["model.input_size=[32,16]"])
    run = base / "run"
    run_benchmark({"tiny": str(ckpt)}, "market1501", run, root=str(root), protocols="clean,both",
                  corruptions="fog,gaussian_noise,contrast,occlusion_solid,occlusion_noise", severities="3",
                  progress=False, examples=2, device="cpu")
    return build_report([run], run / "report.html", max_ranked_queries=1, inside_queries=2), run


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, sid
    return m.group(1)


def test_inside_section_has_the_maps_and_the_embedding(report):
    path, run = report
    html = path.read_text(encoding="utf-8")
    inside = _section(html, "inside")
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', inside)
    assert alts == ["activation maps tiny", "grad-cam tiny", "embedding map tiny"]
    assert "<h3>tiny on market1501</h3>" in inside
    assert 'href="#inside"' in html and html.index('id="ranked"') < html.index('id="inside"') < html.index('id="config"')


def test_worst_variants_are_the_lowest_map_corruptions_and_occlusion(report):
    _, run = report
    rows = read_results(run)
    both = {r["corruption"]: r["mAP"] for r in rows if r["protocol"] == "both"}
    picks = [p.split(":") for p in _worst_variants(rows, "tiny", "market1501")]
    assert [s for _, s in picks] == ["3", "3", "3"]
    plain = [c for c in both if not c.startswith("occlusion")]
    occ = [c for c in both if c.startswith("occlusion")]
    (a, _), (b, _), (o, _) = picks
    assert a in plain and b in plain and a != b and o in occ
    assert max(both[a], both[b]) <= min(both[c] for c in plain if c not in (a, b))
    assert both[o] == min(both[c] for c in occ)


def test_inside_section_without_a_checkpoint_says_so(report, tmp_path):
    _, run = report
    rows = read_results(run)
    meta = json.loads((run / "run.json").read_text())
    meta["run_dir"] = str(run)
    meta["models"]["tiny"]["checkpoint"] = str(tmp_path / "gone.safetensors")
    assert "tiny: no pictures (checkpoint" in _inside_section(rows, [meta], [], 2)
    meta["models"]["tiny"]["checkpoint"] = None
    assert "tiny: no pictures (an in-memory model)" in _inside_section(rows, [meta], [], 2)


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                    reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_inside_section_renders_in_headless_chromium(report):
    chk = load_script("check_report_chromium")
    path, _ = report
    n_images = path.read_text().count("data:image/png;base64,")
    res = chk.check_dom(chk.dump_dom("/usr/bin/chromium", path), min_tables=3, min_images=n_images)
    assert res["ok"], res["problems"]
    assert res["images"] == n_images and f"{n_images} images" in res["status_text"]
