#!/usr/bin/env python
"""Does FED's occlusion erasing module find the occluder? OEM visibility scores against known occlusion.

    python benchmarks/fed_oem_scores.py --checkpoint fed_lite0=runs/occluded/occluded_duke/models/fed_lite0 \
        [--checkpoint fed_lite0_oem=...] --dataset occluded_duke --root real/data/Occluded_Duke \
        [--severities 1,3] [--queries 0] [--out runs/occluded/occluded_duke/features/oem_scores.json]

For every query (all of them by default; ``--queries N`` spreads N over the identities) and every occluder of the
benchmark's occlusion family (the same seeded pixels as ``robustreid bench``), the model's OEM scores (one per
horizontal stripe, 1 = visible) on the occluded crop are compared with what was pasted, at the crop's own
resolution, where the pixels outside the occluder are exactly the clean ones:

- the **NPO target** of each stripe (``stripe_targets``: the rule the OEM was trained with, 0 = occluded): the mean
  score on target-0 and on target-1 stripes, and the ROC AUC of ``1 - score`` for target 0 (scikit-learn);
- the **coverage** of each stripe (the fraction of its pixels the occluder changed): Spearman's ρ between score and
  coverage (SciPy), which needs no rule (a score that falls as more of the stripe is covered gives ρ < 0).

A pasted pedestrian spans the crop's height, so all four stripes are touched and NPO's rule marks them all visible
(FED leaves pedestrians to its feature diffusion, not to the OEM): its AUC is undefined and only ρ speaks. The clean
queries' mean score per stripe, top first, is reported too: Occluded-Duke's queries are occluded for real (mostly
low in the crop), with no mask to score against. As a control, the occluders the OEM was trained with: NPO
(``source: batch``, as in the FED presets) on the same queries at the model's resolution, seeded (condition
``npo``). One JSON (written atomically) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

from robustreid.corruptions import OCCLUSIONS
from robustreid.transforms.augment.base import AugContext
from robustreid.transforms.augment.npo import NPO, stripe_targets
from robustreid.utils.io import atomic_write_text
from robustreid.utils.progress import progress_bar
from robustreid.viz.source import (Variant, make_variant, model_batch, open_dataset, read_crops, resolve_device,
                                   load_models, spread_queries)


NPO_CONTROL = ("npo", 0)  # the training occluders, as a control


def stripe_coverage(clean: torch.Tensor, occluded: torch.Tensor, num_stripes: int) -> torch.Tensor:
    """Fraction of each horizontal stripe's pixels that differ between two crops (3×H×W each) -> num_stripes
    values, top first; the stripes split the rows as ``stripe_targets`` does."""
    changed = (occluded.float() - clean.float()).abs().amax(dim=0) > 0  # H×W
    h = changed.shape[0]
    bounds = [round(i * h / num_stripes) for i in range(num_stripes + 1)]
    return torch.stack([changed[bounds[i]:bounds[i + 1]].float().mean() for i in range(num_stripes)])


def detection_summary(scores: np.ndarray, targets: np.ndarray, coverage: np.ndarray) -> Dict[str, float]:
    """Scores, NPO targets (1 visible, 0 occluded) and coverage, any shape alike -> the summary of one condition
    (NaN where a quantity is undefined: one class only, or a constant input)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    s, t, c = (np.asarray(a, dtype=np.float64).ravel() for a in (scores, targets, coverage))
    occluded = t < 0.5
    auc = float(roc_auc_score(occluded, 1.0 - s)) if 0 < occluded.sum() < occluded.size else math.nan
    rho = math.nan
    if np.ptp(s) > 0 and np.ptp(c) > 0:
        rho = float(spearmanr(s, c).statistic)
    return {"stripes": int(s.size), "occluded_stripes": int(occluded.sum()),
            "score_occluded": float(s[occluded].mean()) if occluded.any() else math.nan,
            "score_visible": float(s[~occluded].mean()) if (~occluded).any() else math.nan,
            "auc": auc, "spearman_coverage": rho}


@torch.no_grad()
def _scores(model, images: torch.Tensor) -> torch.Tensor:
    """OEM scores N×S (CPU, float) of a batch at the model's input size."""
    return model.occlusion_scores(images).float().cpu()


class _NPOControl:
    """The occluders the OEM was trained on: NPO (``source: batch``, p 1, as in the FED presets) on the queries at
    the model's resolution, seeded; its pool is filled from the first batch before that batch is occluded."""

    def __init__(self, num_stripes: int, seed: int):
        self.npo = NPO(p=1.0, source="batch", num_stripes=num_stripes)
        self.ctx = AugContext(generator=torch.Generator().manual_seed(seed))
        self.num_stripes = num_stripes

    def __call__(self, x: torch.Tensor):
        """uint8 N×3×H×W -> (occluded float images in [0, 1], NPO targets N×S, coverage N×S)."""
        clean = x.float().div(255.0)
        if len(self.npo.pool) == 0:
            self.npo({"images": clean}, self.ctx)  # fills the pool only
        b = self.npo({"images": clean}, self.ctx)
        cov = torch.stack([stripe_coverage(a, o, self.num_stripes) for a, o in zip(clean, b["images"])])
        return b["images"], b["stripe_targets"].float().cpu(), cov


@torch.no_grad()
def measure(model, samples: Sequence, dataset: str, root, severities: Sequence[int], seed: int = 0,
            batch_size: int = 64, progress: bool = False) -> Dict:
    """Clean scores and, per occluder × severity (and NPO's own occluders, ``("npo", 0)``, the control), scores,
    NPO targets and coverage (lists of N×S)."""
    if getattr(model, "oem", None) is None or not hasattr(model, "occlusion_scores"):
        raise ValueError("the model has no occlusion erasing module (a FED model with method_kwargs.oem true)")
    model.eval()
    s = int(model.num_stripes)
    conditions = [(c, int(v)) for c in OCCLUSIONS for v in severities]
    clean_scores: List[torch.Tensor] = []
    per = {k: {"scores": [], "targets": [], "coverage": []} for k in [NPO_CONTROL] + conditions}
    control = _NPOControl(s, seed)
    bar = progress_bar(total=len(samples), desc="oem scores", unit="query") if progress else None
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        crops, paths = read_crops(chunk), [x.path for x in chunk]
        x = model_batch(model, crops)
        clean_scores.append(_scores(model, x))
        occ, targets, cov = control(x)
        per[NPO_CONTROL]["scores"].append(_scores(model, occ))
        per[NPO_CONTROL]["targets"].append(targets)
        per[NPO_CONTROL]["coverage"].append(cov)
        for c, v in conditions:
            occ = make_variant(crops, paths, Variant(c, v), dataset, root, seed)
            per[(c, v)]["scores"].append(_scores(model, model_batch(model, occ)))
            per[(c, v)]["targets"].append(torch.cat([stripe_targets(a[None], b[None], s) for a, b in zip(crops, occ)]))
            per[(c, v)]["coverage"].append(torch.stack([stripe_coverage(a, b, s) for a, b in zip(crops, occ)]))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    out = {"clean_scores": torch.cat(clean_scores).numpy()}
    out["conditions"] = {k: {n: torch.cat(vals).numpy() for n, vals in d.items()} for k, d in per.items()}
    return out


def summarise(m: Dict) -> Dict:
    conds = {("npo" if (c, v) == NPO_CONTROL else f"{c}:{v}"): detection_summary(d["scores"], d["targets"],
                                                                                 d["coverage"])
             for (c, v), d in m["conditions"].items()}
    allc = [d for (c, _), d in m["conditions"].items() if c not in ("occlusion_pedestrian", NPO_CONTROL[0])]
    pooled = {n: np.concatenate([d[n] for d in allc]) for n in ("scores", "targets", "coverage")} if allc else None
    return {"queries": int(m["clean_scores"].shape[0]),
            "clean_score_per_stripe": [float(x) for x in m["clean_scores"].mean(axis=0)],
            "conditions": conds,
            "non_pedestrian": detection_summary(pooled["scores"], pooled["targets"], pooled["coverage"])
            if pooled else None}


def _f(x: float, nd: int = 2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def table(results: Dict[str, Dict]) -> List[str]:
    lines = ["| model | condition | stripes occluded (NPO rule) | mean score, occluded / visible | AUC "
             "| ρ(score, coverage) |", "|---|---|---:|---|---:|---:|"]
    for name, r in results.items():
        rows = list(r["conditions"].items()) + ([("non-pedestrian, pooled", r["non_pedestrian"])]
                                                if r["non_pedestrian"] else [])
        for cond, d in rows:
            lines.append(f"| `{name}` | {cond} | {d['occluded_stripes']} / {d['stripes']} | "
                         f"{_f(d['score_occluded'])} / {_f(d['score_visible'])} | {_f(d['auc'], 3)} | "
                         f"{_f(d['spearman_coverage'], 3)} |")
    lines += ["", "| model | clean queries: mean score per stripe, top to bottom |", "|---|---|"]
    lines += [f"| `{n}` | " + " / ".join(_f(x) for x in r["clean_score_per_stripe"]) + " |" for n, r in results.items()]
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", required=True, help="NAME=PATH of a FED checkpoint (repeat)")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--severities", default="1,3")
    ap.add_argument("--queries", type=int, default=0, help="0 = every query; N = N spread over the identities")
    ap.add_argument("--seed", type=int, default=0, help="the corruption seed (as in robustreid bench)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default="", help="JSON file for the summaries")
    a = ap.parse_args(argv)
    try:
        parts = [x.strip() for x in a.severities.split(",") if x.strip()]
        if not parts or not all(x in "12345" and len(x) == 1 for x in parts):
            raise ValueError(f"--severities: expected a comma-separated list of 1..5, got {a.severities!r}")
        severities = [int(x) for x in parts]
        if a.queries < 0:
            raise ValueError(f"--queries: expected 0 (all) or a positive number, got {a.queries}")
        if a.out and _kept(Path(a.out), _meta(a, severities)):
            return 0
        ds = open_dataset(a.dataset, a.root)
        idx = spread_queries(ds.query, a.queries) if a.queries else range(len(ds.query))
        samples = [ds.query[i] for i in idx]
        results = {}
        for name, model in load_models(a.checkpoint, resolve_device(a.device)).items():
            print(f"{name}: {len(samples)} queries × (clean + NPO + {len(OCCLUSIONS) * len(severities)} occluded)",
                  file=sys.stderr)
            try:
                results[name] = summarise(measure(model, samples, a.dataset, a.root, severities, a.seed,
                                                  progress=True))
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from None
    except (ValueError, FileNotFoundError, KeyError, OSError) as e:
        print(f"fed_oem_scores: {e}", file=sys.stderr)
        return 2
    print("\n".join(table(results)))
    if a.out:
        meta = dict(_meta(a, severities), queries=len(samples))
        atomic_write_text(Path(a.out), json.dumps({"meta": meta, "models": results}, indent=1, allow_nan=True))
    return 0


def _meta(a: argparse.Namespace, severities: List[int]) -> Dict:
    """What the results depend on (the checkpoints by name and path)."""
    return {"dataset": a.dataset, "root": str(a.root), "severities": severities, "seed": a.seed,
            "queries_asked": a.queries, "checkpoints": sorted(a.checkpoint)}


def _kept(path: Path, meta: Dict) -> bool:
    """An existing results file of the same inputs is kept (its table printed again; a study script can call this
    for free); one of other inputs is refused rather than overwritten or mixed."""
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        same = {k: old["meta"].get(k) for k in meta} == meta
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path}: exists but is not a results file of this script; move it or choose another --out")
    if not same:
        raise ValueError(f"{path}: exists with other inputs ({old['meta']}); move it or choose another --out")
    print(f"kept {path}", file=sys.stderr)
    print("\n".join(table(old["models"])))
    return True


if __name__ == "__main__":
    sys.exit(main())
