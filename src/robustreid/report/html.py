"""The benchmark report: ONE self-contained HTML file (CSS inline, images as base64 PNG, no external resource).

    >>> from robustreid.report import build_report
    >>> build_report(["runs/bench"], "report.html")

Sections: how to read it; overview table per model; per-family bars (models side by side); a corruption × severity
heat-map per protocol and model; example corrupted crops; ranked lists (clean next to corrupted); inside the models
(activation maps, Grad-CAM and the embedding map of each benchmarked checkpoint, clean and under the run's worst
corruptions and occlusion: :mod:`robustreid.viz`); configuration and the commands to reproduce each run. The numbers come from :mod:`robustreid.robustness.summary`; this module
only lays them out. A small inline script writes a render status into ``#render-status`` (tables and images
counted, images with zero natural size listed) for the headless-browser check.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import time

import numpy as np
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ..corruptions import CORRUPTION_REGISTRY, family_of
from ..robustness.apply import CorruptionTransform
from ..robustness.protocols import CORRUPTED_PROTOCOLS, MIX, relative_path
from ..robustness.results import load_runs
from ..robustness.summary import (FAMILY_ORDER, clean_metrics, corruption_matrix, error_ratio, family_summary,
                                  models_in, protocol_summary)

log = logging.getLogger(__name__)

PROTOCOL_TITLES = {"clean": "clean", "query": "query corrupted", "gallery": "gallery corrupted",
                   "both": "query + gallery corrupted"}

CSS = """
:root { --ink:#1d2433; --muted:#5b6478; --line:#dde2ea; --bg:#f6f8fb; --accent:#1f5fbf; --good:#1a9e3a; --bad:#d62728; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif;
       color:var(--ink); background:var(--bg); }
main { max-width: 1320px; margin: 0 auto; padding: 28px 32px 60px; background:#fff; min-height:100vh;
       box-shadow: 0 0 0 1px var(--line); }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing:-0.01em; }
h2 { font-size: 21px; margin: 38px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; color: var(--ink); }
p, li { max-width: 980px; }
.sub { color: var(--muted); margin: 0 0 18px; }
nav { margin: 14px 0 6px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 16px; }
.howto { background: #eef4fd; border-left: 4px solid var(--accent); padding: 10px 18px; border-radius: 4px; }
.howto li { margin: 3px 0; }
table { border-collapse: collapse; margin: 8px 0 14px; font-variant-numeric: tabular-nums; font-size: 14px; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top; }
th { background: #f0f3f8; font-weight: 600; color: var(--ink); text-align: center; }
td.l, th.l { text-align: left; }
td small { color: var(--muted); display:block; font-size: 12px; }
tr:hover td { background: #fafbfd; }
.num-good { color: var(--good); font-weight:600; } .num-bad { color: var(--bad); font-weight:600; }
figure { margin: 10px 0 22px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; background:#fff; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; max-width: 980px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 8px 24px; }
pre { background: #0f1729; color: #e6edf7; padding: 12px 14px; border-radius: 6px; overflow-x: auto;
      font-size: 12.5px; line-height: 1.45; white-space: pre-wrap; word-break: break-all; }
code { font-family: "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
.note { color: var(--muted); font-size: 13px; }
.tag { display:inline-block; padding: 0 7px; border-radius: 10px; background:#eef1f6; font-size:12px; color:var(--muted); }
#render-status { color: var(--muted); font-size: 12px; margin-top: 40px; }
"""

STATUS_JS = """
(function () {
  function check() {
    var imgs = document.images, bad = [], tables = document.querySelectorAll('table').length;
    for (var i = 0; i < imgs.length; i++) { if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) bad.push(imgs[i].alt || i); }
    var el = document.getElementById('render-status');
    el.setAttribute('data-status', bad.length ? 'broken' : 'ok');
    el.setAttribute('data-images', imgs.length); el.setAttribute('data-tables', tables);
    el.textContent = 'render check: ' + (bad.length ? 'BROKEN images: ' + bad.join(', ') : 'ok') +
      ' (' + imgs.length + ' images, ' + tables + ' tables)';
  }
  if (document.readyState === 'complete') check(); else window.addEventListener('load', check);
})();
"""


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _img(png: bytes, alt: str, caption: str = "") -> str:
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}">{cap}</figure>'


def _pct(v, std=None) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "–"
    s = f"{100 * v:.1f}"
    if std is not None and std == std:
        s += f" ± {100 * std:.1f}"
    return s


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, cls: str = "") -> str:
    th = "".join(f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(headers))
    body = []
    for r in rows:
        body.append("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r))
                    + "</tr>")
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{"".join(body)}</tbody></table>'


# --------------------------------------------------------------------------------------------------------- sections
def _overview(rows, reference: Optional[str]) -> str:
    summ = protocol_summary(rows)
    clean = clean_metrics(rows)
    out_rows = []
    mods = models_in(rows)
    for model, ds in mods:
        srcs = [s for s in ("mix", "sweep") if any(d["model"] == model and d["dataset"] == ds and d["source"] == s
                                                   for d in summ)]
        c = clean.get((model, ds))
        for k, src in enumerate(srcs or ["clean"]):
            cells = [f"<b>{_e(model)}</b>" if k == 0 else "", _e(ds) if k == 0 else ""]
            cells.append(f"{_pct(c['mAP'])}<small>R1 {_pct(c['R1'])}</small>" if c and k == 0 else ("" if c else "–"))
            n_passes = 0
            n_cells = 0
            for p in CORRUPTED_PROTOCOLS:
                d = next((d for d in summ if d["model"] == model and d["dataset"] == ds and d["protocol"] == p
                          and d["source"] == src), None)
                if d is None:
                    cells.append("–")
                    continue
                n_passes = max(n_passes, d["passes"])
                n_cells = max(n_cells, d["cells"] // max(d["passes"], 1))
                cells.append(f"{_pct(d['mAP'], d['mAP_std'])}<small>R1 {_pct(d['R1'], d['R1_std'])}</small>")
            both = next((d for d in summ if d["model"] == model and d["dataset"] == ds and d["protocol"] == "both"
                         and d["source"] == src), None)
            ret = both["retained_mAP"] if both else math.nan
            cells.append("–" if ret != ret else f"{100 * ret:.0f}%")
            if src == "mix":
                what = f"mix <span class=tag>{n_passes} pass{'es' if n_passes != 1 else ''}</span>"
            elif src == "sweep":
                what = f"sweep mean <span class=tag>{n_cells} cells</span>"
            else:
                what = "clean only"
            cells.insert(2, what)
            if reference:
                er = error_ratio(rows, model, reference, "both", ds) if src == "sweep" else math.nan
                cells.append("–" if er != er else f"{er:.2f}")
            out_rows.append(cells)
    heads = ["model", "dataset", "corruption protocol", "clean mAP %", "query corrupted", "gallery corrupted",
             "query + gallery", "retained (both)"]
    if reference:
        heads.append(f"error ratio vs {_e(reference)}")
    return _table(heads, out_rows, left=3, cls="overview")


def _family_section(rows) -> str:
    fam = family_summary(rows)
    if not fam:
        return '<p class="note">No sweep cells: per-family bars need the sweep mode.</p>'
    clean = clean_metrics(rows)
    mods = models_in(rows)
    names = [f"{m}" if len({d for _, d in mods}) == 1 else f"{m} ({d})" for m, d in mods]
    panels = []
    for p in CORRUPTED_PROTOCOLS:
        fams = [f for f in FAMILY_ORDER if any(d["family"] == f and d["protocol"] == p for d in fam)]
        if not fams:
            continue
        vals = []
        for m, ds in mods:
            vals.append([next((d["mAP"] for d in fam if d["model"] == m and d["dataset"] == ds and d["protocol"] == p
                               and d["family"] == f), math.nan) for f in fams])
        panels.append({"title": PROTOCOL_TITLES[p], "groups": fams, "values": vals})
    ref = [clean.get(k, {}).get("mAP", math.nan) for k in mods]
    png = _plots().bar_panels(panels, names, suptitle="Mean mAP per corruption family (sweep cells)",
                              ylabel="mAP %", reference=ref, reference_label="clean mAP")
    return _img(png, "family bars", "Bars: mean mAP over the family's corruptions and swept severities, one bar per "
                "model; dashed lines: each model's clean mAP. The gap between bar and line is what the family costs.")


def _seen_in_training(metas) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for meta in metas:
        for name, m in (meta.get("models") or {}).items():
            if m.get("train_corruptions"):
                out[name] = list(m["train_corruptions"])
    return out


def _largest_drops(rows, k: int = 3) -> str:
    """One sentence per model: the k corruptions costing the most mAP under `both` (sweep, mean over severities)."""
    items = []
    clean = clean_metrics(rows)
    for m, ds in models_in(rows):
        c = clean.get((m, ds))
        corrs, _, mat = corruption_matrix(rows, m, "both", "mAP", ds)
        if not corrs or not c:
            continue
        means = np.nanmean(mat, axis=1)
        order = np.argsort(means, kind="stable")[:k]
        worst = ", ".join(f"{corrs[i].replace('_', ' ')} ({_pct(means[i])})" for i in order if np.isfinite(means[i]))
        best = int(np.nanargmax(means))
        items.append(f"<li><b>{_e(m)}</b> on {_e(ds)} (clean {_pct(c['mAP'])}): hardest {_e(worst)}; easiest "
                     f"{_e(corrs[best].replace('_', ' '))} ({_pct(means[best])}).</li>")
    if not items:
        return ""
    return ("<p><b>At a glance</b> — mAP % with query and gallery corrupted, mean over the swept severities:</p><ul>"
            + "".join(items) + "</ul>")


def _heatmaps(rows, seen: Optional[Dict[str, List[str]]] = None) -> str:
    seen = seen or {}
    parts = []
    for m, ds in models_in(rows):
        clean = clean_metrics(rows).get((m, ds), {})
        mats, titles, corrs, sevs = [], [], None, None
        for p in CORRUPTED_PROTOCOLS:
            c, s, mat = corruption_matrix(rows, m, p, "mAP", ds)
            if not c:
                continue
            if corrs is None:
                corrs, sevs = c, s
            if c != corrs or s != sevs:  # align to the first panel's rows / columns
                full = np.full((len(corrs), len(sevs)), np.nan)
                for i, cc in enumerate(c):
                    for j, ss in enumerate(s):
                        if cc in corrs and ss in sevs:
                            full[corrs.index(cc), sevs.index(ss)] = mat[i, j]
                mat = full
            mats.append(mat)
            titles.append(PROTOCOL_TITLES[p])
        if not mats:
            continue
        cm = f" — clean mAP {_pct(clean.get('mAP'))}%" if clean else ""
        vmax = max(100 * clean.get("mAP", 0.0), float(np.nanmax([np.nanmax(x) for x in mats])) * 100
                   if any(np.isfinite(x).any() for x in mats) else 1.0)
        labels = [c + (" *" if c in seen.get(m, ()) else "") for c in corrs]
        if m in seen:
            cm += " (* seen in training)"
        png = _plots().heatmap_panels(mats, titles, labels, [str(s) for s in sevs], suptitle=f"{m} on {ds}{cm}",
                                      cbar_label="mAP %", vmax=vmax)
        parts.append(_img(png, f"heatmap {m}"))
    if not parts:
        return '<p class="note">No sweep cells: heat-maps need the sweep mode.</p>'
    return ("<p class='note'>mAP % per corruption (rows) and severity (columns); the colour scale is shared and tops "
            "at the clean mAP (or the best cell), so dark cells are large drops.</p>" + "".join(parts))


def _plots():
    from ..viz import plots

    return plots


def _load(root: Optional[str], rel: str):
    from ..viz.ranks import load_crop

    return load_crop(root, rel)


def _crop_section(metas, examples) -> str:
    """One query crop under every corruption the report's runs on its dataset used (middle severity), and a
    severity ladder with one corruption per family, from the first run that recorded example queries."""
    for meta in metas:
        cfg = meta.get("config") or {}
        ex = next((e for e in examples if e.get("_run_dir") == meta.get("run_dir") and e.get("queries")), None)
        if ex is None:
            continue
        root, rel = ex.get("root") or cfg.get("root"), ex["queries"][0]
        try:
            img = _load(root, rel)
        except (OSError, ValueError) as e:
            return f'<p class="note">Example crops unavailable: {_e(e)}</p>'
        ds, seed = cfg.get("dataset", ""), int(cfg.get("seed", 0))
        corrs, sevs = _dataset_corruptions(metas, ds)
        mid = 3 if 3 in sevs else sevs[len(sevs) // 2]

        def corrupt(c: str, sev: int):
            return CorruptionTransform(ds, None, c, sev, 0, seed).apply([img], [rel])[0]

        parts = []
        if corrs:
            png = _plots().crop_grid([img] + [corrupt(c, mid) for c in corrs], ["clean"] + corrs, per_row=11,
                                     title=f"One query under each corruption, severity {mid}")
            parts.append(_img(png, "corruption examples",
                              f"Query <code>{_e(rel)}</code> of {_e(ds)}; exactly the pixels the benchmark fed the "
                              f"model (same per-image seeds, pass 0)."))
        if len(sevs) > 1 and corrs:
            reps = [c for c in (next((c for c in corrs if family_of(c) == f), None) for f in FAMILY_ORDER) if c]
            png = _plots().image_grid([[img] + [corrupt(c, s) for s in sevs] for c in reps],
                                      row_titles=[c.replace("_", " ") for c in reps],
                                      col_titles=["clean"] + [f"sev {s}" for s in sevs],
                                      title="Severity ladder (one corruption per family)")
            parts.append(_img(png, "severity ladder"))
        return "".join(parts)
    return '<p class="note">No example queries recorded (run the benchmark with examples &gt; 0).</p>'


def _dataset_corruptions(metas, dataset: str):
    """The registered corruptions (registry order) and the severities (sorted; [3] when none) of every run of the
    report on ``dataset``: a study benchmarked in several runs (the corruption mix, the occlusion family) shows all
    of them."""
    names, sevs = set(), set()
    for meta in metas:
        cfg = meta.get("config") or {}
        if cfg.get("dataset", "") == dataset:
            names.update(c for c in (cfg.get("corruptions") or []) if c in CORRUPTION_REGISTRY)
            sevs.update(int(v) for v in (cfg.get("severities") or []))
    return [c for c in CORRUPTION_REGISTRY if c in names], sorted(sevs) or [3]


def _ranked_section(examples, n_queries: int = 4) -> str:
    """The benchmark's ranked-list records drawn by :mod:`robustreid.viz.ranks` (the code of ``viz ranks``)."""
    from ..viz import ranks

    parts = []
    for ex in examples:
        try:
            rows = ranks.record_rows(ex, n_queries)
        except (OSError, ValueError, KeyError) as e:
            parts.append(f'<p class="note">Ranked lists of {_e(ex.get("model"))} unavailable: {_e(e)}</p>')
            continue
        if not rows:
            continue
        what = ranks.describe(ex)
        if what:
            title = f"{ex.get('model')} — top-10, clean vs {what}"
            caption = ("Each pair of rows: a query (blue frame) and its 10 nearest gallery crops, clean, then with "
                       f"query and gallery corrupted ({_e(what)}). Green = same identity, red = another identity.")
        else:  # a clean-only run
            title = f"{ex.get('model')} — top-10, clean"
            caption = ("Each row: a query (blue frame) and its 10 nearest gallery crops, clean (this run has no "
                       "corrupted cells). Green = same identity, red = another identity.")
        png = ranks.ranks_image(rows, title)
        parts.append(f"<h3>{_e(ex.get('model'))} on {_e(ex.get('dataset'))}</h3>"
                     + _img(png, f"ranked lists {ex.get('model')}", caption))
    return "".join(parts) or '<p class="note">No ranked lists recorded.</p>'


def _worst_variants(rows, model: str, dataset: str, k: int = 2) -> List[str]:
    """``name:severity`` of the k corruptions and the occlusion costing ``model`` the most mAP (both corrupted,
    sweep, mean over severities), at severity 3 (or the middle swept severity)."""
    from ..corruptions import OCCLUSIONS

    corrs, sevs, mat = corruption_matrix(rows, model, "both", "mAP", dataset)
    if not corrs:
        return []
    with np.errstate(all="ignore"):
        means = np.nanmean(mat, axis=1)
    sev = 3 if 3 in sevs else sevs[len(sevs) // 2]
    order = [corrs[i] for i in np.argsort(np.nan_to_num(means, nan=np.inf), kind="stable")]
    picks = [c for c in order if c not in OCCLUSIONS][:k] + [c for c in order if c in OCCLUSIONS][:1]
    return [f"{c}:{sev}" for c in picks]


def _inside_model(name: str, ckpt: str, cfg, rows, example, n_queries: int) -> str:
    """Activation maps, Grad-CAM and the embedding map of one model (robustreid.viz.figures)."""
    from ..engine.checkpoint import load_model
    from ..viz import figures, source

    root, dsname = cfg.get("root"), cfg.get("dataset", "")
    ds = source.open_dataset(dsname, root)
    rel = {relative_path(s.path, root): i for i, s in enumerate(ds.query)}
    queries = [rel[q] for q in (example or {}).get("queries", [])[:n_queries] if q in rel]
    queries = queries or source.spread_queries(ds.query, n_queries)
    spec = ",".join(_worst_variants(rows, name, dsname)) or source.DEFAULT_VARIANTS
    variants = source.parse_variants(spec)
    seed = int(cfg.get("seed", 0))
    model = load_model(ckpt, device="cpu")
    act, act_cap = figures.actmap_figure(model, name, ds, root, queries, variants, seed=seed)
    cam, cam_cap = figures.gradcam_figure(model, name, ds, root, queries, variants, seed=seed)
    emb, emb_cap, _ = figures.embed_figure(model, name, ds, root, variants[:4], n_ids=8, per_id=3, seed=seed)
    return (f"<h3>{_e(name)} on {_e(dsname)}</h3>" + _img(act, f"activation maps {name}", act_cap)
            + _img(cam, f"grad-cam {name}", cam_cap) + _img(emb, f"embedding map {name}", emb_cap))


def _inside_section(rows, metas, examples, n_queries: int = 3) -> str:
    """"Inside the models": per benchmarked checkpoint, the same few queries clean and under the run's worst
    corruptions and occlusion — activation maps, Grad-CAM — and its embedding map."""
    parts, done = [], set()
    for meta in metas:
        cfg = meta.get("config") or {}
        for name, m in (meta.get("models") or {}).items():
            ckpt = m.get("checkpoint")
            if name in done:
                continue
            done.add(name)
            if not ckpt or not Path(ckpt).exists():
                why = "an in-memory model" if not ckpt else f"checkpoint {ckpt} not found"
                parts.append(f'<p class="note">{_e(name)}: no pictures ({_e(why)}).</p>')
                continue
            ex = next((e for e in examples if e.get("model") == name and e.get("_run_dir") == meta.get("run_dir")),
                      None)
            try:
                parts.append(_inside_model(name, ckpt, cfg, rows, ex, n_queries))
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                parts.append(f'<p class="note">{_e(name)}: pictures unavailable: {_e(e)}</p>')
    intro = ("<p class='note'>Where each model looks, clean and under the corruptions and the occlusion that cost "
             "it the most mAP in these runs (same pixels as the benchmark). Made by <code>robustreid viz</code>; "
             "see docs/viz.md for how to read them.</p>")
    return intro + "".join(parts) if parts else '<p class="note">No benchmarked checkpoints.</p>'


def _config_section(metas) -> str:
    parts = []
    for meta in metas:
        cfg = meta.get("config") or {}
        rows = [[_e(k), f"<code>{_e(json.dumps(v) if not isinstance(v, str) else v)}</code>"] for k, v in cfg.items()]
        models = meta.get("models") or {}
        mrows = []
        for name, m in models.items():
            seen = m.get("train_corruptions")
            mrows.append([f"<b>{_e(name)}</b>", _e(m.get("checkpoint") or "(in-memory model)"),
                          f"<code>{_e(m.get('fingerprint') or '–')}</code>", _e(m.get("train_dataset") or "–"),
                          _e(", ".join(seen) if seen else "none recorded")])
        cmds = meta.get("commands") or ([meta["command"]] if meta.get("command") else [])
        vers = meta.get("versions") or {}
        parts.append(
            f"<h3>Run <code>{_e(meta.get('run_dir'))}</code></h3>"
            + ("<p>Reproduce with:</p><pre><code>" + "\n".join(_e(c) for c in cmds) + "</code></pre>" if cmds else "")
            + _table(["model", "checkpoint", "sha256 (16)", "trained on", "corruptions seen in training"], mrows,
                     left=5)
            + "<details><summary>Full configuration</summary>" + _table(["setting", "value"], rows, left=2)
            + "</details>"
            + f"<p class='note'>Versions: {_e(', '.join(f'{k} {v}' for k, v in vers.items()))}. "
              f"Seeds: {_e((meta.get('seeds') or {}).get('rule', ''))}.</p>")
    return "".join(parts)


HOWTO = """
<div class="howto"><b>How to read this report</b><ul>
<li><b>mAP</b> (mean average precision) and <b>R1</b> (rank-1 accuracy) are in percent; higher is better.
 Each model is evaluated <b>clean</b>, with only the <b>query</b> images corrupted, only the <b>gallery</b>
 corrupted, and <b>both</b> corrupted (the headline number of corruption benchmarks).</li>
<li><b>mix</b> is the published protocol: every image gets one random corruption and severity; it is repeated over
 several passes (mean ± std). <b>sweep</b> evaluates every corruption × severity separately; its mean is over all
 of them.</li>
<li><b>retained</b> = corrupted mAP / clean mAP: 100% means the model does not care about the corruption.
 The <b>error ratio</b> (when a reference model is named) is Σ(1 − mAP) over corruptions divided by the same sum
 for the reference: below 1 is more robust than the reference.</li>
<li>Heat-maps: one row per corruption, one column per severity; the colour scale tops at the clean mAP, so a dark
 cell is a large drop. Family bars: dashed lines mark each model's clean mAP.</li>
<li>Everything is seeded: the same command gives the same numbers (see <a href="#config">configuration</a>).</li>
</ul></div>
"""


def build_report(run_dirs: Sequence[Union[str, Path]], out: Union[str, Path], *, title: Optional[str] = None,
                 reference_model: Optional[str] = None, max_ranked_queries: int = 4, inside: bool = True,
                 inside_queries: int = 3) -> Path:
    """Write the self-contained HTML report of one or more benchmark run directories to ``out``. ``inside``: the
    "Inside the models" section (pictures of each benchmarked checkpoint on ``inside_queries`` queries)."""
    from ..utils.io import atomic_write_text

    rows, metas = load_runs(run_dirs)
    if not rows:
        raise ValueError(f"no results in {', '.join(map(str, run_dirs))}: the benchmark has not finished a cell yet")
    if reference_model is None:
        reference_model = next(((m.get("config") or {}).get("reference_model") for m in metas
                                if (m.get("config") or {}).get("reference_model")), None)
    if reference_model and reference_model not in {r["model"] for r in rows}:
        log.warning("reference model %s has no rows in these runs; error ratios omitted", reference_model)
        reference_model = None
    examples = []
    for meta in metas:
        for f in sorted((Path(meta["run_dir"]) / "examples").glob("*.json")):
            try:
                e = json.loads(f.read_text(encoding="utf-8"))
                e["_run_dir"] = meta["run_dir"]
                examples.append(e)
            except ValueError:
                log.warning("%s: unreadable, skipped", f)
    datasets = sorted({r["dataset"] for r in rows})
    models = [m for m, _ in models_in(rows)]
    examples.sort(key=lambda e: models.index(e.get("model")) if e.get("model") in models else len(models))
    title = title or f"Robustness report — {', '.join(dict.fromkeys(models))} on {', '.join(datasets)}"
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    n_cells = len(rows)
    sections = [
        ("overview", "Overview", _largest_drops(rows) + _overview(rows, reference_model)
         + "<p class='note'>Cells show mAP % (± std over passes where there are several) with R1 % below.</p>"),
        ("families", "Per-family robustness", _family_section(rows)),
        ("heatmaps", "Corruption × severity", _heatmaps(rows, _seen_in_training(metas))),
        ("crops", "What the corruptions look like", _crop_section(metas, examples)),
        ("ranked", "Ranked lists, clean vs corrupted", _ranked_section(examples, max_ranked_queries)),
    ]
    if inside:
        sections.append(("inside", "Inside the models", _inside_section(rows, metas, examples, inside_queries)))
    sections += [
        ("config", "Configuration and how to reproduce", _config_section(metas)),
    ]
    nav = "".join(f'<a href="#{sid}">{_e(t)}</a>' for sid, t, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{_e(t)}</h2>{content}</section>' for sid, t, content in sections)
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<p class="sub">{n_cells} benchmark cells from {len(metas)} run{'s' if len(metas) != 1 else ''} · generated {now} \
by robustreid</p>
<nav>{nav}</nav>
{HOWTO}
{body}
<div id="render-status" data-status="pending">render check: pending (needs JavaScript)</div>
</main>
<script>{STATUS_JS}</script>
</body></html>
"""
    out = Path(out)
    atomic_write_text(out, doc)
    return out
