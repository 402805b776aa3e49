"""Embedding maps: how far a corruption moves a person away from themself.

The embeddings of the same crops, clean and under each corruption, are laid out together in 2-D (t-SNE from
scikit-learn; UMAP when ``umap-learn`` is installed) after L2 normalisation (the cosine geometry the evaluator
ranks with). Each corrupted point is joined to its clean point by a line, points are coloured by identity. The
layout only shows neighbourhoods; the displacement is measured in the embedding space itself: the cosine
distance ``1 − cos(f(x), f(x'))`` between a crop's clean and corrupted embedding, averaged per corruption, next
to two yardsticks from the clean embeddings — the mean distance between crops of the same identity and between
crops of different identities. The same features give the same map (t-SNE starts from their PCA projection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import plots
from .sheet import palette_png

METHODS = ("tsne", "umap")


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cosine_displacement(clean: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per row: ``1 − cos`` between the clean and the other embedding of the same crop."""
    if clean.shape != other.shape:
        raise ValueError(f"embeddings of different shapes {clean.shape} and {other.shape}")
    return 1.0 - np.sum(_unit(clean) * _unit(other), axis=1)


def identity_yardsticks(clean: np.ndarray, pids: Sequence[int]) -> Dict[str, float]:
    """Mean cosine distance between clean crops of the same identity and of different identities."""
    u = _unit(clean)
    d = 1.0 - u @ u.T
    p = np.asarray(pids)
    same = (p[:, None] == p[None, :]) & ~np.eye(len(p), dtype=bool)
    diff = p[:, None] != p[None, :]
    return {"same identity": float(d[same].mean()) if same.any() else float("nan"),
            "other identities": float(d[diff].mean()) if diff.any() else float("nan")}


def layout_2d(features: np.ndarray, *, seed: int = 0, method: str = "tsne",
              perplexity: Optional[float] = None) -> np.ndarray:
    """N×2 coordinates of L2-normalised ``features``. t-SNE starts from the PCA projection, so the same features
    give the same map (the seed only matters for UMAP)."""
    x = _unit(features).astype(np.float32)
    n = len(x)
    if n < 4:
        raise ValueError(f"an embedding map needs at least 4 points, got {n}")
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(perplexity) if perplexity else min(30.0, max(2.0, (n - 1) / 3.0))
        if not 0 < perp < n:
            raise ValueError(f"perplexity {perp} must be below the number of points ({n})")
        return TSNE(n_components=2, perplexity=perp, init="pca", random_state=int(seed), n_jobs=1).fit_transform(x)
    if method == "umap":
        try:
            import umap  # type: ignore
        except ImportError:
            raise ValueError("method 'umap' needs the umap-learn package (pip install umap-learn); "
                             "or use the default t-SNE") from None
        return umap.UMAP(n_components=2, random_state=int(seed), n_jobs=1).fit_transform(x)
    raise ValueError(f"unknown layout method {method!r}; expected one of {', '.join(METHODS)}")


@dataclass
class EmbeddingMap:
    """``coords[v]`` N×2 per variant (``variants[0]`` is the clean one), ``displacement[v]`` N cosine distances."""

    variants: List[str]
    pids: np.ndarray
    coords: Dict[str, np.ndarray]
    displacement: Dict[str, np.ndarray]
    yardsticks: Dict[str, float]


def embedding_map(features: Mapping[str, np.ndarray], pids: Sequence[int], *, seed: int = 0,
                  method: str = "tsne", perplexity: Optional[float] = None) -> EmbeddingMap:
    """Lay out ``features`` ({variant: N×D}, the first the clean one, rows = the same crops) in one 2-D map."""
    variants = list(features)
    if not variants:
        raise ValueError("no embeddings to lay out")
    clean = np.asarray(features[variants[0]])
    n = len(clean)
    if len(pids) != n:
        raise ValueError(f"{len(pids)} identities for {n} crops")
    for v in variants[1:]:
        if np.asarray(features[v]).shape != clean.shape:
            raise ValueError(f"variant {v!r}: shape {np.asarray(features[v]).shape}, expected {clean.shape}")
    xy = layout_2d(np.concatenate([np.asarray(features[v]) for v in variants]), seed=seed, method=method,
                   perplexity=perplexity)
    coords = {v: xy[i * n:(i + 1) * n] for i, v in enumerate(variants)}
    disp = {v: cosine_displacement(clean, np.asarray(features[v])) for v in variants[1:]}
    return EmbeddingMap(variants, np.asarray(pids), coords, disp, identity_yardsticks(clean, pids))


MARKERS = ["o", "^", "s", "D", "v", "P", "X", "*", "<", ">"]


def embedding_figure(em: EmbeddingMap, *, title: str = "", method: str = "t-SNE") -> bytes:
    """PNG: the 2-D map (lines from each clean point to its corrupted versions, colour = identity, marker =
    variant) and a bar chart of the mean displacement per corruption with the identity yardsticks."""
    plt = plots._plt()
    ids = sorted(set(em.pids.tolist()))
    cmap = plt.get_cmap("tab20" if len(ids) > 10 else "tab10")
    colour = {p: cmap(i % cmap.N) for i, p in enumerate(ids)}
    with plt.rc_context(plots._STYLE):
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 5.0), gridspec_kw={"width_ratios": [1.55, 1]})
        _draw_map(ax, em, colour)
        ax.set_title(f"{method} of the embeddings", loc="left", fontsize=11)
        _draw_bars(bx, em)
        if title:
            fig.suptitle(title, x=0.01, ha="left", fontsize=12, fontweight="bold")
        fig.tight_layout()
        return palette_png(plots.fig_to_png(fig))


def _draw_map(ax, em: EmbeddingMap, colour) -> None:
    from matplotlib.collections import LineCollection

    clean = em.coords[em.variants[0]]
    for v in em.variants[1:]:
        segs = np.stack([clean, em.coords[v]], axis=1)  # N×2 points×2
        ax.add_collection(LineCollection(segs, colors=[colour[p] for p in em.pids], linewidths=0.8, alpha=0.45))
    for k, v in enumerate(em.variants):
        xy = em.coords[v]
        ax.scatter(xy[:, 0], xy[:, 1], c=[colour[p] for p in em.pids], marker=MARKERS[k % len(MARKERS)],
                   s=46 if k == 0 else 30, edgecolors="black" if k == 0 else "none", linewidths=0.6, zorder=3,
                   label=v.replace("_", " "))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(frameon=False, fontsize=8, loc="best", title="marker = version", title_fontsize=8)


def _draw_bars(ax, em: EmbeddingMap) -> None:
    names = em.variants[1:]
    means = [float(np.mean(em.displacement[v])) for v in names]
    ax.barh(range(len(names)), means, color=plots.PALETTE[0])
    for i, m in enumerate(means):
        ax.text(m, i, f" {m:.3f}", va="center", fontsize=8)
    styles = {"same identity": ("#2ca02c", "--"), "other identities": ("#d62728", ":")}
    for k, val in em.yardsticks.items():
        if np.isfinite(val):
            ax.axvline(val, color=styles[k][0], ls=styles[k][1], lw=1.2, label=f"clean, {k}: {val:.3f}")
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.invert_yaxis()
    ax.set_xlabel("mean cosine distance to the clean embedding")
    ax.set_title("How far each corruption moves a crop", loc="left", fontsize=11)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
