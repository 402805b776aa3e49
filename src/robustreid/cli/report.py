"""``robustreid report`` (the HTML report) and ``robustreid analyze correlation`` (thin wrappers)."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@click.option("--title", default=None, help="Page title.")
@click.option("--reference-model", default=None, help="Model name for the error ratio (default: the run's).")
@click.option("--queries", default=4, show_default=True, type=click.IntRange(0), help="Ranked lists per model.")
@click.option("--inside/--no-inside", default=True, show_default=True,
              help="The 'Inside the models' section (activation maps, Grad-CAM, embedding map of each checkpoint).")
@click.option("--inside-queries", default=3, show_default=True, type=click.IntRange(1),
              help="Queries shown per model in 'Inside the models'.")
def report(run_dirs, out, title, reference_model, queries, inside, inside_queries):
    """Write ONE self-contained HTML report (inline images and CSS) of benchmark run directories."""
    from ..report import build_report

    try:
        path = build_report(run_dirs, out, title=title, reference_model=reference_model, max_ranked_queries=queries,
                            inside=inside, inside_queries=inside_queries)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    size = path.stat().st_size / 1e6
    click.echo(f"report written: {path} ({size:.1f} MB)")


@click.group("analyze")
def analyze():
    """Analyses across benchmark runs."""


@analyze.command("correlation")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--cross", "cross_dirs", multiple=True, required=True, type=click.Path(exists=True, file_okay=False),
              help="Run dir(s) of the same models benchmarked (clean at least) on another dataset; repeatable.")
@click.option("--protocol", default="both", show_default=True, type=click.Choice(["query", "gallery", "both"]),
              help="Which corrupted protocol measures robustness.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Folder for correlation.png and correlation.json.")
def correlation(run_dirs, cross_dirs, protocol, out_dir):
    """Pearson and Spearman correlation, across models, between corruption robustness (mean corrupted mAP) and
    cross-dataset mAP (clean mAP on another dataset). Models are matched by name."""
    from ..robustness.correlation import correlation_analysis
    from ..robustness.summary import format_table

    try:
        res = correlation_analysis(run_dirs, cross_dirs, protocol=protocol, out_dir=out_dir)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(format_table(res["points"], ["model", "dataset", "clean_mAP", "corrupted_mAP", "cross_mAP"],
                            percent=("clean_mAP", "corrupted_mAP", "cross_mAP"),
                            headers=["model", "benchmark dataset", "clean mAP %", f"corrupted mAP % ({protocol})",
                                     "cross-dataset mAP %"]))

    def f(v):
        return "n/a" if v != v else f"{v:.3f}"

    click.echo(f"\nn = {res['n']} models   Pearson r = {f(res['pearson_r'])} (p = {f(res['pearson_p'])})   "
               f"Spearman rho = {f(res['spearman_rho'])} (p = {f(res['spearman_p'])})   "
               f"p-values: {res['p_method']}")
    if res["n"] < 3:
        click.echo("(at least 3 models are needed for a correlation)")
    if res.get("plot"):
        click.echo(f"scatter plot: {res['plot']}")
