"""Noise as a regulariser on real handwritten digits (the source article's first figure).

Data: scikit-learn's bundled digits (``sklearn.datasets.load_digits``: 1,797 real 8×8 images, 10 classes, no
download), pixel values scaled to [0, 1]. For each seed a stratified 70/30 train/test split (the same split for
every configuration of that seed, so comparisons are paired). Model: an MLP 64-256-128-10 with ReLU, trained with
Adam (lr 1e-3, batch 64, no weight decay) for ``epochs`` epochs with cross-entropy.

Configurations: the baseline (no noise) and, for each placement and strength σ, additive Gaussian noise
(:func:`robustreid.models.noise.attach_noise`) during training only at

- ``input``: on the 64 input pixels (placement ``{"layer": "0", "where": "input"}``);
- ``hidden1``: on the 256 first hidden units after ReLU (``{"layer": "1"}``);
- ``hidden2``: on the 128 second hidden units after ReLU (``{"layer": "3"}``).

Outputs in ``out``: ``runs.csv`` (one row per configuration × seed, appended atomically: a rerun resumes),
``summary.csv`` / ``summary.md`` (test accuracy mean ± std over seeds, paired difference to the baseline, and the
first-layer weights' normalised total variation, of W₁ and of W₁ − W₁(init) — lower = smoother weight
images), and the number of first-layer units that training never updated (ReLU units dead from the start),
``weights.png`` (first-layer weights of seed 0's model per configuration, 8×8 images), ``weights_delta.png``
(the same minus their initial values: what training changed, since the random initialisation dominates the raw
weights of a short run), ``tsne.png`` (t-SNE of
the second hidden layer's test features per placement at ``tsne_sigma``) and ``index.html``.
"""

from __future__ import annotations

import csv
import html
import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..models.noise import attach_noise
from ..utils.io import append_line_atomic, atomic_write_bytes, atomic_write_text
from ..utils.seed import derive_seed

#: placement name -> attach_noise spec (without sigma)
PLACEMENTS: Dict[str, Dict[str, str]] = {
    "input": {"layer": "0", "where": "input"},
    "hidden1": {"layer": "1", "where": "output"},
    "hidden2": {"layer": "3", "where": "output"},
}

RUN_FIELDS = ["config", "placement", "sigma", "mode", "seed", "epochs", "train_acc", "test_acc", "weight_tv",
              "delta_tv", "unchanged_units", "seconds"]


@dataclass(frozen=True)
class StudyConfig:
    seeds: int = 5
    epochs: int = 60
    sigmas: Tuple[float, ...] = (0.1, 0.3, 0.5)
    placements: Tuple[str, ...] = ("input", "hidden1", "hidden2")
    mode: str = "additive"
    hidden: Tuple[int, int] = (256, 128)
    lr: float = 1e-3
    batch_size: int = 64
    test_fraction: float = 0.3
    tsne: bool = True
    tsne_sigma: Optional[float] = None  # default: the middle strength
    figures: bool = True


def _sklearn():
    try:
        import sklearn.datasets  # noqa: F401
        import sklearn.model_selection  # noqa: F401
    except ImportError:
        raise ImportError("the digits study needs scikit-learn (bundled digits, t-SNE): "
                          "pip install 'scikit-learn>=1.3' (it is in the dev extra)") from None
    import sklearn

    return sklearn


def load_digits_split(seed: int, test_fraction: float = 0.3):
    """(x_train, y_train, x_test, y_test) as float32 / int64 tensors, pixels in [0, 1], stratified split."""
    _sklearn()
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                          random_state=derive_seed("digits-split", seed) % (2 ** 32))
    return torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte)


def make_mlp(hidden: Sequence[int] = (256, 128), n_in: int = 64, n_out: int = 10) -> nn.Sequential:
    """64-256-128-10 MLP: modules 0 Linear, 1 ReLU, 2 Linear, 3 ReLU, 4 Linear."""
    return nn.Sequential(nn.Linear(n_in, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
                         nn.Linear(hidden[1], n_out))


def weight_tv(w: torch.Tensor, side: int = 8) -> float:
    """Mean over units of the total variation of the unit's 8×8 weight image divided by its L1 norm (units whose
    weights are all zero, e.g. never-updated units in a weight change, are left out)."""
    img = w.detach().view(-1, side, side)
    tv = (img[:, 1:, :] - img[:, :-1, :]).abs().sum(dim=(1, 2)) + (img[:, :, 1:] - img[:, :, :-1]).abs().sum(dim=(1, 2))
    l1 = img.abs().sum(dim=(1, 2))
    alive = l1 > 1e-12
    if not bool(alive.any()):
        return 0.0
    return float((tv[alive] / l1[alive]).mean())


def unchanged_units(w: torch.Tensor, w0: torch.Tensor) -> int:
    """First-layer units whose incoming weights training never changed (ReLU units dead from the start)."""
    return int(((w.detach() - w0).abs().sum(dim=1) == 0).sum())


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def train_one(placement: Optional[str], sigma: float, seed: int, cfg: StudyConfig, data=None):
    """Train one MLP; returns (model, metrics dict)."""
    xtr, ytr, xte, yte = data if data is not None else load_digits_split(seed, cfg.test_fraction)
    torch.manual_seed(derive_seed("digits-init", seed) % (2 ** 63))  # same init for every configuration
    model = make_mlp(cfg.hidden)
    w0 = model[0].weight.detach().clone()
    model.w0 = w0  # type: ignore[attr-defined]  # kept for the figures (plain attribute, not a buffer)
    if placement is not None and sigma > 0:
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; choose from {', '.join(PLACEMENTS)}")
        attach_noise(model, [dict(PLACEMENTS[placement], sigma=sigma, mode=cfg.mode)])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    order_gen = torch.Generator().manual_seed(derive_seed("digits-order", seed) % (2 ** 63))
    torch.manual_seed(derive_seed("digits-noise", seed, placement or "none", sigma) % (2 ** 63))
    t0 = time.perf_counter()
    n = len(xtr)
    for _ in range(cfg.epochs):
        model.train()
        perm = torch.randperm(n, generator=order_gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
    secs = time.perf_counter() - t0
    metrics = {"train_acc": accuracy(model, xtr, ytr), "test_acc": accuracy(model, xte, yte),
               "weight_tv": weight_tv(model[0].weight), "delta_tv": weight_tv(model[0].weight - w0),
               "unchanged_units": unchanged_units(model[0].weight, w0), "seconds": secs}
    return model, metrics


def config_name(placement: Optional[str], sigma: float) -> str:
    return "baseline" if placement is None else f"{placement}@{sigma:g}"


def configurations(cfg: StudyConfig) -> List[Tuple[Optional[str], float]]:
    return [(None, 0.0)] + [(p, s) for p in cfg.placements for s in cfg.sigmas]


def _read_runs(path: Path) -> List[Dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summarise(rows: List[Dict[str, str]], cfg: StudyConfig) -> List[Dict[str, object]]:
    by: Dict[str, Dict[int, Dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["config"], {})[int(r["seed"])] = r
    base = by.get("baseline", {})
    out = []
    for placement, sigma in configurations(cfg):
        name = config_name(placement, sigma)
        runs = by.get(name, {})
        if not runs:
            continue
        acc = np.array([float(r["test_acc"]) for r in runs.values()])
        tv = np.array([float(r["weight_tv"]) for r in runs.values()])
        dtv = np.array([float(r.get("delta_tv") or "nan") for r in runs.values()])
        dead = np.array([float(r.get("unchanged_units") or "nan") for r in runs.values()])
        paired = [float(r["test_acc"]) - float(base[s]["test_acc"]) for s, r in runs.items() if s in base]
        out.append({
            "config": name, "placement": placement or "none", "sigma": sigma, "n": len(acc),
            "test_acc_mean": float(acc.mean()), "test_acc_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "delta_mean": float(np.mean(paired)) if paired and placement else 0.0,
            "delta_std": float(np.std(paired, ddof=1)) if len(paired) > 1 and placement else 0.0,
            "wins": int(sum(d > 0 for d in paired)) if placement else 0,
            "losses": int(sum(d < 0 for d in paired)) if placement else 0,
            "weight_tv_mean": float(tv.mean()),
            "delta_tv_mean": float(dtv.mean()),
            "unchanged_units_mean": float(dead.mean()),
        })
    return out


def markdown_table(summary: List[Dict[str, object]]) -> str:
    lines = ["| configuration | placement | σ | seeds | test accuracy (%) mean ± std | Δ vs baseline (pp, paired) "
             "| better / worse seeds | TV of W₁ | TV of W₁ − W₁(init) | units never updated (of 256) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        delta = "—" if s["placement"] == "none" else f"{100 * s['delta_mean']:+.2f} ± {100 * s['delta_std']:.2f}"
        wl = "—" if s["placement"] == "none" else f"{s['wins']} / {s['losses']}"
        lines.append(f"| {s['config']} | {s['placement']} | {s['sigma']:g} | {s['n']} | "
                     f"{100 * s['test_acc_mean']:.2f} ± {100 * s['test_acc_std']:.2f} | {delta} | {wl} | "
                     f"{s['weight_tv_mean']:.3f} | {s['delta_tv_mean']:.3f} | {s['unchanged_units_mean']:.1f} |")
    return "\n".join(lines) + "\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    return buf.getvalue()


def plot_weights(models: Dict[str, nn.Module], path: Path, units: int = 16, delta: bool = False) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = list(models)
    fig, axes = plt.subplots(len(names), units, figsize=(units * 0.7, len(names) * 0.8), squeeze=False)
    for r, name in enumerate(names):
        w = models[name][0].weight.detach()
        if delta:
            w = w - models[name].w0
        w = w[:units].view(-1, 8, 8).numpy()
        for c in range(units):
            ax = axes[r, c]
            lim = np.abs(w[c]).max() or 1.0
            ax.imshow(w[c], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    what = "Learned change of the first-layer weights, W - W(init)" if delta else "First-layer weights"
    fig.suptitle(f"{what} (first {units} of the units, seed 0)", fontsize=10)
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)


def hidden_features(model: nn.Sequential, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model[:4](x).numpy()


def plot_tsne(feats: Dict[str, Tuple[np.ndarray, np.ndarray]], path: Path, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    names = list(feats)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        f, y = feats[name]
        emb = TSNE(n_components=2, perplexity=30, init="pca", random_state=seed).fit_transform(f)
        ax.scatter(emb[:, 0], emb[:, 1], c=y, cmap="tab10", s=4)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("t-SNE of the second hidden layer (test set, seed 0)", fontsize=10)
    atomic_write_bytes(path, _png(fig))
    plt.close(fig)


def write_index(out: Path, table_md: str, cfg: StudyConfig, figures: Iterable[str]) -> None:
    rows = [l for l in table_md.strip().splitlines() if not l.startswith("|---")]
    cells = [[c.strip() for c in l.strip("|").split("|")] for l in rows]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in cells[1:])
    imgs = "".join(f'<h2>{html.escape(f)}</h2><img src="{html.escape(f)}" style="max-width:100%">' for f in figures)
    text = f"""<!doctype html><html><head><meta charset="utf-8"><title>Noise as a regulariser: digits MLP</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;
padding:3px 8px;text-align:right}}</style></head><body>
<h1>Noise as a regulariser: MLP on scikit-learn's handwritten digits</h1>
<p>MLP 64-{cfg.hidden[0]}-{cfg.hidden[1]}-10, Adam lr {cfg.lr}, batch {cfg.batch_size}, {cfg.epochs} epochs,
{cfg.seeds} seeds (each seed: its own stratified {int(100 * (1 - cfg.test_fraction))}/{int(100 * cfg.test_fraction)}
split, shared by all configurations), {cfg.mode} Gaussian noise during training only.
Files: <a href="runs.csv">runs.csv</a>, <a href="summary.csv">summary.csv</a>, <a href="summary.md">summary.md</a>.</p>
<table><tr>{head}</tr>{body}</table>{imgs}</body></html>
"""
    atomic_write_text(out / "index.html", text)


def run_study(out: str | Path, cfg: StudyConfig = StudyConfig(), log=print) -> List[Dict[str, object]]:
    """Run (or resume) the study into ``out``; returns the summary rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    done = {(r["config"], int(r["seed"]), int(r["epochs"]), r["mode"]) for r in _read_runs(runs_path)}
    keep_models: Dict[str, nn.Module] = {}
    tsne_sigma = cfg.tsne_sigma if cfg.tsne_sigma is not None else cfg.sigmas[len(cfg.sigmas) // 2]
    for seed in range(cfg.seeds):
        data = load_digits_split(seed, cfg.test_fraction)
        for placement, sigma in configurations(cfg):
            name = config_name(placement, sigma)
            need_model = seed == 0 and cfg.figures
            if (name, seed, cfg.epochs, cfg.mode) in done and not need_model:
                continue
            model, m = train_one(placement, sigma, seed, cfg, data)
            if need_model:
                keep_models[name] = model
            if (name, seed, cfg.epochs, cfg.mode) not in done:
                row = [name, placement or "none", f"{sigma:g}", cfg.mode, str(seed), str(cfg.epochs),
                       f"{m['train_acc']:.6f}", f"{m['test_acc']:.6f}", f"{m['weight_tv']:.6f}",
                       f"{m['delta_tv']:.6f}", str(m["unchanged_units"]), f"{m['seconds']:.2f}"]
                append_line_atomic(runs_path, ",".join(row), header=",".join(RUN_FIELDS))
                log(f"seed {seed} {name:>12}: test acc {100 * m['test_acc']:.2f}% ({m['seconds']:.1f}s)")
    rows = [r for r in _read_runs(runs_path) if int(r["epochs"]) == cfg.epochs and r["mode"] == cfg.mode
            and int(r["seed"]) < cfg.seeds]
    summary = summarise(rows, cfg)
    table = markdown_table(summary)
    atomic_write_text(out / "summary.md", table)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(summary[0].keys()) if summary else ["config"])
    w.writeheader()
    w.writerows(summary)
    atomic_write_text(out / "summary.csv", buf.getvalue())
    figures: List[str] = []
    if cfg.figures and keep_models:
        plot_weights(keep_models, out / "weights.png")
        plot_weights(keep_models, out / "weights_delta.png", delta=True)
        figures += ["weights.png", "weights_delta.png"]
        if cfg.tsne:
            _, _, xte, yte = load_digits_split(0, cfg.test_fraction)
            feats = {}
            for placement in [None] + list(cfg.placements):
                name = config_name(placement, 0.0 if placement is None else tsne_sigma)
                if name in keep_models:
                    feats[name] = (hidden_features(keep_models[name], xte), yte.numpy())
            plot_tsne(feats, out / "tsne.png")
            figures.append("tsne.png")
    write_index(out, table, cfg, figures)
    return summary


__all__ = ["StudyConfig", "run_study", "train_one", "make_mlp", "load_digits_split", "weight_tv", "summarise",
           "markdown_table", "PLACEMENTS"]
