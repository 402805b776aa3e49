"""``robustreid train`` and ``robustreid extract``: thin wrappers around :mod:`robustreid.engine`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import click


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("config", required=False)
@click.argument("overrides", nargs=-1)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--device", default=None, help="auto | cpu | cuda (overrides train.device).")
@click.option("--no-progress", is_flag=True, help="No progress bar (log lines only).")
def train(config: Optional[str], overrides: Tuple[str, ...], out: str, resume: bool, device: Optional[str],
          no_progress: bool) -> None:
    """Train a model: CONFIG is a preset name (see configs/) or a YAML file, followed by key=value overrides.

    \b
    Examples:
      robustreid train demo --out runs/demo
      robustreid train cpu_small data.dataset=market1501 data.root=/data/market --out runs/small
      robustreid train --resume --out runs/small          # continue with the run's saved config.yaml
      torchrun --nproc_per_node 4 -m robustreid train bot_r50 data.root=/data/market --out runs/bot
    """
    from ..config import ConfigError
    from ..engine.checkpoint import CheckpointError
    from ..engine.config import load_train_config
    from ..engine.trainer import train as run_train

    out_dir = Path(out)
    if config is not None and "=" in config and not Path(config).exists():
        overrides = (config,) + tuple(overrides)
        config = None
    if config is None:
        saved = out_dir / "config.yaml"
        if not (resume and saved.is_file()):
            raise click.UsageError("give a CONFIG (preset or YAML file), or --resume with a run dir holding config.yaml")
        config = str(saved)
    if device:
        overrides = tuple(overrides) + (f"train.device={device}",)
    if no_progress:
        overrides = tuple(overrides) + ("train.progress=false",)
    try:
        cfg = load_train_config(config, overrides)
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if not resume and (out_dir / "state.pt").exists():
        raise click.ClickException(f"{out_dir} already holds a run (state.pt); use --resume to continue it "
                                   "or choose another --out")
    if resume and not (out_dir / "state.pt").exists():
        raise click.ClickException(f"--resume: {out_dir / 'state.pt'} does not exist; nothing to continue")
    try:
        result = run_train(cfg, out_dir, resume=resume)
    except (CheckpointError, ConfigError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    except ValueError as e:  # bad data / config combinations, with a message naming the culprit
        raise click.ClickException(str(e)) from None
    final = result.get("final") or {}
    if final:
        click.echo("final: " + "  ".join(f"{k} {100 * v:.2f}" for k, v in final.items() if k in
                                          ("R1", "R5", "R10", "mAP", "mINP")))
    best = result.get("best") or {}
    if best.get("epoch", -1) >= 0:
        click.echo(f"best mAP {100 * best['mAP']:.2f} at epoch {best['epoch']}; weights in {out_dir}")


@click.command()
@click.option("--checkpoint", required=True, type=click.Path(exists=True),
              help="A run directory (uses best.safetensors, else model.safetensors) or a .safetensors file.")
@click.option("--dataset", required=True, help="Dataset name (market1501, dukemtmc, synthetic, folder, csv, ...).")
@click.option("--root", required=True, type=click.Path(exists=True), help="Dataset root folder.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="Feature file to write.")
@click.option("--splits", default="query,gallery", show_default=True, help="Comma-separated: query,gallery,train.")
@click.option("--flip", is_flag=True, help="Average the features of each image and its mirror image.")
@click.option("--batch-size", default=128, show_default=True, type=int)
@click.option("--device", default=None, help="cpu | cuda (default: cuda when available).")
@click.option("--num-workers", default=0, show_default=True, type=int)
@click.option("--feature", default=None,
              help="Inference feature of a model with several (FED: fprime [default] or fdm).")
def extract(checkpoint: str, dataset: str, root: str, out: str, splits: str, flip: bool, batch_size: int,
            device: Optional[str], num_workers: int, feature: Optional[str]) -> None:
    """Extract features of a dataset's splits and write the feature file that `robustreid eval --features` reads.

    Under torchrun (`torchrun --nproc-per-node N -m robustreid extract ...`) each process extracts a share of the
    images; rank 0 writes the file, identical to a one-process run's."""
    from ..engine import distributed as D
    from ..engine.checkpoint import CheckpointError
    from ..engine.extract import extract_dataset_features
    from ..eval.features import save_features

    names = tuple(s.strip() for s in splits.split(",") if s.strip())
    bad = [s for s in names if s not in ("query", "gallery", "train")]
    if not names or bad:
        raise click.BadParameter(f"expected a comma-separated list of query, gallery, train; got {splits!r}",
                                 param_hint="--splits")
    with D.launched(device or "auto") as proc:
        try:
            fs = extract_dataset_features(checkpoint, dataset, root, splits=names, device=device,
                                          batch_size=batch_size, flip=flip, num_workers=num_workers,
                                          feature=feature)
        except (CheckpointError, FileNotFoundError, KeyError, ValueError) as e:
            raise click.ClickException(str(e).strip('"')) from None
    if not proc.is_main:
        return
    save_features(out, fs.features, fs.pids, fs.camids, fs.split, fs.paths, meta=fs.meta)
    counts = ", ".join(f"{n} {int((fs.split == i).sum())}" for i, n in enumerate(("query", "gallery", "train"))
                       if (fs.split == i).any())
    click.echo(f"wrote {out}: {len(fs)} features of dimension {fs.features.shape[1]} ({counts})")
