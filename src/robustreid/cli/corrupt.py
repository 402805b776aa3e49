"""``robustreid corrupt``: write corrupted copies of a dataset (sweep or mix protocol) and preview corruptions.

    robustreid corrupt --dataset market1501 --root data/market --out data/market-c \\
        --corruptions all --severities 1-5 --mode sweep --seed 0
    robustreid corrupt --dataset market1501 --root data/market --out data/market-mix --mode mix --passes 10
    robustreid corrupt preview person.jpg --out grid.png --corruptions all
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Sequence

import click


def make_preview_grid(image, corruptions: Sequence[str], severities: Sequence[int] = (1, 2, 3, 4, 5),
                      seed: int = 0, cell_height: Optional[int] = None, label_width: int = 120):
    """A PIL image: one row per corruption (label on the left), a clean column, then one column per severity.

    ``image`` is uint8 3×H×W; ``cell_height`` rescales every cell (nearest) for display, default native size.
    """
    import torch
    from PIL import Image, ImageDraw

    from ..corruptions import corrupt

    x = image[None]
    h, w = x.shape[-2:]
    if cell_height:
        ch, cw = int(cell_height), max(1, round(w * cell_height / h))
    else:
        ch, cw = h, w
    head, pad = 18, 2
    grid = Image.new("RGB", (label_width + (cw + pad) * (len(severities) + 1), head + (ch + pad) * len(corruptions)),
                     "white")
    draw = ImageDraw.Draw(grid)

    def cell(t: "torch.Tensor") -> Image.Image:
        im = Image.fromarray(t.permute(1, 2, 0).contiguous().numpy())
        return im if (ch, cw) == (h, w) else im.resize((cw, ch), Image.BILINEAR)

    for k, title in enumerate(["clean"] + [f"severity {s}" for s in severities]):
        draw.text((label_width + k * (cw + pad) + 2, 3), title if cw >= 60 else title.replace("severity ", "s"),
                  fill="black")
    for r, name in enumerate(corruptions):
        y = head + r * (ch + pad)
        draw.text((4, y + ch // 2 - 6), name, fill="black")
        grid.paste(cell(x[0]), (label_width, y))
        for k, s in enumerate(severities):
            out = corrupt(x, name, int(s), seed=seed)
            grid.paste(cell(out[0]), (label_width + (k + 1) * (cw + pad), y))
    return grid


def _fail(e: Exception):
    raise click.ClickException(str(e.args[0]) if e.args else str(e)) from None


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", "dataset_name", default=None, help="Dataset name (market1501, msmt17, ..., or auto).")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Dataset root folder.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder.")
@click.option("--corruptions", default="all", show_default=True,
              help="'all' (the 20 benchmark corruptions), a family (noise, blur, weather, digital, occlusion) or a "
                   "comma list of names.")
@click.option("--severities", default="1-5", show_default=True, help="e.g. 1-5, 3 or 1,3,5.")
@click.option("--mode", type=click.Choice(["sweep", "mix"]), default="sweep", show_default=True,
              help="sweep: one folder per corruption and severity; mix: one random corruption and severity per image "
                   "(the published protocol), seeded.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--passes", type=int, default=1, show_default=True,
              help="Independent draws (folders pass0..passN-1 when N > 1).")
@click.option("--splits", default="query,gallery", show_default=True, help="Splits to corrupt.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--format", "image_format", type=click.Choice(["same", "png"]), default="same", show_default=True,
              help="same: the source's format (JPEG written at quality 95, 4:4:4); png: lossless PNG.")
@click.option("--no-links", is_flag=True, help="Do not link the dataset's other folders (train, lists) into copies.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def corrupt(ctx, dataset_name, root, out, corruptions, severities, mode, seed, passes, splits, batch_size, device,
            image_format, no_links, no_progress):
    """Write corrupted copies of a dataset's query and gallery (resumable; manifest.csv records every file).

    Sub-command ``preview IMAGE --out grid.png`` draws every corruption × severity on one image.
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [opt for opt, v in (("--dataset", dataset_name), ("--root", root), ("--out", out)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)} (or use a sub-command: preview)")
    from ..corruptions.writer import CorruptWriteError, corrupt_dataset

    try:
        from ..data import load_dataset
    except ImportError:  # the data package may not export it
        from ..data.datasets import load_dataset
    try:
        from ..data.datasets import DatasetError
    except ImportError:  # pragma: no cover
        DatasetError = ValueError
    split_list: List[str] = [s.strip() for s in splits.split(",") if s.strip()]
    for s in split_list:
        if s not in ("train", "query", "gallery"):
            raise click.BadParameter(f"unknown split {s!r}; expected query, gallery or train", param_hint="--splits")
    if passes < 1:
        raise click.BadParameter("must be >= 1", param_hint="--passes")
    if batch_size < 1:
        raise click.BadParameter("must be >= 1", param_hint="--batch-size")
    try:
        import torch

        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise click.BadParameter(f"{device!r} is not a torch device (cpu, cuda, cuda:1)", param_hint="--device")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("CUDA is not available on this machine", param_hint="--device")
    try:
        ds = load_dataset(dataset_name, root)
    except (DatasetError, FileNotFoundError, KeyError) as e:
        _fail(e)
    try:
        summary = corrupt_dataset(ds, out, corruptions, severities, mode, seed, passes, split_list, batch_size,
                                  device, image_format, link_rest=not no_links, progress=not no_progress)
    except CorruptWriteError as e:
        _fail(e)
    click.echo(f"wrote {summary.written} images, {summary.skipped} already present; manifest: {summary.manifest}")


@corrupt.command("preview")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default="corruption_grid.png", show_default=True)
@click.option("--corruptions", default="all", show_default=True, help="'all', a family or a comma list.")
@click.option("--severities", default="1-5", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cell-height", type=int, default=None, help="Display height of each cell (default: native).")
@click.option("--colors", type=int, default=0, help="Quantise the PNG to this many colours (smaller file); 0: off.")
def preview(image, out_path, corruptions, severities, seed, cell_height, colors):
    """Draw the grid of corruptions (rows) × severities (columns) applied to IMAGE."""
    from ..corruptions.writer import CorruptWriteError, parse_corruptions, parse_severities, read_image_rgb
    from ..utils.io import atomic_path

    try:
        names = parse_corruptions(corruptions)
        sevs = parse_severities(severities)
        img = read_image_rgb(image)
    except CorruptWriteError as e:
        _fail(e)
    grid = make_preview_grid(img, names, sevs, seed, cell_height)
    if colors:
        grid = grid.quantize(colors=int(colors), method=2, dither=0)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        grid.save(tmp, format="PNG", optimize=True)
        os.chmod(tmp, 0o644)
    click.echo(f"wrote {out_path} ({grid.size[0]}×{grid.size[1]})")
