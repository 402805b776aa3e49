"""The figures of ``robustreid viz actmap | gradcam | embed`` and of the report's "Inside the models" section.

Each function takes a loaded model and a dataset, makes the clean and corrupted versions of the chosen crops the
way the benchmark does (:mod:`robustreid.viz.source`), and returns ``(png, caption)``.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .actmap import activation_maps
from .embed import embedding_figure, embedding_map
from .gradcam import grad_cams
from .layers import default_layers, get_layer
from .sheet import Row, grid_figure, row_overlays
from .source import (Variant, embed, model_batch, read_crops, short_name, spread_queries, true_matches,
                     variant_crops)


def _layers(model: nn.Module, names: Optional[Sequence[str]], purpose: str) -> Dict[str, str]:
    if not names:
        return default_layers(model, purpose)
    for n in names:
        get_layer(model, n)
    return {n: n for n in names}


def _stacked(model: nn.Module, vc: Mapping[Variant, List[torch.Tensor]]) -> torch.Tensor:
    """All versions of all queries in one batch, variant-major: index v * Q + q."""
    return torch.cat([model_batch(model, crops) for crops in vc.values()])


def actmap_figure(model: nn.Module, name: str, ds, root: Optional[str], queries: Sequence[int],
                  variants: Sequence[Variant], layers: Optional[Sequence[str]] = None,
                  seed: int = 0) -> Tuple[bytes, str]:
    """Activation energy of the layers (default: :func:`default_layers`) for each query, clean and corrupted."""
    samples = [ds.query[i] for i in queries]
    vc = variant_crops(samples, variants, ds.name, root, seed)
    chosen = _layers(model, layers, "actmap")
    batch = _stacked(model, vc)
    maps = activation_maps(model, batch, chosen)
    nq, nv = len(samples), len(variants)
    rows = []
    for q, s in enumerate(samples):
        idx = [v * nq + q for v in range(nv)]
        for label, lm in maps.items():
            title = f"{short_name(s.path)}\n{label}" + (f"\n{lm.layer}" if lm.layer != label else "")
            rows.append(Row(title, row_overlays([batch[i] for i in idx], lm.values[idx],
                                                [v.label for v in variants], bands=lm.bands)))
    png = grid_figure(rows, title=f"{name} — activation energy", note=_scale_note(maps))
    caption = ("Activation energy (mean over channels of the squared activation) of "
               + ", ".join(f"<code>{lm.layer}</code>" for lm in maps.values())
               + "; one colour scale per row (the clean and corrupted versions of one query), so a weaker "
                 "response shows darker. Stripe scores are written on their bands.")
    return png, caption


def _scale_note(maps) -> str:
    if any(lm.bands for lm in maps.values()):
        return "heat: activation energy, one scale per row; bands: per-stripe score (0 = occluded, 1 = visible)"
    return "heat: activation energy, one colour scale per row"


def match_references(model: nn.Module, ds, queries: Sequence[int], clean_q: torch.Tensor):
    """Per query: the clean embedding of its true match most similar to the clean query (another camera), or None
    when the gallery holds none; and the match's file name. All matches are embedded in one pass."""
    matches = [true_matches(ds.query[i], ds.gallery) for i in queries]
    flat = [j for idx in matches for j in idx]
    emb = embed(model, read_crops([ds.gallery[j] for j in flat])) if flat else torch.zeros(0, clean_q.shape[1])
    refs: List[Optional[torch.Tensor]] = []
    names: List[str] = []
    start = 0
    for k, idx in enumerate(matches):
        if not idx:
            refs.append(None)
            names.append("")
            continue
        e = emb[start:start + len(idx)]
        start += len(idx)
        sim = torch.nn.functional.normalize(e, dim=1) @ torch.nn.functional.normalize(clean_q[k], dim=0)
        best = int(torch.argmax(sim))
        refs.append(e[best])
        names.append(short_name(ds.gallery[idx[best]].path))
    return refs, names


def gradcam_figure(model: nn.Module, name: str, ds, root: Optional[str], queries: Sequence[int],
                   variants: Sequence[Variant], layers: Optional[Sequence[str]] = None, method: str = "gradcam",
                   reference: str = "match", seed: int = 0) -> Tuple[bytes, str]:
    """Grad-CAM of the similarity to the reference (the query's true match, or the clean query itself) at the
    layers (default: :func:`default_layers` for Grad-CAM)."""
    if reference not in ("match", "self"):
        raise ValueError(f"reference: expected 'match' or 'self', got {reference!r}")
    samples = [ds.query[i] for i in queries]
    vc = variant_crops(samples, variants, ds.name, root, seed)
    chosen = _layers(model, layers, "gradcam")
    batch = _stacked(model, vc)
    nq, nv = len(samples), len(variants)
    clean_q = embed(model, vc[variants[0]])
    refs, ref_names = (match_references(model, ds, queries, clean_q) if reference == "match"
                       else ([None] * nq, [""] * nq))
    ref = torch.stack([r if r is not None else clean_q[q] for q, r in enumerate(refs)])
    project = torch.zeros(nv * nq, dtype=torch.bool)
    project[:nq] = torch.tensor([r is None for r in refs]) & (variants[0].corruption == "clean")
    cams = grad_cams(model, batch, ref.repeat(nv, 1), list(chosen.values()), method=method, project=project)
    rows = []
    for q, s in enumerate(samples):
        idx = [v * nq + q for v in range(nv)]
        target = f"match {ref_names[q]}" if refs[q] is not None else "self"
        for label, lname in chosen.items():
            title = f"{short_name(s.path)}\nref: {target}\n{label}" + (f"\n{lname}" if lname != label else "")
            rows.append(Row(title, row_overlays([batch[i] for i in idx], cams[lname].values[idx],
                                                [v.label for v in variants])))
    what = "Grad-CAM++" if method == "gradcam++" else "Grad-CAM"
    png = grid_figure(rows, title=f"{name} — {what} of the similarity to the reference",
                      note="heat: positive evidence for the similarity to the reference, one colour scale per row")
    caption = (f"{what} at " + ", ".join(f"<code>{n}</code>" for n in chosen.values()) + ": where the evidence "
               "for the cosine similarity to the reference embedding lies — the query's true match in the gallery "
               "(ref: match), or the clean query's own embedding (ref: self; the clean version then shows the "
               "projection on it, since the cosine is flat at its maximum).")
    return png, caption


def identity_crops(ds, n_ids: int, per_id: int) -> Tuple[List, List[int]]:
    """Up to ``per_id`` crops (query first, then gallery, other cameras first) of ``n_ids`` query identities."""
    picks = spread_queries(ds.query, n_ids)
    samples, pids = [], []
    for i in picks:
        q = ds.query[i]
        others = [g for g in ds.gallery if g.pid == q.pid]
        others.sort(key=lambda g: (g.camid == q.camid, g.path))
        for s in ([q] + others)[:per_id]:
            samples.append(s)
            pids.append(int(q.pid))
    if len(samples) < 4:
        raise ValueError(f"an embedding map needs at least 4 crops; the dataset gave {len(samples)}")
    return samples, pids


def embed_figure(model: nn.Module, name: str, ds, root: Optional[str], variants: Sequence[Variant], *,
                 n_ids: int = 10, per_id: int = 4, seed: int = 0, method: str = "tsne",
                 perplexity: Optional[float] = None):
    """(png, caption, EmbeddingMap): the 2-D map of N identities' crops, clean and corrupted, and the bars."""
    samples, pids = identity_crops(ds, n_ids, per_id)
    vc = variant_crops(samples, variants, ds.name, root, seed)
    feats = {v.label: embed(model, crops).numpy() for v, crops in vc.items()}
    em = embedding_map(feats, pids, seed=seed, method=method, perplexity=perplexity)
    png = embedding_figure(em, title=f"{name} — {len(set(pids))} identities, {len(samples)} crops",
                           method="t-SNE" if method == "tsne" else "UMAP")
    caption = ("Left: a 2-D layout of the L2-normalised embeddings (colour = identity, marker = version; each "
               "corrupted crop joined to its clean self). Right: the mean cosine distance between a crop's clean "
               "and corrupted embedding, with the clean same-identity and other-identity distances as yardsticks: "
               "a bar past the red line moves a person farther than the average stranger.")
    return png, caption, em
