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


def _pm(summary, metric: str) -> str:
    if summary is None:
        return "—"
    std = summary[metric + "_std"]
    return f"{100 * summary[metric]:.1f} ± {100 * (0.0 if math.isnan(std) else std):.1f}"


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
    from robustreid.robustness.summary import protocol_summary

    models = sorted(p.name for p in (out / "market").iterdir() if (p / "results.csv").is_file())
    head = ("| model | clean R1 / mAP / mINP | both mix R1 | both mix mAP | retained | query mix mAP | "
            "gallery mix mAP | occl. both sev 1 | occl. both sev 3 | Duke R1 / mAP |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    occ_table = {}
    for m in models:
        rows = [r for r in _rows(out / "market" / m) if r["model"] == m]
        summ = {(d["protocol"], d["source"]): d for d in protocol_summary(rows)}
        c = summ.get(("clean", "clean"))
        mix = {p: summ.get((p, "mix")) for p in ("query", "gallery", "both")}
        occ = [r for r in _rows(out / "occlusion" / m) if r["model"] == m and r["protocol"] == "both"]
        occ_by_sev = {}
        for r in occ:
            occ_by_sev.setdefault(int(r["severity"]), []).append(r["mAP"])
            occ_table.setdefault((r["corruption"], int(r["severity"])), {})[m] = r["mAP"]
        duke = [r for r in _rows(out / "duke" / m) if r["model"] == m and r["protocol"] == "clean"]
        cells = [
            f"`{m}`",
            f"{_pct(c['R1'])} / {_pct(c['mAP'])} / {_pct(c['mINP'])}" if c else "—",
            _pm(mix["both"], "R1"),
            _pm(mix["both"], "mAP"),
            f"{mix['both']['retained_mAP']:.3f}" if mix["both"] and c else "—",
            _pm(mix["query"], "mAP"),
            _pm(mix["gallery"], "mAP"),
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
