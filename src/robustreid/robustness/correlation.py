"""Does corruption robustness rise with cross-dataset generalisation? Pearson and Spearman across models.

For each model (matched by name):

- *robustness* = its mean corrupted mAP on the benchmark runs (protocol ``both`` by default; the mix protocol's
  mean over passes when the run has it, else the sweep mean over corruptions × severities);
- *cross-dataset mAP* = its clean mAP in the ``cross`` runs (the same model benchmarked, clean protocol at least,
  on another dataset; the mean when several other datasets are given).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .results import load_runs
from .summary import protocol_summary


def robustness_by_model(rows: Sequence[Dict], protocol: str = "both") -> Dict[str, Dict]:
    """model -> {"dataset", "clean_mAP", "corrupted_mAP", "source"} from benchmark rows."""
    out: Dict[str, Dict] = {}
    summ = protocol_summary(rows)
    for d in summ:
        if d["protocol"] == "clean":
            out.setdefault(d["model"], {})["clean_mAP"] = d["mAP"]
            out[d["model"]]["dataset"] = d["dataset"]
    for src in ("sweep", "mix"):  # mix (the published protocol) wins when present
        for d in summ:
            if d["protocol"] == protocol and d["source"] == src:
                e = out.setdefault(d["model"], {})
                e["corrupted_mAP"] = d["mAP"]
                e["source"] = src
                e.setdefault("dataset", d["dataset"])
    return out


EXACT_MAX_N = 8  # up to 8 models every one of the n! pairings is enumerated (40,320); above, scipy's asymptotic p


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two equally shaped 2-D arrays."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    return (xc * yc).sum(1) / np.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))


def _exact_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided permutation p-value of Pearson's r (Spearman's ρ when given ranks): the share of the n! pairings of
    ``y`` with ``x`` whose |r| is at least the observed one (the observed pairing included). Exact for the small
    model counts of a study, where the t-approximation behind scipy's p-values is wrong (p = 0 for three points in
    order)."""
    from itertools import permutations

    ys = y[np.array(list(permutations(range(len(y)))))]  # (n!, n)
    vals = np.abs(_pearson_rows(np.broadcast_to(x, ys.shape), ys))
    obs = abs(_pearson_rows(x[None], y[None])[0])
    return float(np.mean(vals >= obs - 1e-12))


def correlate(x: Sequence[float], y: Sequence[float]) -> Dict[str, float]:
    """Pearson r and Spearman ρ with two-sided p-values; NaN with fewer than 3 points or no spread.

    With at most ``EXACT_MAX_N`` points the p-values are exact permutation p-values (every pairing enumerated;
    ``p_method`` = "exact"), else scipy.stats' asymptotic ones ("asymptotic"). Three models in perfect order give
    ρ = 1 with p = 1/3: two of the six pairings are as extreme."""
    from scipy import stats

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    out = {"n": int(len(x)), "pearson_r": math.nan, "pearson_p": math.nan, "spearman_rho": math.nan,
           "spearman_p": math.nan, "p_method": "none"}
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    pr = stats.pearsonr(x, y)
    sr = stats.spearmanr(x, y)
    out.update(pearson_r=float(pr[0]), pearson_p=float(pr[1]), spearman_rho=float(sr[0]),
               spearman_p=float(sr[1]), p_method="asymptotic")
    if len(x) <= EXACT_MAX_N:
        # ties share their mean rank, as Spearman's rho wants
        out.update(pearson_p=_exact_p(x, y), spearman_p=_exact_p(stats.rankdata(x), stats.rankdata(y)),
                   p_method="exact")
    return out


def correlation_analysis(run_dirs: Sequence[Union[str, Path]], cross_dirs: Sequence[Union[str, Path]],
                         protocol: str = "both", out_dir: Optional[Union[str, Path]] = None) -> Dict:
    """Points (one per model present in both), the correlations, and (with ``out_dir``) a scatter plot PNG and a
    JSON of the numbers. Raises ValueError when no model appears in both sets of runs."""
    rows, _ = load_runs(run_dirs)
    cross_rows, _ = load_runs(cross_dirs)
    rob = robustness_by_model(rows, protocol)
    cross: Dict[str, List[float]] = {}
    for r in cross_rows:
        if r["protocol"] != "clean":
            continue
        home = rob.get(r["model"], {}).get("dataset")
        if home is not None and r["dataset"] == home:
            continue  # same dataset: not cross-dataset
        cross.setdefault(r["model"], []).append(float(r["mAP"]))
    points = []
    for model, e in rob.items():
        if "corrupted_mAP" in e and model in cross:
            points.append({"model": model, "dataset": e.get("dataset"), "clean_mAP": e.get("clean_mAP", math.nan),
                           "corrupted_mAP": e["corrupted_mAP"], "source": e.get("source"),
                           "cross_mAP": float(np.mean(cross[model]))})
    if not points:
        raise ValueError(f"no model is in both the benchmark runs ({sorted(rob)}) and the cross-dataset runs "
                         f"({sorted(cross)}); models are matched by name")
    stats = correlate([p["corrupted_mAP"] for p in points], [p["cross_mAP"] for p in points])
    result = {"protocol": protocol, "points": points, **stats}
    if out_dir is not None:
        import json

        from ..utils.io import atomic_write_text
        from ..viz.plots import scatter_plot

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        title = (f"Corruption robustness vs cross-dataset mAP\n(n={stats['n']} models, Pearson r="
                 f"{_f(stats['pearson_r'])}, Spearman ρ={_f(stats['spearman_rho'])})")
        png = scatter_plot([100 * p["corrupted_mAP"] for p in points], [100 * p["cross_mAP"] for p in points],
                           [p["model"] for p in points], xlabel=f"mean corrupted mAP % ({protocol})",
                           ylabel="cross-dataset clean mAP %", title=title)
        from ..utils.io import atomic_write_bytes

        atomic_write_bytes(out / "correlation.png", png)
        atomic_write_text(out / "correlation.json", json.dumps(result, indent=1))
        result["plot"] = str(out / "correlation.png")
    return result


def _f(v: float) -> str:
    return "n/a" if v != v else f"{v:.2f}"
