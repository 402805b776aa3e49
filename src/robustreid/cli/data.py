"""``robustreid synth`` and ``robustreid data info``: thin wrappers around robustreid.data."""

from __future__ import annotations

from typing import List, Sequence

import click


def _parse_size(ctx, param, value):
    if value is None:
        return None
    from ..transforms.functional import parse_size

    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder (Market-1501 layout).")
@click.option("--identities", default=220, show_default=True, type=click.IntRange(min=2),
              help="Total identities; the first half (rounded up) are train ids, the rest test ids.")
@click.option("--cameras", default=6, show_default=True, type=click.IntRange(2, 9))
@click.option("--images-per-id", default=12, show_default=True, type=click.IntRange(min=2))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--occluded", is_flag=True, help="Occluded-Duke style: every query occluded 10-60 %, masks saved.")
@click.option("--size", default="128x64", show_default=True, callback=_parse_size, help="Crop size HxW.")
@click.option("--distractors", default=0, show_default=True, type=click.IntRange(min=0),
              help="Distractor images (pid 0) in the gallery.")
@click.option("--junk", default=0, show_default=True, type=click.IntRange(min=0), help="Junk images (pid -1).")
@click.option("--overwrite", is_flag=True, help="Replace a set made with other arguments.")
def synth(out, identities, cameras, images_per_id, seed, occluded, size, distractors, junk, overwrite):
    """Generate the built-in synthetic person dataset."""
    from ..data.synthetic import generate

    try:
        s = generate(out, identities=identities, cameras=cameras, images_per_id=images_per_id, seed=seed,
                     occluded=occluded, size=size, distractors=distractors, junk=junk, overwrite=overwrite,
                     progress=False)
    except (ValueError, FileExistsError) as e:
        raise click.ClickException(str(e)) from None
    verb = "kept existing" if s.get("reused") else "wrote"
    click.echo(f"{verb} {s['images']} images to {out} in {s['seconds']:.1f} s "
               f"({s['train_ids']} train ids, {s['test_ids']} test ids, {s['cameras']} cameras)")
    click.echo(f"train {s['train_images']}  query {s['query_images']}  gallery {s['gallery_images']}"
               + (f"  occluded {s['occluded_images']}" if occluded else ""))


@click.group("data")
def data():
    """Inspect datasets (counts, problems) and build Occluded-Duke from DukeMTMC-reID."""


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for j, r in enumerate(cells):
        lines.append("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def dataset_rows(ds) -> List[List[object]]:
    rows = []
    for split in ("train", "query", "gallery"):
        items = ds.split(split)
        pids = {s.pid for s in items if split == "train" or s.pid != 0}
        rows.append([split, f"{len(items):,}", f"{len(pids):,}", len({s.camid for s in items}),
                     sum(1 for s in items if s.pid == 0 and split == "gallery"),
                     sum(1 for s in items if s.occluded)])
    return rows


def dataset_problems(ds) -> List[str]:
    """Issues worth a warning beyond the skipped files: queries without a cross-camera positive, overlaps."""
    out = list(ds.problems)
    gal = {}
    for s in ds.gallery:
        gal.setdefault(s.pid, set()).add(s.camid)
    lonely = sum(1 for q in ds.query if not (gal.get(q.pid, set()) - {q.camid}))
    if lonely:
        out.append(f"{lonely} of {len(ds.query)} queries have no gallery image of the same person from another "
                   f"camera (they are skipped by the evaluation)")
    train_ids = {s.orig_pid for s in ds.train}
    test_ids = {s.pid for s in ds.query} | {s.pid for s in ds.gallery if s.pid > 0}
    shared = train_ids & test_ids
    if shared and ds.train:
        out.append(f"{len(shared)} identities appear in both train and test")
    return out


@data.command("info")
@click.argument("root", type=click.Path(exists=False))
@click.option("--dataset", "name", default="auto", show_default=True,
              help="Loader name (market1501, dukemtmc, occluded_duke, msmt17, cuhk03, occluded_reid, "
                   "partial_reid, folder, csv, synthetic) or auto-detect.")
@click.option("--option", "-o", "options", multiple=True, metavar="KEY=VALUE",
              help="Loader option, e.g. -o variant=labeled, -o query_dir=partial_body_images.")
@click.option("--check", is_flag=True,
              help="Decode every image and list unreadable ones (slower); exit status 1 when any file is bad.")
def info(root, name, options, check):
    """Print images, identities and cameras per split of the dataset at ROOT, and any problem found.

    With --check every bad file (unreadable, misnamed, a folder named like an image) is listed and the exit status
    is 1 when there is any."""
    from ..data.datasets import DatasetError, detect_dataset, load_dataset

    opts = {}
    for o in options:
        if "=" not in o:
            raise click.BadParameter(f"{o!r}: expected KEY=VALUE", param_hint="--option")
        k, v = o.split("=", 1)
        low = v.lower()
        opts[k.strip()] = True if low == "true" else False if low == "false" else v
    try:
        if name == "auto":
            name = detect_dataset(root)
        ds = load_dataset(name, root, skip_bad=check, verify=check, **opts)
    except (DatasetError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    shown = [f"{k}={v}" for k, v in sorted(ds.extra.items()) if not isinstance(v, (dict, list)) and k != "note"]
    click.echo(f"dataset {ds.name} at {ds.root}" + (f"  ({', '.join(shown)})" if shown else ""))
    if ds.extra.get("note"):
        click.echo(f"note: {ds.extra['note']}")
    click.echo(format_table(["split", "images", "identities", "cameras", "distractors", "occluded"], dataset_rows(ds)))
    click.echo("(identities exclude the pid-0 distractors, counted on their own)")
    probs = dataset_problems(ds)
    if probs:
        click.echo(f"\n{len(probs)} problem(s):")
        for p in probs[:50]:
            click.echo(f"  - {p}")
        if len(probs) > 50:
            click.echo(f"  ... and {len(probs) - 50} more")
    else:
        click.echo("\nno problems found" + ("" if check else " (run with --check to decode every image)"))
    if check and ds.problems:
        click.get_current_context().exit(1)


@data.command("occluded-duke")
@click.option("--duke", "duke_root", required=True, type=click.Path(),
              help="DukeMTMC-reID (the folder with bounding_box_train, query, bounding_box_test, or its parent).")
@click.option("--lists", "lists_dir", required=True, type=click.Path(),
              help="Folder with train.list, query.list, gallery.list (Occluded_Duke/ of "
                   "github.com/lightas/Occluded-DukeMTMC-Dataset).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The Occluded-Duke folder to write.")
@click.option("--copy", is_flag=True, help="Copy the images instead of hard-linking them.")
@click.option("--overwrite", is_flag=True, help="Replace an --out built from other lists (or not by this command).")
def occluded_duke(duke_root, lists_dir, out, copy, overwrite):
    """Build Occluded-Duke from DukeMTMC-reID and its published name lists (nothing is downloaded).

    Every listed image is looked up in its own Duke split, then in the others (Occluded-Duke moves occluded gallery
    images into its query); nothing is written unless all are found, and the set appears at --out only when
    complete. Running it again with the same lists does nothing."""
    from ..data.datasets import DatasetError
    from ..data.resplit import build_occluded_duke

    try:
        s = build_occluded_duke(duke_root, lists_dir, out, link=not copy, overwrite=overwrite)
    except (DatasetError, ValueError, FileExistsError) as e:
        raise click.ClickException(str(e)) from None
    counts = "  ".join(f"{split} {v['images']:,}" for split, v in s["lists"].items())
    if s.get("reused"):
        click.echo(f"{out} is already built from these lists ({counts})")
        return
    moved = sum(s["moved_between_splits"].values())
    click.echo(f"wrote {out}: {counts}; {moved:,} images taken from another Duke split; "
               f"{s['linked']:,} hard-linked, {s['copied']:,} copied")
