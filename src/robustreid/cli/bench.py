"""``robustreid bench``: the robustness benchmark (thin wrapper around robustreid.robustness.run_benchmark)."""

from __future__ import annotations

import shlex

import click


def _command_line(ctx: click.Context) -> str:
    """The full command that reproduces this run (every option spelled out, defaults included)."""
    parts = ["robustreid", "bench"]
    for p in ctx.command.params:
        if not isinstance(p, click.Option) or p.name in ("no_progress",):
            continue
        v = ctx.params.get(p.name)
        if v is None:
            continue
        flag = p.opts[0]
        if p.is_flag:
            if p.secondary_opts:
                parts.append(flag if v else p.secondary_opts[0])
            elif v:
                parts.append(flag)
        elif isinstance(v, (tuple, list)):
            parts.extend(x for item in v for x in (flag, shlex.quote(str(item))))
        else:
            parts.extend((flag, shlex.quote(str(v))))
    return " ".join(parts)


@click.command("bench")
@click.option("--checkpoint", "checkpoints", multiple=True, required=True,
              help="Checkpoint (.safetensors or run dir); repeat for several models. NAME=PATH sets the model name.")
@click.option("--dataset", required=True, help="Dataset name (e.g. market1501, synthetic); may differ from training.")
@click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="Dataset root folder.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Run directory (resumable).")
@click.option("--protocols", default="clean,query,gallery,both", show_default=True,
              help="Comma list of clean, query, gallery, both.")
@click.option("--mode", "modes", default="sweep", show_default=True,
              help="sweep (every corruption × severity), mix (published: random per image) or sweep,mix.")
@click.option("--corruptions", default="all", show_default=True,
              help="all (the 20), occlusion, a family (noise, blur, weather, digital), all+occlusion, or names.")
@click.option("--severities", default="1-5", show_default=True, help="e.g. 3, 1-5, 1,3,5 (sweep cells).")
@click.option("--mix-severities", default="1-5", show_default=True, help="Severities the mix protocol draws from.")
@click.option("--passes", default=1, show_default=True, type=click.IntRange(1), help="Passes per sweep cell.")
@click.option("--mix-passes", default=None, type=click.IntRange(1),
              help="Passes of the mix protocol [default: --passes, or 10 when only mix runs].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ...")
@click.option("--num-workers", default=0, show_default=True, type=click.IntRange(0))
@click.option("--flip/--no-flip", default=False, show_default=True, help="Average features with the flipped image.")
@click.option("--reference-model", default=None, help="Model name for the mCE-style error ratio.")
@click.option("--examples", default=6, show_default=True, type=click.IntRange(0),
              help="Queries whose ranked lists are kept for the report.")
@click.option("--max-ids", default=0, show_default=True, type=click.IntRange(0),
              help="Evaluate on this many query identities only (quick look; 0 = all).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def bench(checkpoints, dataset, root, out_dir, protocols, modes, corruptions, severities, mix_severities, passes,
          mix_passes, seed, batch_size, device, num_workers, flip, reference_model, examples, max_ids, no_progress):
    """Robustness benchmark: clean / query / gallery / both corrupted, per corruption and severity (sweep) or
    the published random-per-image protocol (mix). Results go to OUT/results.csv (resumable: re-run the same
    command to continue), OUT/run.json; then `robustreid report OUT --out report.html`. Under torchrun
    (`torchrun --nproc-per-node N -m robustreid bench ...`) the processes share the cells; rank 0 writes."""
    from ..engine import distributed as D
    from ..robustness import run_benchmark
    from ..robustness.protocols import parse_modes
    from ..robustness.summary import robustness_table

    models = {}
    for c in checkpoints:
        from pathlib import Path

        if "=" in c and not c.startswith("=") and not Path(c).exists():
            name, path = c.split("=", 1)
        else:
            from ..robustness.runner import default_model_name

            name, path = default_model_name(c), c
            k = 2
            base = name
            while name in models:
                name, k = f"{base}_{k}", k + 1
        if name in models:
            raise click.BadParameter(f"two models named {name!r}", param_hint="--checkpoint")
        models[name] = path
    try:
        mds = parse_modes(modes)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--mode") from None
    if mix_passes is None:
        mix_passes = 10 if mds == ("mix",) and passes == 1 else passes
    cmd = _command_line(click.get_current_context())
    import time
    from pathlib import Path

    from ..robustness.results import read_results, row_key

    try:
        before = {row_key(r) for r in read_results(out_dir)} if Path(out_dir, "results.csv").exists() else set()
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    t0 = time.perf_counter()
    with D.launched(device) as proc:  # torchrun: join the ranks (rank 0 writes the files), else one process
        try:
            rows = run_benchmark(models, dataset, out_dir, root=root, protocols=protocols, modes=mds,
                                 corruptions=corruptions, severities=severities, passes=passes, mix_passes=mix_passes,
                                 mix_severities=mix_severities, seed=seed, batch_size=batch_size, device=device,
                                 flip=flip, num_workers=num_workers, reference_model=reference_model,
                                 examples=examples, command=cmd, progress=not no_progress, max_ids=max_ids)
        except (ValueError, FileNotFoundError, KeyError, TypeError) as e:
            raise click.ClickException(str(e)) from None
    wall = time.perf_counter() - t0
    if not proc.is_main:
        return
    click.echo(robustness_table(rows, reference_model if reference_model in models else None))
    new = [r for r in rows if row_key(r) not in before]
    if new:
        parts = {k: sum(r[k] for r in new) for k in ("extract_s", "corrupt_s", "metrics_s")}
        click.echo(f"\n{len(new)} new cells in {wall:.1f} s: extraction {parts['extract_s']:.1f} s, corruption "
                   f"{parts['corrupt_s']:.1f} s, metrics {parts['metrics_s']:.1f} s")
    else:
        click.echo("\nnothing to do: every cell was already in the results")
    for line in _count_warnings(rows):
        click.echo(f"warning: {line}", err=True)
    click.echo(f"\nresults: {out_dir}/results.csv — report: robustreid report {out_dir} --out {out_dir}/report.html")


def _count_warnings(rows) -> list:
    """Skipped queries and rankings decided by the gallery index (>= 1 % of the valid queries), over the cells."""
    from ..eval.metrics import many_ties

    out = []
    skipped = {r["num_skipped"] for r in rows if r.get("num_skipped")}
    if skipped:
        out.append(f"{max(skipped)} queries skipped in some cells (no gallery image of the same person from another "
                   f"camera): the rates are over the others (column num_skipped of results.csv)")
    tied = [r for r in rows if many_ties(r.get("num_tied") or 0, r.get("num_valid") or 0)]
    if tied:
        worst = max(tied, key=lambda r: r["num_tied"] / max(r["num_valid"], 1))
        out.append(f"{len(tied)} cells had >= 1 % of queries whose true match tied a wrong one (the gallery index "
                   f"decided their order); worst: {worst['model']} {worst['protocol']} {worst['corruption']} "
                   f"severity {worst['severity']}: {worst['num_tied']} of {worst['num_valid']} (column num_tied)")
    return out
