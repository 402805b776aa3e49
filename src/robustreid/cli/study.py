"""``robustreid study``: small self-contained studies."""

from __future__ import annotations

import click


def _floats(ctx, param, value):
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


@click.group()
def study() -> None:
    """Small self-contained studies (noise as a regulariser)."""


@study.command("noise-mlp")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (resumes if present).")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(1), help="Seeds per configuration.")
@click.option("--epochs", default=60, show_default=True, type=click.IntRange(1), help="Training epochs per run.")
@click.option("--sigmas", default="0.1,0.3,0.5", show_default=True, callback=_floats,
              help="Noise strengths (comma-separated).")
@click.option("--placements", default="input,hidden1,hidden2", show_default=True,
              help="Where the noise goes: input, hidden1, hidden2 (comma-separated).")
@click.option("--mode", type=click.Choice(["additive", "multiplicative"]), default="additive", show_default=True)
@click.option("--tsne/--no-tsne", default=True, show_default=True, help="Draw the t-SNE figure.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="torch CPU threads.")
def noise_mlp(out, seeds, epochs, sigmas, placements, mode, tsne, threads) -> None:
    """MLP on scikit-learn's handwritten digits, with and without hidden-layer noise: accuracy table (mean ± std
    over seeds), first-layer weights, t-SNE of hidden features, index.html."""
    import torch

    from ..studies.noise_mlp import PLACEMENTS, StudyConfig, run_study

    places = tuple(p.strip() for p in placements.split(",") if p.strip())
    bad = [p for p in places if p not in PLACEMENTS]
    if bad:
        raise click.BadParameter(f"unknown placement(s) {bad}; choose from {', '.join(PLACEMENTS)}",
                                 param_hint="--placements")
    if not sigmas or any(s < 0 for s in sigmas):
        raise click.BadParameter("give at least one strength, all >= 0", param_hint="--sigmas")
    torch.set_num_threads(threads)
    cfg = StudyConfig(seeds=seeds, epochs=epochs, sigmas=sigmas, placements=places, mode=mode, tsne=tsne)
    try:
        run_study(out, cfg, log=click.echo)
    except ImportError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {out}/index.html, summary.md, summary.csv, runs.csv")
