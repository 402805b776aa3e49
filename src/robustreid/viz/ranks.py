"""Ranked-list sheets: a query and its top-k gallery crops, clean next to corrupted, model A next to model B.

One record format and one drawing path serve both the report and ``robustreid viz ranks``: the benchmark writes a
record per model to ``RUN/examples/MODEL.json`` (:func:`robustreid.robustness.run_benchmark`), and
:func:`compute_record` writes the same record from a checkpoint for chosen or worst queries::

    {"model", "dataset", "root", "seed", "queries": [relative paths], "query_pids",
     "clean": [{"gallery": [relative paths of the top k], "match": [bool]}],
     "corrupted": {"protocol": "both"|"query", "corruption", "severity", "pass", "mix_corruptions",
                   "mix_severities", "lists": [... as clean ...]}}

:func:`record_rows` turns a record into rows of crops (the corrupted crops re-made with the benchmark's seeds) and
:func:`ranks_image` draws them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..eval import evaluate
from ..robustness.apply import CorruptionTransform
from ..robustness.extract import read_image_any
from ..robustness.protocols import MIX, relative_path
from ..robustness.runner import topk_ranking
from . import plots
from .sheet import palette_png


def load_crop(root: Optional[str], rel: str):
    p = Path(rel)
    if not p.is_absolute() and root:
        p = Path(root) / rel
    return read_image_any(str(p))


def _transform(record: Dict[str, Any]) -> CorruptionTransform:
    cor = record["corrupted"]
    kw = dict(mix_corruptions=cor.get("mix_corruptions") or (), mix_severities=cor.get("mix_severities") or
              (1, 2, 3, 4, 5))
    return CorruptionTransform(record["dataset"], None, cor["corruption"], cor["severity"], cor["pass"],
                               int(record.get("seed", 0)), **kw)


def describe(record: Dict[str, Any]) -> str:
    """"fog, severity 3" / "mix protocol, pass 0" / "" for a record's corrupted lists."""
    cor = record.get("corrupted")
    if not cor:
        return ""
    what = ("mix protocol, pass " + str(cor["pass"]) if cor["corruption"] == MIX
            else f"{cor['corruption'].replace('_', ' ')}, severity {cor['severity']}")
    if cor.get("protocol", "both") == "query":
        what += " (query only)"
    return what


def _short(cor: Dict[str, Any]) -> str:
    """"fog s3" / "mix pass 0" (+ " (q)" when only the query was corrupted): the label of a corrupted row."""
    s = f"mix pass {cor['pass']}" if cor["corruption"] == MIX else \
        f"{cor['corruption'].replace('_', ' ')} s{cor['severity']}"
    return s + (" (q)" if cor.get("protocol", "both") == "query" else "")


def record_rows(record: Dict[str, Any], n_queries: int, prefix: str = "") -> List[Dict[str, Any]]:
    """Rows for :func:`ranks_image`: per query its clean list, then its corrupted list (query, and gallery
    when the protocol corrupted it, re-made with the benchmark's per-image seeds). Raises OSError / ValueError /
    KeyError when crops or fields are missing."""
    root = record.get("root")
    cor = record.get("corrupted")
    t = _transform(record) if cor else None
    rows = []
    for i, rel in enumerate(record["queries"][:n_queries]):
        q = load_crop(root, rel)
        cl = record["clean"][i]
        rows.append({"label": f"{prefix}q{i + 1} clean", "query": q,
                     "gallery": [load_crop(root, p) for p in cl["gallery"]], "match": cl["match"]})
        if t is None:
            continue
        lst = cor["lists"][i]
        gimgs = [load_crop(root, p) for p in lst["gallery"]]
        if cor.get("protocol", "both") == "both":
            gimgs = t.apply(gimgs, lst["gallery"])
        rows.append({"label": f"{prefix}q{i + 1} {_short(cor)}", "query": t.apply([q], [rel])[0], "gallery": gimgs,
                     "match": lst["match"]})
    return rows


def compare_rows(records: Sequence[Dict[str, Any]], n_queries: int) -> List[Dict[str, Any]]:
    """Several models' records on the same queries, interleaved: per query, model A's rows then model B's."""
    chunks = []
    for r in records:
        rows = record_rows(r, n_queries, prefix=f"{r.get('model')} ")
        g = 2 if r.get("corrupted") else 1
        chunks.append([rows[i:i + g] for i in range(0, len(rows), g)])
    out: List[Dict[str, Any]] = []
    for qi in range(max((len(c) for c in chunks), default=0)):
        for c in chunks:
            if qi < len(c):
                out.extend(c[qi])
    return out


def ranks_image(rows: Sequence[Dict[str, Any]], title: str, k: int = 10) -> bytes:
    """The rows drawn by :func:`robustreid.viz.plots.ranked_list_image`, as a 256-colour PNG."""
    return palette_png(plots.ranked_list_image(rows, title=title, k=k))


# ------------------------------------------------------------------------------------- records from a checkpoint
def worst_queries(ap_clean: np.ndarray, ap_corrupted: np.ndarray, pids: Sequence[int], n: int) -> List[int]:
    """The ``n`` queries (one per identity) that lose the most AP under the corruption; ties: lower corrupted AP,
    then query order. Queries without a valid match (NaN AP) are skipped."""
    drop = np.asarray(ap_corrupted, dtype=float) - np.asarray(ap_clean, dtype=float)
    order = sorted((i for i in range(len(drop)) if np.isfinite(drop[i])),
                   key=lambda i: (drop[i], ap_corrupted[i], i))
    seen, out = set(), []
    for i in order:
        if pids[i] in seen:
            continue
        seen.add(pids[i])
        out.append(int(i))
        if len(out) == n:
            break
    return out


def _lists(qf, gf, q_idx, qs, gs, root, k) -> List[Dict[str, Any]]:
    q_pids = np.asarray([s.pid for s in qs])
    q_cams = np.asarray([s.camid for s in qs])
    g_pids = np.asarray([s.pid for s in gs])
    g_cams = np.asarray([s.camid for s in gs])
    qi = np.asarray(q_idx, dtype=np.int64)
    rk = topk_ranking(qf[qi], gf, q_pids[qi], g_pids, q_cams[qi], g_cams, k=k)
    return [{"gallery": [relative_path(gs[j].path, root) for j in r], "match": m} for r, m in rk]


def per_query_ap(qf, gf, qs, gs) -> np.ndarray:
    res = evaluate(qf, gf, [s.pid for s in qs], [s.pid for s in gs], [s.camid for s in qs],
                   [s.camid for s in gs], metric="cosine", max_rank=1)
    return np.asarray(res.per_query_ap, dtype=float)


def compute_record(name: str, features: Dict[str, np.ndarray], ds, root: Optional[str], queries: Sequence[int],
                   corruption: str, severity: int, protocol: str, seed: int, k: int = 10) -> Dict[str, Any]:
    """A ranked-list record from features ({"query", "gallery", "query_c", "gallery_c"}: the clean and corrupted
    features; ``gallery_c`` only for protocol ``both``)."""
    qs, gs = ds.query, ds.gallery
    gf_c = features["gallery_c"] if protocol == "both" else features["gallery"]
    return {"model": name, "dataset": ds.name, "root": str(root) if root else None, "seed": int(seed),
            "queries": [relative_path(qs[i].path, root) for i in queries],
            "query_pids": [int(qs[i].pid) for i in queries],
            "clean": _lists(features["query"], features["gallery"], queries, qs, gs, root, k),
            "corrupted": {"protocol": protocol, "corruption": corruption, "severity": int(severity), "pass": 0,
                          "mix_corruptions": [], "mix_severities": [],
                          "lists": _lists(features["query_c"], gf_c, queries, qs, gs, root, k)}}


def choose_queries(spec: str, features: Dict[str, np.ndarray], ds, protocol: str) -> Tuple[List[int], str]:
    """``worst:N`` (the N queries losing the most AP), ``N`` (spread over identities), or indices / file names;
    returns the indices and a sentence saying how they were chosen."""
    from .source import pick_queries

    if str(spec).startswith("worst"):
        n = int(str(spec).partition(":")[2] or 4)
        gf_c = features["gallery_c"] if protocol == "both" else features["gallery"]
        ap0 = per_query_ap(features["query"], features["gallery"], ds.query, ds.gallery)
        ap1 = per_query_ap(features["query_c"], gf_c, ds.query, ds.gallery)
        idx = worst_queries(ap0, ap1, [s.pid for s in ds.query], n)
        drops = ", ".join(f"{100 * ap0[i]:.0f}→{100 * ap1[i]:.0f}" for i in idx)
        return idx, f"the {len(idx)} queries (one per identity) losing the most AP (AP % clean→corrupted: {drops})"
    idx = pick_queries(ds.query, spec)
    return idx, "chosen queries"


def ranks_features(model, ds, root: Optional[str], corruption: str, severity: int, protocol: str, seed: int, *,
                   batch_size: int = 128, progress: bool = True) -> Dict[str, np.ndarray]:
    """Clean and corrupted features of the query and gallery sets (the gallery corrupted for ``both`` only),
    extracted like the benchmark's pass 0."""
    from ..engine.extract import extract_features

    if protocol not in ("both", "query"):
        raise ValueError(f"protocol: expected 'both' or 'query', got {protocol!r}")

    def run(samples, desc, corrupted):
        t = CorruptionTransform(ds.name, root, corruption, severity, 0, seed) if corrupted else None
        return extract_features(model, samples, batch_size=batch_size, transform=t, progress=progress, desc=desc)

    feats = {"query": run(ds.query, "query", False), "gallery": run(ds.gallery, "gallery", False),
             "query_c": run(ds.query, "query corrupted", True)}
    if protocol == "both":
        feats["gallery_c"] = run(ds.gallery, "gallery corrupted", True)
    return feats
