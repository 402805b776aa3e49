"""Summaries of benchmark rows: per protocol, per family, retained fraction, mCE-style error ratio.

All functions take the rows of ``results.csv`` (see :func:`robustreid.robustness.results.read_results`) and return
lists of plain dicts, one per table row, so that the CLI, the report and the user's notebook share them.

- :func:`protocol_summary`: per (model, dataset, protocol, source) the metrics averaged over the cells (sweep: all
  corruptions × severities of a pass; mix: all images of a pass), then mean ± std over passes; ``retained_*`` =
  that mean divided by the model's clean value.
- :func:`family_summary`: per (model, dataset, protocol, family) mean mAP and R1 over the sweep cells of that family.
- :func:`error_ratio`: mCE-style ratio = Σ over (corruption, severity) of (1 − mAP) / the same Σ for a reference
  model, over the sweep cells both models have (1.0 = as robust as the reference, lower = better).
- :func:`corruption_matrix`: corruption × severity matrix of one metric for one model and protocol (heat-maps).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .protocols import MIX, NONE, PROTOCOLS
from .results import METRIC_COLUMNS

FAMILY_ORDER = ("noise", "blur", "weather", "digital", "occlusion", "other")


def _mean(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else math.nan


def _std(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x == x]
    return float(np.std(xs, ddof=1)) if len(xs) > 1 else math.nan


def models_in(rows: Iterable[Dict]) -> List[Tuple[str, str]]:
    """(model, dataset) pairs in order of first appearance."""
    seen: Dict[Tuple[str, str], None] = {}
    for r in rows:
        seen.setdefault((r["model"], r["dataset"]), None)
    return list(seen)


def clean_metrics(rows: Iterable[Dict]) -> Dict[Tuple[str, str], Dict[str, float]]:
    """(model, dataset) -> clean metrics."""
    out = {}
    for r in rows:
        if r["protocol"] == "clean":
            out[(r["model"], r["dataset"])] = {m: float(r[m]) for m in METRIC_COLUMNS}
    return out


def protocol_summary(rows: Sequence[Dict]) -> List[Dict]:
    """One dict per (model, dataset, protocol, source): metrics (mean over passes of the per-pass cell mean),
    ``<metric>_std`` (over passes), ``cells`` and ``passes`` counts, ``retained_mAP`` / ``retained_R1``."""
    clean = clean_metrics(rows)
    buckets: Dict[Tuple, Dict[int, List[Dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["protocol"] == "clean":
            src = "clean"
        else:
            src = "mix" if r["corruption"] == MIX else "sweep"
        buckets[(r["model"], r["dataset"], r["protocol"], src)][int(r["pass"])].append(r)
    out = []
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    keys = sorted(buckets, key=lambda k: (models_in(rows).index((k[0], k[1])), order.get(k[2], 9),
                                          {"clean": 0, "sweep": 1, "mix": 2}[k[3]]))
    for key in keys:
        model, ds, prot, src = key
        per_pass = buckets[key]
        d = {"model": model, "dataset": ds, "protocol": prot, "source": src,
             "cells": sum(len(v) for v in per_pass.values()), "passes": len(per_pass)}
        for m in METRIC_COLUMNS:
            means = [_mean([float(r[m]) for r in v]) for _, v in sorted(per_pass.items())]
            d[m] = _mean(means)
            d[m + "_std"] = _std(means)
        c = clean.get((model, ds))
        for m in ("mAP", "R1"):
            d["retained_" + m] = d[m] / c[m] if c and c[m] > 0 else math.nan
        out.append(d)
    return out


def family_summary(rows: Sequence[Dict]) -> List[Dict]:
    """One dict per (model, dataset, protocol, family) over the sweep cells: mean mAP, R1, retained_mAP, cells."""
    clean = clean_metrics(rows)
    b: Dict[Tuple, List[Dict]] = defaultdict(list)
    for r in rows:
        if r["protocol"] == "clean" or r["corruption"] in (MIX, NONE):
            continue
        b[(r["model"], r["dataset"], r["protocol"], r.get("family") or "other")].append(r)
    mods = models_in(rows)
    keys = sorted(b, key=lambda k: (mods.index((k[0], k[1])), PROTOCOLS.index(k[2]) if k[2] in PROTOCOLS else 9,
                                    FAMILY_ORDER.index(k[3]) if k[3] in FAMILY_ORDER else 9))
    out = []
    for k in keys:
        v = b[k]
        d = {"model": k[0], "dataset": k[1], "protocol": k[2], "family": k[3], "cells": len(v),
             "mAP": _mean([r["mAP"] for r in v]), "R1": _mean([r["R1"] for r in v])}
        c = clean.get((k[0], k[1]))
        d["retained_mAP"] = d["mAP"] / c["mAP"] if c and c["mAP"] > 0 else math.nan
        out.append(d)
    return out


def error_ratio(rows: Sequence[Dict], model: str, reference: str, protocol: str = "both",
                dataset: Optional[str] = None) -> float:
    """Σ(1 − mAP) of ``model`` / Σ(1 − mAP) of ``reference`` over the sweep cells (corruption, severity, pass) of
    ``protocol`` that both have; NaN when they share none or the reference has no error."""
    def cells(name):
        out = {}
        for r in rows:
            if (r["model"] == name and r["protocol"] == protocol and r["corruption"] not in (MIX, NONE)
                    and (dataset is None or r["dataset"] == dataset)):
                out[(r["dataset"], r["corruption"], int(r["severity"]), int(r["pass"]))] = float(r["mAP"])
        return out

    a, b = cells(model), cells(reference)
    common = sorted(set(a) & set(b))
    if not common:
        return math.nan
    den = sum(1.0 - b[k] for k in common)
    if den <= 0:
        return math.nan
    return sum(1.0 - a[k] for k in common) / den


def corruption_matrix(rows: Sequence[Dict], model: str, protocol: str, metric: str = "mAP",
                      dataset: Optional[str] = None) -> Tuple[List[str], List[int], np.ndarray]:
    """(corruptions in run order, severities, matrix C×S of the metric averaged over passes; NaN where missing)."""
    vals: Dict[Tuple[str, int], List[float]] = defaultdict(list)
    corrs: List[str] = []
    for r in rows:
        if (r["model"] != model or r["protocol"] != protocol or r["corruption"] in (MIX, NONE)
                or (dataset is not None and r["dataset"] != dataset)):
            continue
        if r["corruption"] not in corrs:
            corrs.append(r["corruption"])
        vals[(r["corruption"], int(r["severity"]))].append(float(r[metric]))
    sevs = sorted({s for _, s in vals})
    mat = np.full((len(corrs), len(sevs)), np.nan)
    for (c, s), v in vals.items():
        mat[corrs.index(c), sevs.index(s)] = _mean(v)
    return corrs, sevs, mat


def format_table(rows: Sequence[Dict], columns: Sequence[str], percent: Sequence[str] = (),
                 headers: Optional[Sequence[str]] = None) -> str:
    """A markdown table; columns in ``percent`` are shown ×100 with one decimal, and ``X_std`` as ``± s``."""
    headers = list(headers or columns)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            if c in percent and isinstance(v, (int, float)):
                s = "–" if v != v else f"{100 * v:.1f}"
                sd = r.get(c + "_std")
                if isinstance(sd, float) and sd == sd:
                    s += f" ± {100 * sd:.1f}"
            elif isinstance(v, float):
                s = "–" if v != v else f"{v:.3f}"
            else:
                s = str(v)
            cells.append(s)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def robustness_table(rows: Sequence[Dict], reference_model: Optional[str] = None) -> str:
    """The headline markdown table: per model, mAP / R1 per protocol (sweep mean and mix mean ± std), retained."""
    summ = protocol_summary(rows)
    out_rows = []
    for d in summ:
        r = dict(d)
        r["what"] = d["protocol"] if d["source"] in ("clean",) else f"{d['protocol']} ({d['source']})"
        if reference_model and d["source"] == "sweep":
            r["mCE"] = error_ratio(rows, d["model"], reference_model, d["protocol"], d["dataset"])
        out_rows.append(r)
    cols = ["model", "dataset", "what", "cells", "R1", "mAP", "mINP", "retained_mAP"]
    heads = ["model", "dataset", "protocol", "cells", "R1 %", "mAP %", "mINP %", "retained mAP"]
    if reference_model:
        cols.append("mCE")
        heads.append(f"error ratio vs {reference_model}")
    return format_table(out_rows, cols, percent=("R1", "mAP", "mINP"), headers=heads)
