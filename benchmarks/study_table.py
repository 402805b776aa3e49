#!/usr/bin/env python
"""Markdown tables of the robust-training study written by ``benchmarks/market_study.sh``.

    python benchmarks/study_table.py [--out runs/study]

Table 1, one row per model: clean R1 / mAP / mINP on Market-1501; the mix protocol (both sides corrupted, mean ±
std over the passes) and its retained fraction of the clean mAP; query-only and gallery-only mix mAP; mean mAP over
the occluders with both sides occluded, per severity; clean DukeMTMC-reID (cross-dataset). Table 2: mAP per
occluder (both sides) and severity (the severities at least two models were run at). A model missing a part
shows "—".
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path


def _pct(x: float, nd: int = 1) -> str:
    return "—" if x is None or math.isnan(x) else f"{100 * x:.{nd}f}"


def _pm(xs):
    if not xs:
        return "—"
    m = statistics.fmean(xs)
    s = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{100 * m:.1f} ± {100 * s:.1f}"


def _rows(folder: Path):
    from robustreid.robustness import read_results

    return read_results(folder) if (folder / "results.csv").is_file() else []


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/study", help="the study folder (OUT of market_study.sh)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if not (out / "market").is_dir():
        print(f"study_table: {out}/market not found: run benchmarks/market_study.sh first", file=sys.stderr)
        return 2
    models = sorted(p.name for p in (out / "market").iterdir() if (p / "results.csv").is_file())
    head = ("| model | clean R1 / mAP / mINP | both mix R1 | both mix mAP | retained | query mix mAP | "
            "gallery mix mAP | occl. both sev 1 | occl. both sev 3 | Duke R1 / mAP |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    occ_table = {}
    for m in models:
        rows = [r for r in _rows(out / "market" / m) if r["model"] == m]
        clean = [r for r in rows if r["protocol"] == "clean"]
        c = clean[0] if clean else None
        mix = {p: [r for r in rows if r["protocol"] == p and r["corruption"] == "mix"] for p in ("query", "gallery", "both")}
        both_map = [r["mAP"] for r in mix["both"]]
        retained = statistics.fmean(both_map) / c["mAP"] if (c and both_map) else math.nan
        occ = [r for r in _rows(out / "occlusion" / m) if r["model"] == m and r["protocol"] == "both"]
        occ_by_sev = {}
        for r in occ:
            occ_by_sev.setdefault(int(r["severity"]), []).append(r["mAP"])
            occ_table.setdefault((r["corruption"], int(r["severity"])), {})[m] = r["mAP"]
        duke = [r for r in _rows(out / "duke" / m) if r["model"] == m and r["protocol"] == "clean"]
        cells = [
            f"`{m}`",
            f"{_pct(c['R1'])} / {_pct(c['mAP'])} / {_pct(c['mINP'])}" if c else "—",
            _pm([r["R1"] for r in mix["both"]]),
            _pm(both_map),
            "—" if math.isnan(retained) else f"{retained:.3f}",
            _pm([r["mAP"] for r in mix["query"]]),
            _pm([r["mAP"] for r in mix["gallery"]]),
            _pct(statistics.fmean(occ_by_sev[1])) if 1 in occ_by_sev else "—",
            _pct(statistics.fmean(occ_by_sev[3])) if 3 in occ_by_sev else "—",
            f"{_pct(duke[0]['R1'])} / {_pct(duke[0]['mAP'])}" if duke else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if occ_table:
        print()
        print("| occluder (both sides), severity | " + " | ".join(f"`{m}`" for m in models) + " |")
        print("|---|" + "---:|" * len(models))
        for (corr, sev) in sorted(occ_table, key=lambda k: (k[1], k[0])):
            vals = occ_table[(corr, sev)]
            if len(models) > 1 and len(vals) < 2:
                continue  # a severity only one model was run at (e.g. an earlier, longer run) compares nothing
            print(f"| {corr} {sev} | " + " | ".join(_pct(vals.get(m, math.nan)) for m in models) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
