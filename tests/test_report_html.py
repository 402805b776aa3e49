"""The HTML report: self-contained structure (html.parser, always) and a real render in headless Chromium (when
/usr/bin/chromium exists)."""

from __future__ import annotations

import base64
import io
import os
import shutil
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from PIL import Image

from robustreid.report import build_report
from robustreid.robustness import protocol_summary, run_benchmark
from script_support import load_script
from test_robustness_helpers import StripeModel, make_dataset, reference_evaluate, registered_test_corruptions


@pytest.fixture(scope="module", autouse=True)
def _test_corruptions():
    with registered_test_corruptions():
        yield


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []
        self.ids = set()
        self.text = []
        self._cell = None
        self.cells = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(" ".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data.strip())


class _Wide(StripeModel):
    fingerprint = "stripes-wide"

    def __call__(self, x):
        return super().__call__(x)[:, :6]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    ds = make_dataset(base / "data")
    out = base / "run"
    run_benchmark({"stripes": StripeModel(), "half": _Wide()}, ds, out, modes="sweep,mix",
                  corruptions="gaussian_noise,test_noise", severities="1,3", mix_passes=2, evaluator=reference_evaluate,
                  progress=False, examples=2, reference_model="half", command="robustreid bench --test")
    return out


@pytest.fixture(scope="module")
def report(run_dir):
    return build_report([run_dir], run_dir / "report.html")


def test_report_is_self_contained_and_complete(report, run_dir):
    html = report.read_text(encoding="utf-8")
    p = _Collect()
    p.feed(html)
    assert {"overview", "families", "heatmaps", "crops", "ranked", "config", "render-status"} <= p.ids
    assert not [t for t, a in p.tags if t == "link"]
    imgs = [a for t, a in p.tags if t == "img"]
    # family bars, 2 heat-map figures, crop grid, severity ladder, 2 ranked-list figures
    assert len(imgs) == 7
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,") and a.get("alt")
        im = Image.open(io.BytesIO(base64.b64decode(a["src"].split(",", 1)[1])))
        assert im.size[0] > 50 and im.size[1] > 50
    for t, a in p.tags:
        for k in ("src", "href"):
            v = a.get(k) or ""
            assert not v.startswith(("http:", "https:", "//", "file:")), (t, v)
    tables = [t for t, a in p.tags if t == "table"]
    assert len(tables) >= 3  # overview, models of the run, full configuration
    # the overview shows the clean mAP of each model as in the results
    summ = {(d["model"], d["protocol"], d["source"]): d for d in protocol_summary(
        __import__("robustreid.robustness", fromlist=["read_results"]).read_results(run_dir))}
    for m in ("stripes", "half"):
        clean = f"{100 * summ[(m, 'clean', 'clean')]['mAP']:.1f}"
        assert any(c.startswith(clean) for c in p.cells), (m, clean)
        mix = summ[(m, "both", "mix")]
        assert any(c.startswith(f"{100 * mix['mAP']:.1f} ± {100 * mix['mAP_std']:.1f}") for c in p.cells)
    text = " ".join(p.text)
    assert "robustreid bench --test" in text and "How to read this report" in text
    assert "error ratio vs half" in text


def test_report_cli_and_errors(run_dir, tmp_path):
    from robustreid.cli.main import cli

    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["report", str(run_dir), "--out", str(out), "--title", "My <title>",
                                   "--queries", "0"])
    assert res.exit_code == 0, res.output
    assert "<title>My &lt;title&gt;</title>" in out.read_text()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(cli, ["report", str(empty), "--out", str(tmp_path / "x.html")])
    assert res.exit_code != 0 and "no results.csv" in res.output


def _checker():
    return load_script("check_report_chromium")


def test_check_dom_detects_broken_pages():
    chk = _checker()
    good = ('<html><div id="render-status" data-status="ok" data-images="1" data-tables="1">ok</div>'
            '<table></table><img src="data:image/png;base64,AA"></html>')
    assert chk.check_dom(good, 1, 1)["ok"]
    broken = good.replace('data-status="ok"', 'data-status="broken"')
    assert not chk.check_dom(broken, 1, 1)["ok"]
    external = good.replace("data:image/png;base64,AA", "https://example.com/x.png")
    assert not chk.check_dom(external, 1, 1)["ok"]


@pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                    reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    chk = _checker()
    dom = chk.dump_dom("/usr/bin/chromium", report)
    res = chk.check_dom(dom, min_tables=3, min_images=7)
    assert res["ok"], res["problems"]
    assert res["status"] == "ok" and "7 images" in res["status_text"]
    png = tmp_path / "shot.png"
    chk.screenshot("/usr/bin/chromium", report, png, 1200, 1600)
    assert chk.check_png(png)["ok"]
    # a page with a broken image is caught by the page's own check
    bad = tmp_path / "bad.html"
    bad.write_text(report.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1))
    res = chk.check_dom(chk.dump_dom("/usr/bin/chromium", bad), min_tables=3, min_images=7)
    assert not res["ok"] and res["status"] == "broken"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_report_without_the_images_says_so(run_dir, tmp_path):
    import json

    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("*.html", "cache"))
    for f in (moved / "examples").glob("*.json"):
        e = json.loads(f.read_text())
        e["root"] = str(tmp_path / "gone")
        e["queries"] = [q if not os.path.isabs(q) else str(tmp_path / "gone" / os.path.basename(q))
                        for q in e["queries"]]
        f.write_text(json.dumps(e))
    out = build_report([moved], tmp_path / "r.html", max_ranked_queries=1)
    html = out.read_text()
    assert "Example crops unavailable" in html and "Ranked lists of stripes unavailable" in html
    assert html.count("data:image/png;base64,") == 3  # bars + two heat-map figures still there


def test_report_of_a_mix_only_run(tmp_path):
    ds = make_dataset(tmp_path / "data")
    run_benchmark({"stripes": StripeModel()}, ds, tmp_path / "run", modes="mix", corruptions="test_noise",
                  mix_passes=2, evaluator=reference_evaluate, progress=False, examples=1)
    html = build_report([tmp_path / "run"], tmp_path / "r.html", max_ranked_queries=1).read_text()
    assert "per-family bars need the sweep mode" in html and "heat-maps need the sweep mode" in html
    assert "mix <span class=tag>2 passes</span>" in html
    assert html.count("data:image/png;base64,") >= 2  # crops + ranked list


def test_report_of_a_clean_only_run_draws_clean_ranked_lists(tmp_path):
    ds = make_dataset(tmp_path / "data")
    run_benchmark({"stripes": StripeModel()}, ds, tmp_path / "run", protocols="clean", corruptions="test_noise",
                  evaluator=reference_evaluate, progress=False, examples=1)
    html = build_report([tmp_path / "run"], tmp_path / "r.html", max_ranked_queries=1).read_text()
    assert "clean (this run has no corrupted cells)" in html
    assert "gallery corrupted ()" not in html


def test_corruption_strip_shows_every_run_on_the_dataset_in_registry_order():
    from robustreid.corruptions import CORRUPTION_REGISTRY
    from robustreid.report.html import _dataset_corruptions

    order = list(CORRUPTION_REGISTRY)
    metas = [  # a mix run and an occlusion sweep of one study, and a run on another dataset
        {"config": {"dataset": "occluded_duke", "corruptions": ["fog", "gaussian_noise", "not_registered"],
                    "severities": [1, 2, 3, 4, 5]}},
        {"config": {"dataset": "occluded_duke", "corruptions": ["occlusion_solid"], "severities": [3, 1]}},
        {"config": {"dataset": "market1501", "corruptions": ["rain"], "severities": [7]}},
        {"config": {}},
    ]
    corrs, sevs = _dataset_corruptions(metas, "occluded_duke")
    assert corrs == sorted(["fog", "gaussian_noise", "occlusion_solid"], key=order.index)
    assert sevs == [1, 2, 3, 4, 5]
    assert _dataset_corruptions(metas, "market1501") == (["rain"], [7])
    assert _dataset_corruptions(metas, "cuhk03") == ([], [3])  # nothing run there: the middle severity by default
