"""``robustreid viz actmap | gradcam | embed | ranks``: pictures of what trained models look at (thin wrappers
around robustreid.viz). Each writes PNGs and one self-contained HTML sheet into ``--out``."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from ..viz.source import DEFAULT_VARIANTS

_ERRORS = (ValueError, FileNotFoundError, KeyError, OSError)


def _command_line(ctx: click.Context) -> str:
    parts = ctx.command_path.split()
    parts[0] = "robustreid"
    for p in ctx.command.params:
        v = ctx.params.get(p.name)
        if not isinstance(p, click.Option) or v is None or v is False or v == ():
            continue
        if p.is_flag:
            parts.append(p.opts[0])
        elif isinstance(v, (tuple, list)):
            parts.extend(x for item in v for x in (p.opts[0], shlex.quote(str(item))))
        else:
            parts.extend((p.opts[0], shlex.quote(str(v))))
    return " ".join(parts)


def _common(f):
    opts = [
        click.option("--checkpoint", "checkpoints", multiple=True, required=True,
                     help="Checkpoint (.safetensors or run dir); repeat for several models. NAME=PATH names it."),
        click.option("--dataset", required=True, help="Dataset name (market1501, occluded_duke, synthetic ...)."),
        click.option("--root", required=True, type=click.Path(exists=True, file_okay=False), help="Dataset root."),
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Folder for the PNGs and the HTML sheet."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda ..."),
        click.option("--seed", default=0, show_default=True, type=int, help="Corruption seed (as in bench)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _setup(checkpoints, dataset, root, device):
    from ..viz.source import load_models, open_dataset, resolve_device

    models = load_models(checkpoints, resolve_device(device))
    return models, open_dataset(dataset, root)


def _finish(out_dir: str, kind: str, title: str, figures, intro: str = "") -> None:
    from ..utils.io import atomic_write_bytes
    from ..viz.sheet import write_sheet

    out = Path(out_dir)
    for stem, (heading, png, _cap) in figures.items():
        atomic_write_bytes(out / f"{stem}.png", png)
        click.echo(f"wrote {out / (stem + '.png')}")
    sheet = write_sheet(out / f"{kind}.html", title, list(figures.values()), intro=intro,
                        command=_command_line(click.get_current_context()))
    click.echo(f"sheet: {sheet}")


@click.group("viz")
def viz():
    """Pictures of what trained models look at, clean and corrupted: activation maps, Grad-CAM, embedding maps,
    ranked lists. Corrupted versions use the benchmark's seeded corruptions (same pixels as `robustreid bench`)."""


@viz.command("actmap")
@_common
@click.option("--queries", default="4", show_default=True,
              help="N (queries of N identities spread over the query set), or indices / file names, comma-separated.")
@click.option("--corruptions", default=DEFAULT_VARIANTS, show_default=True,
              help="Versions next to the clean crop: name[:severity] list (severity 3 when omitted).")
@click.option("--layer", "layers", multiple=True,
              help="Module name (repeatable) [default: the last stage; each branch of a two-branch model].")
@click.option("--list-layers", is_flag=True, help="Print every module name with its output shape and exit.")
def actmap(checkpoints, dataset, root, out_dir, device, seed, queries, corruptions, layers, list_layers):
    """Activation energy of a layer overlaid on the crops, clean next to corrupted / occluded versions."""
    from ..viz.figures import actmap_figure
    from ..viz.layers import list_layers as layer_list
    from ..viz.source import parse_variants, pick_queries

    try:
        models, ds = _setup(checkpoints, dataset, root, device)
        if list_layers:
            for name, model in models.items():
                click.echo(f"# {name}")
                for lname, shape in layer_list(model):
                    click.echo(f"{lname}\t{shape}")
            return
        variants, idx = parse_variants(corruptions), pick_queries(ds.query, queries)
        figs = {f"actmap_{n}": (n, *actmap_figure(m, n, ds, root, idx, variants, layers or None, seed))
                for n, m in models.items()}
    except _ERRORS as e:
        raise click.ClickException(str(e)) from None
    _finish(out_dir, "actmap", f"Activation maps on {dataset}", figs)


@viz.command("gradcam")
@_common
@click.option("--queries", default="4", show_default=True, help="As for actmap.")
@click.option("--corruptions", default=DEFAULT_VARIANTS, show_default=True, help="As for actmap.")
@click.option("--layer", "layers", multiple=True,
              help="Module name (repeatable) [default: the last stage; ViT: the last block's norm1; each branch].")
@click.option("--method", type=click.Choice(["gradcam", "gradcam++"]), default="gradcam", show_default=True)
@click.option("--reference", type=click.Choice(["match", "self"]), default="match", show_default=True,
              help="Target: cosine similarity to the query's true match in the gallery, or to the clean query.")
def gradcam(checkpoints, dataset, root, out_dir, device, seed, queries, corruptions, layers, method, reference):
    """Grad-CAM / Grad-CAM++ of the embedding's cosine similarity to a reference embedding."""
    from ..viz.figures import gradcam_figure
    from ..viz.source import parse_variants, pick_queries

    try:
        models, ds = _setup(checkpoints, dataset, root, device)
        variants, idx = parse_variants(corruptions), pick_queries(ds.query, queries)
        figs = {f"gradcam_{n}": (n, *gradcam_figure(m, n, ds, root, idx, variants, layers or None, method,
                                                         reference, seed))
                for n, m in models.items()}
    except _ERRORS as e:
        raise click.ClickException(str(e)) from None
    _finish(out_dir, "gradcam", f"Grad-CAM on {dataset}", figs)


@viz.command("embed")
@_common
@click.option("--ids", default=10, show_default=True, type=click.IntRange(2), help="Identities on the map.")
@click.option("--crops-per-id", default=4, show_default=True, type=click.IntRange(1))
@click.option("--corruptions", default="fog:3,gaussian_noise:3,occlusion_solid:3", show_default=True,
              help="Corrupted versions of the same crops (name[:severity] list).")
@click.option("--method", type=click.Choice(["tsne", "umap"]), default="tsne", show_default=True,
              help="2-D layout (umap needs umap-learn).")
@click.option("--perplexity", default=None, type=float, help="t-SNE perplexity [default: min(30, (n-1)/3)].")
def embed(checkpoints, dataset, root, out_dir, device, seed, ids, crops_per_id, corruptions, method, perplexity):
    """2-D map of N identities' embeddings, clean and corrupted versions joined; mean displacement per corruption."""
    from ..utils.io import atomic_write_text
    from ..viz.figures import embed_figure
    from ..viz.source import parse_variants

    figs = {}
    try:
        models, ds = _setup(checkpoints, dataset, root, device)
        variants = parse_variants(corruptions)
        for n, m in models.items():
            png, cap, em = embed_figure(m, n, ds, root, variants, n_ids=ids, per_id=crops_per_id, seed=seed,
                                        method=method, perplexity=perplexity)
            figs[f"embed_{n}"] = (n, png, cap)
            atomic_write_text(Path(out_dir) / f"embed_{n}.csv", _embed_csv(em))
            click.echo(f"{n}: mean cosine displacement " + ", ".join(
                f"{v} {float(d.mean()):.3f}" for v, d in em.displacement.items()))
    except _ERRORS as e:
        raise click.ClickException(str(e)) from None
    _finish(out_dir, "embed", f"Embedding maps on {dataset}", figs)


def _embed_csv(em) -> str:
    lines = ["crop,pid,version,x,y,cosine_displacement"]
    for v in em.variants:
        for i, (x, y) in enumerate(em.coords[v]):
            d = em.displacement[v][i] if v in em.displacement else 0.0
            lines.append(f"{i},{em.pids[i]},{v},{x:.4f},{y:.4f},{d:.5f}")
    return "\n".join(lines) + "\n"


@viz.command("ranks")
@_common
@click.option("--queries", default="worst:4", show_default=True,
              help="worst:N (the N queries of the first model losing the most AP), N, or indices / file names.")
@click.option("--corruption", default="fog:3", show_default=True, help="name[:severity] of the corrupted lists.")
@click.option("--protocol", type=click.Choice(["both", "query"]), default="both", show_default=True,
              help="Corrupt query and gallery (as the report's lists), or the query only (faster).")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 30))
@click.option("--max-ids", default=0, show_default=True, type=click.IntRange(0),
              help="Use this many query identities only (quick look; 0 = all).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1))
@click.option("--no-progress", is_flag=True)
def ranks(checkpoints, dataset, root, out_dir, device, seed, queries, corruption, protocol, top, max_ids,
          batch_size, no_progress):
    """Ranked lists, clean vs corrupted; several --checkpoint: model A vs model B on the same queries."""
    import json

    from ..robustness.runner import subset_identities
    from ..utils.io import atomic_write_text
    from ..viz import ranks as rk
    from ..viz.source import parse_variants

    try:
        models, ds = _setup(checkpoints, dataset, root, device)
        ds = subset_identities(ds, max_ids)
        v = parse_variants(corruption, with_clean=False)
        if len(v) != 1:
            raise ValueError(f"--corruption: expected one name[:severity], got {corruption!r}")
        records, how = [], ""
        for i, (n, m) in enumerate(models.items()):
            feats = rk.ranks_features(m, ds, root, v[0].corruption, v[0].severity, protocol, seed,
                                      batch_size=batch_size, progress=not no_progress)
            if i == 0:
                idx, how = rk.choose_queries(queries, feats, ds, protocol)
            rec = rk.compute_record(n, feats, ds, root, idx, v[0].corruption, v[0].severity, protocol, seed, top)
            atomic_write_text(Path(out_dir) / f"ranks_{n}.json", json.dumps(rec, indent=1))
            records.append(rec)
        rows = rk.compare_rows(records, len(idx))
        title = f"{' vs '.join(models)} — top-{top}, clean vs {rk.describe(records[0])}"
        png = rk.ranks_image(rows, title, k=top)
    except _ERRORS as e:
        raise click.ClickException(str(e)) from None
    cap = ("Each row: a query (blue frame) and its nearest gallery crops; green = same identity, red = another. "
           f"Queries: {how}.")
    _finish(out_dir, "ranks", f"Ranked lists on {dataset}", {"ranks": ("ranked lists", png, cap)})
