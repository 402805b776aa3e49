#!/usr/bin/env python
"""Markdown tables of the FED study written by ``benchmarks/fed_study.sh``.

    python benchmarks/fed_table.py [--out runs/occluded] [--baseline bot_lite0] [--method fed_lite0]

Per study set (Occluded-Duke, synthetic occluded), one row per model of the ablation in its order (bot_lite0,
fed_lite0_npo, fed_lite0_oem, fed_lite0; with --others, every other model of the folder after them, e.g. the
occlusion study's, whose Δ is left blank): clean R1 / mAP / mINP and the change of clean mAP from the ablation row
above (each added part's effect), the corruption mix with both sides corrupted (R1, mAP mean ± std over the passes, retained
fraction of the clean mAP), query-only mix mAP, and the mean mAP over the occluders with both sides occluded per
severity. Then f′ against the FDM output for FED, whether the OEM finds the occluders
(benchmarks/fed_oem_scores.py), holistic Market-1501 (clean), and the issue's bar: full FED's clean mAP minus the
baseline's on Occluded-Duke (>= 2). A missing part shows "—". The same folder also feeds
``benchmarks/occluded_table.py`` (the joint occlusion × corruption table of issue #13, FED as one more column).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the occlusion study's readers and cells: the same folders, the same table conventions
from occluded_table import _clean_cell, _occlusion_means, _summaries  # noqa: E402
from occluded_table import _models as _set_models  # noqa: E402
from occluded_table import bar_lines as _occluded_bar_lines  # noqa: E402
from study_table import _pct, _pm  # noqa: E402

ORDER = ["bot_lite0", "fed_lite0_npo", "fed_lite0_oem", "fed_lite0"]
OEM_PREFIX = "oem_"  # features/oem_<model>.json: benchmarks/fed_oem_scores.py
SET_NAMES = {"occluded_duke": "Occluded-Duke", "synthetic": "synthetic occluded set", "market1501": "Market-1501"}


def _models(base: Path, others: bool = False):
    """The models benchmarked on the set folder ``base``: the ablation's in its order, then (``others``) the rest."""
    found = _set_models(base)
    return [m for m in ORDER if m in found] + (sorted(m for m in found if m not in ORDER) if others else [])


def set_table(out: Path, name: str, severities=(1, 3), others: bool = False) -> list:
    head = ("| model | clean R1 / mAP / mINP | Δ clean mAP | both mix R1 | both mix mAP | retained | query mix mAP | "
            + " | ".join(f"occl. both sev {s}" for s in severities) + " |")
    lines = [f"**{SET_NAMES.get(name, name)}**", "", head, "|" + "---|" * (head.count(" | ") + 1)]
    prev = None
    for m in _models(out / name, others):
        summ = _summaries(out / name / "mix" / m, m)
        c, both, query = summ.get(("clean", "clean")), summ.get(("both", "mix")), summ.get(("query", "mix"))
        occ = _occlusion_means(out / name / "occlusion" / m, m)
        delta = "—" if c is None or prev is None or m not in ORDER else f"{100 * (c['mAP'] - prev):+.1f}"
        cells = [f"`{m}`", _clean_cell(c), delta,
                 _pm(both, "R1"), _pm(both, "mAP"), f"{both['retained_mAP']:.3f}" if both and c else "—",
                 _pm(query, "mAP")] + [_pct(occ[s]) if s in occ else "—" for s in severities]
        lines.append("| " + " | ".join(cells) + " |")
        if m in ORDER:  # the next ablation step is compared with this one
            prev = c["mAP"] if c else None
    return lines


def features_table(out: Path, sets) -> list:
    lines = ["| set | model | f′ R1 / mAP | FDM output R1 / mAP |", "|---|---|---|---|"]
    for s in sets:
        folder = out / s / "features"
        for f in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            if f.name.startswith(OEM_PREFIX):
                continue  # the OEM analysis: oem_table
            d = json.loads(f.read_text())
            a, b = d["fprime"], d["fdm"]
            lines.append(f"| {SET_NAMES.get(s, s)} | `{f.stem}` | {_pct(a['R1'])} / {_pct(a['mAP'])} | "
                         f"{_pct(b['R1'])} / {_pct(b['mAP'])} |")
    return lines if len(lines) > 2 else []


def _auc_score(d) -> str:
    """'AUC (mean score occluded / visible)' of one fed_oem_scores.py condition summary."""
    if not d:
        return "—"
    return f"{_num(d.get('auc'), 3)} ({_num(d.get('score_occluded'))} / {_num(d.get('score_visible'))})"


def _num(x, nd: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def oem_table(out: Path, sets) -> list:
    """benchmarks/fed_oem_scores.py's summaries (features/oem_<model>.json): does the OEM find the occluder, on
    NPO's own occluders (the control) and on the benchmark's (pooled over solid, noise, object)."""
    lines = ["| set | model | NPO's occluders: AUC (score occluded / visible) | benchmark occluders, pooled: AUC "
             "(score occluded / visible) | ρ(score, coverage) | clean queries' score per stripe, top first |",
             "|---|---|---|---|---:|---|"]
    for s in sets:
        folder = out / s / "features"
        for f in sorted(folder.glob(OEM_PREFIX + "*.json")) if folder.is_dir() else []:
            for model, r in json.loads(f.read_text())["models"].items():
                pooled = r.get("non_pedestrian") or {}
                lines.append(f"| {SET_NAMES.get(s, s)} | `{model}` | {_auc_score(r['conditions'].get('npo'))} | "
                             f"{_auc_score(pooled)} | {_num(pooled.get('spearman_coverage'), 3)} | "
                             + " / ".join(_num(x) for x in r["clean_score_per_stripe"]) + " |")
    return lines if len(lines) > 2 else []


def holistic_table(out: Path) -> list:
    lines = ["| model (trained and tested on Market-1501) | clean R1 / mAP / mINP |", "|---|---|"]
    for m in _models(out / "market1501"):
        c = _summaries(out / "market1501" / "mix" / m, m).get(("clean", "clean"))
        lines.append(f"| `{m}` | {_clean_cell(c)} |")
    return lines if len(lines) > 2 else []


def bar_lines(out: Path, baseline: str, method: str, need: float = 2.0) -> list:
    """The issue's bar (#14): full FED's clean mAP on Occluded-Duke minus the baseline's, at least ``need``; no bar on
    holistic Market-1501."""
    return [line + "; published ViT: +3.3 mAP, +7.6 R1"
            for line in _occluded_bar_lines(out, baseline, method, need=need, holistic_need=None)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/occluded", help="the study folder (OUT of fed_study.sh)")
    ap.add_argument("--baseline", default="bot_lite0")
    ap.add_argument("--method", default="fed_lite0")
    ap.add_argument("--others", action="store_true", help="also list the folder's other models (no Δ)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    sets = [s for s in ("occluded_duke", "synthetic") if (out / s / "mix").is_dir()]
    if not sets:
        print(f"fed_table: no {out}/<set>/mix folder: run benchmarks/fed_study.sh first", file=sys.stderr)
        return 2
    blocks = [set_table(out, s, others=args.others) for s in sets] + [
        features_table(out, sets), oem_table(out, sets), holistic_table(out), bar_lines(out, args.baseline, args.method)]
    print("\n\n".join("\n".join(b) for b in blocks if b))
    return 0


if __name__ == "__main__":
    sys.exit(main())
