"""``robustreid index build|add|info`` and ``robustreid search``: thin wrappers around :mod:`robustreid.serve`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Optional, Tuple

import click

_MODEL_OPTIONS = [
    click.option("--checkpoint", default=None, help="Run directory or .safetensors weights."),
    click.option("--onnx", "onnx_path", default=None, type=click.Path(dir_okay=False, exists=True),
                 help="An ONNX file from `robustreid export onnx` instead of a checkpoint (run by onnxruntime)."),
    click.option("--device", default="cpu", show_default=True, help="cpu | cuda (PyTorch models)."),
    click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
                 help="CPU threads for the model."),
    click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1)),
]
_SOURCE_OPTIONS = [
    click.option("--dataset", default=None, help="Dataset name (with --root), e.g. market1501."),
    click.option("--root", default=None, type=click.Path(file_okay=False), help="Dataset root folder."),
    click.option("--split", type=click.Choice(["gallery", "query", "train"]), default="gallery", show_default=True),
    click.option("--images", "images_dir", default=None, type=click.Path(file_okay=False),
                 help="A folder of crops instead of a dataset (Market-style names give person and camera)."),
]


def _apply(options):
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


def _images(dataset: Optional[str], root: Optional[str], split: str, images_dir: Optional[str]):
    from ..serve import images_from_dataset, images_from_folder

    if (dataset is None) == (images_dir is None):
        raise click.UsageError("give either --dataset NAME --root DIR [--split] or --images DIR")
    if dataset is not None:
        if not root:
            raise click.UsageError("--dataset needs --root DIR")
        return images_from_dataset(dataset, root, split)
    return images_from_folder(images_dir)


def _threads(n: int) -> None:
    """Model and FAISS threads (FAISS's loader messages kept out of the log)."""
    import logging

    import torch

    logging.getLogger("faiss").setLevel(logging.WARNING)

    torch.set_num_threads(n)
    try:
        import faiss

        faiss.omp_set_num_threads(n)
    except ImportError:
        pass


def _load_index(path: str):
    from ..eval.index import GalleryIndex

    try:
        return GalleryIndex.load(path)
    except (FileNotFoundError, ValueError, ImportError) as e:
        raise click.ClickException(str(e)) from None


@click.group("index")
def index() -> None:
    """Build, extend and inspect gallery indexes (FAISS) that remember the model that embedded them."""


@index.command("build")
@_apply(_MODEL_OPTIONS + _SOURCE_OPTIONS)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Index file (+ OUT.meta.safetensors).")
@click.option("--kind", type=click.Choice(["flat", "ivf", "hnsw"]), default="flat", show_default=True,
              help="flat = exact; ivf / hnsw = approximate, for large galleries.")
@click.option("--nlist", default=None, type=click.IntRange(min=1),
              help="IVF clusters (default 4·sqrt(N), at most N/39).")
@click.option("--nprobe", default=16, show_default=True, type=click.IntRange(min=1), help="IVF clusters visited.")
@click.option("--hnsw-m", default=32, show_default=True, type=click.IntRange(min=2), help="HNSW links per node.")
@click.option("--ef-search", default=64, show_default=True, type=click.IntRange(min=1), help="HNSW search depth.")
@click.option("--flip", is_flag=True, help="Embed each crop as the mean with its mirror image.")
@click.option("--overwrite", is_flag=True, help="Replace an existing index at --out.")
def build(checkpoint, onnx_path, device, threads, batch_size, dataset, root, split, images_dir, out, kind, nlist,
          nprobe, hnsw_m, ef_search, flip, overwrite) -> None:
    """Embed a gallery (a dataset split or a folder of crops) in batches and write a searchable index. An
    interrupted build resumes where it stopped when run again (embedded chunks are kept in OUT.parts/).

    \b
    Examples:
      robustreid index build --checkpoint runs/bot --dataset market1501 --root /data/market --out market.index
      robustreid index build --onnx bot.onnx --images crops/ --out crops.index --kind hnsw
    """
    from ..serve import build_index, describe, open_embedder

    if Path(out).exists() and not overwrite:
        raise click.ClickException(f"{out} exists; use `robustreid index add` to extend it, or --overwrite")
    _threads(threads)
    try:
        imgs = _images(dataset, root, split, images_dir)
        emb = open_embedder(checkpoint, onnx_path, flip=flip, device=device, batch_size=batch_size, threads=threads)
        click.echo(f"embedding {len(imgs.paths)} crops with the {emb.describe()}")
        parts = Path(out + ".parts")
        if parts.is_dir():
            click.echo(f"resuming from {parts} (chunks already embedded are reused)")
        idx = build_index(emb, imgs, kind=kind, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search,
                          parts=parts)
        idx.save(out)
        shutil.rmtree(parts, ignore_errors=True)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    _echo_info(describe(idx, out))


@index.command("add")
@click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False, exists=True))
@_apply(_MODEL_OPTIONS + _SOURCE_OPTIONS)
def add(index_path, checkpoint, onnx_path, device, threads, batch_size, dataset, root, split, images_dir) -> None:
    """Embed more crops with the index's model and append them (the index is rewritten atomically).

    \b
    Example:
      robustreid index add --index market.index --images new_crops/
    """
    from ..serve import add_images, describe, embedder_for_index

    _threads(threads)
    idx = _load_index(index_path)
    try:
        imgs = _images(dataset, root, split, images_dir)
        emb = embedder_for_index(idx, index_path, checkpoint, onnx_path, device=device, batch_size=batch_size,
                                 threads=threads)
        parts = Path(index_path + ".parts")
        start, stop = add_images(idx, emb, imgs, where=index_path, parts=parts)
        idx.save(index_path)
        shutil.rmtree(parts, ignore_errors=True)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"added {stop - start} crops (ids {start}..{stop - 1})")
    _echo_info(describe(idx, index_path))


@index.command("info")
@click.argument("index_path", type=click.Path(dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(index_path: str, as_json: bool) -> None:
    """Rows, kind, labels and the model of an index."""
    from ..serve import describe

    d = describe(_load_index(index_path), index_path)
    if as_json:
        click.echo(json.dumps(d, indent=1))
    else:
        _echo_info(d)


def _echo_info(d) -> None:
    width = max(len(k) for k in d)
    for k, v in d.items():
        click.echo(f"{k:<{width}}  {v}")


@click.command("search")
@click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--k", default=10, show_default=True, type=click.IntRange(1, 1000))
@_apply(_MODEL_OPTIONS)
@click.option("--nprobe", default=None, type=click.IntRange(min=1),
              help="IVF: clusters visited (default: the index's).")
@click.option("--ef-search", default=None, type=click.IntRange(min=1),
              help="HNSW: search depth (default: the index's).")
@click.option("--json", "as_json", is_flag=True, help="Print the ranked lists as JSON.")
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="Write an HTML sheet: each query with its ranked gallery crops and scores.")
def search(index_path: str, images: Tuple[str, ...], k: int, checkpoint, onnx_path, device, threads, batch_size,
           nprobe, ef_search, as_json: bool, html_out: Optional[str]) -> None:
    """Rank the index's gallery for each query IMAGE (cosine similarity, best first).

    The index's own model is used (its recorded checkpoint) unless --checkpoint / --onnx is given; a model other
    than the one that built the index is refused.

    \b
    Examples:
      robustreid search --index market.index query/0001_c1s1_001051_00.jpg --k 10
      robustreid search --index market.index q1.jpg q2.jpg --html sheet.html --json
    """
    from ..serve import Gallery, embed_files, embedder_for_index
    from ..serve.sheet import search_sheet
    from ..transforms.decode import ImageReadError

    _threads(threads)
    idx = _load_index(index_path)
    idx.set_search_params(nprobe=nprobe, ef_search=ef_search)
    try:
        emb = embedder_for_index(idx, index_path, checkpoint, onnx_path, device=device, batch_size=batch_size,
                                 threads=threads)
        feats, _ = embed_files(emb, images)
    except (ValueError, FileNotFoundError, ImportError, ImageReadError) as e:
        raise click.ClickException(str(e)) from None
    results = Gallery(idx, emb, index_path).search(feats, k)
    if as_json:
        click.echo(json.dumps({"index": index_path, "model": emb.identity, "k": k,
                               "results": [{"query": q, "matches": r} for q, r in zip(images, results)]}, indent=1))
    else:
        for q, rows in zip(images, results):
            click.echo(f"{q}:")
            for r in rows:
                cam = r["camid"] + 1 if r["camid"] >= 0 else "?"
                click.echo(f"  {r['rank']:>3}  {r['score']:.4f}  id {r['pid']:>5}  cam {cam}  {r['path']}")
    if html_out:
        from ..utils.io import atomic_write_text

        atomic_write_text(html_out, search_sheet(images, results, title=f"robustreid search: {Path(index_path).name}",
                                                 note=f"{emb.describe()}; {len(idx)} gallery crops ({idx.kind})"))
        if not as_json:
            click.echo(f"wrote {html_out}")
