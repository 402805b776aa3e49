"""``robustreid export onnx``: a thin wrapper around :func:`robustreid.export.export_onnx`."""

from __future__ import annotations

import json
from typing import Optional

import click


@click.group("export")
def export() -> None:
    """Export a trained model for deployment (ONNX, checked for parity with onnxruntime)."""


@export.command("onnx")
@click.option("--checkpoint", required=True, help="Run directory or .safetensors weights.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--input", "input_dtype", type=click.Choice(["uint8", "float32"]), default="uint8", show_default=True,
              help="Input pixels: uint8 0..255, or float32 in [0, 1]; normalisation is inside the graph either way.")
@click.option("--exporter", type=click.Choice(["auto", "torchscript", "dynamo"]), default="auto", show_default=True,
              help="torch.onnx.export(dynamo=False), the torch.export-based exporter (slower, the same checks), or "
                   "auto: TorchScript, falling back to dynamo when an op cannot be exported by it.")
@click.option("--opset", default=17, show_default=True, type=click.IntRange(13, 23))
@click.option("--fp16", is_flag=True, help="Also write an fp16 copy (OUT with .fp16.onnx) with its own parity check.")
@click.option("--fp16-out", default=None, type=click.Path(dir_okay=False), help="Where to write the fp16 copy.")
@click.option("--parity-images", default=None, type=click.Path(file_okay=False, exists=True),
              help="Folder of >= 40 real crops for the parity check (default: seeded synthetic images).")
@click.option("--no-check", is_flag=True, help="Skip the parity check (not recommended).")
@click.option("--json", "json_out", default=None, type=click.Path(dir_okay=False),
              help="Also write the export report (graph summary, parity numbers) as JSON.")
def onnx_cmd(checkpoint: str, out: str, input_dtype: str, exporter: str, opset: int, fp16: bool,
             fp16_out: Optional[str], parity_images: Optional[str], no_check: bool, json_out: Optional[str]) -> None:
    """Export CHECKPOINT's eval graph to ONNX: raw images in (dynamic batch), embeddings out; BNNeck folded,
    classifier and training-only parts absent. The parity check with onnxruntime runs after every export and is
    printed; the command fails (exit 1) when a check fails.

    \b
    Examples:
      robustreid export onnx --checkpoint runs/bot --out bot.onnx
      robustreid export onnx --checkpoint runs/bot --out bot.onnx --fp16 --parity-images data/market/query
    """
    import torch

    from ..engine.checkpoint import CheckpointError
    from ..export import ExportError, export_onnx

    torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    images = None
    try:
        if parity_images:
            images = _parity_images(parity_images)
        res = export_onnx(checkpoint, out, input_dtype=input_dtype, exporter=exporter, opset=opset, fp16=fp16,
                          fp16_out=fp16_out, check=not no_check, images=images, strict=False)
    except (CheckpointError, ExportError, ValueError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    click.echo("\n".join(res.lines()))
    if json_out:
        from ..utils.io import atomic_write_text

        atomic_write_text(json_out, json.dumps(res.as_dict(), indent=1, default=str))
    if not res.ok:
        raise click.ClickException(f"export check FAILED; {out} is kept for inspection")


def _parity_images(folder: str):
    from ..data.datasets import list_images

    files = list_images(folder, recursive=True)
    if len(files) < 40:
        raise ValueError(f"--parity-images {folder}: {len(files)} images, need at least 40")
    return files[::max(1, len(files) // 40)][:40]
