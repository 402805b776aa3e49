"""``robustreid eval``: metrics of a saved feature file, or of a checkpoint on a dataset (thin wrapper around
:mod:`robustreid.eval`)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional

import click


def _table(res, metric: str, rerank: bool) -> str:
    d = res.as_dict()
    cols = ["R1", "R5", "R10", "mAP", "mINP"] + [k for k in d if k.startswith("TPR@")]
    head = "| " + " | ".join(cols) + " | valid queries | skipped queries |"
    sep = "|" + "---|" * (len(cols) + 2)
    row = "| " + " | ".join(f"{100 * d[c]:.2f}" for c in cols) + \
        f" | {res.num_valid_queries} | {res.num_skipped_queries} |"
    note = f"metric: {metric}{' + k-reciprocal re-ranking' if rerank else ''}; rates in %"
    return "\n".join([head, sep, row, note])


def _json_safe(v):
    """NaN / inf -> None (JSON has no NaN), recursively."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


def _warnings(res, source: str) -> List[str]:
    """Legitimate but suspicious: skipped queries, rankings decided by the gallery index (>= 1 % of queries)."""
    out = []
    nq = res.num_valid_queries + res.num_skipped_queries
    if res.num_valid_queries == 0:
        raise click.ClickException(
            f"{source}: no query has a true match in the gallery: all {nq} queries would be skipped (no gallery image "
            f"of the same person from another camera); nothing to evaluate")
    if res.num_skipped_queries:
        out.append(f"{res.num_skipped_queries} of {nq} queries skipped: no gallery image of the same person from "
                   f"another camera (the rates are over the {res.num_valid_queries} others)")
    from ..eval.metrics import many_ties

    tied = res.num_tied_queries
    if many_ties(tied, res.num_valid_queries):
        out.append(f"{tied} of {res.num_valid_queries} queries had a true match at exactly the distance of a wrong "
                   f"one: the gallery index decided their order (duplicate or quantised features?)")
    return out


@click.command("eval")
@click.option("--features", "features", type=click.Path(dir_okay=False), default=None,
              help="Feature file written by `robustreid extract` (features + pid + camid + split + path).")
@click.option("--checkpoint", default=None, help="Run directory or .safetensors weights to extract features with.")
@click.option("--dataset", default=None, help="Dataset name (with --checkpoint).")
@click.option("--root", default=None, type=click.Path(), help="Dataset root folder (with --checkpoint).")
@click.option("--flip", is_flag=True, help="Average with horizontally flipped images (with --checkpoint).")
@click.option("--feature", default=None,
              help="Inference feature of a model with several (with --checkpoint; FED: fprime [default] or fdm).")
@click.option("--metric", type=click.Choice(["cosine", "euclidean"]), default="cosine", show_default=True)
@click.option("--rerank", is_flag=True, help="k-reciprocal re-ranking before the metrics.")
@click.option("--k1", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--k2", default=6, show_default=True, type=click.IntRange(min=1))
@click.option("--lambda", "lambda_value", default=0.3, show_default=True, type=click.FloatRange(0.0, 1.0))
@click.option("--max-rank", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--tpr", is_flag=True, help="Also TPR at FPR 1e-4 / 1e-3 / 1e-2 over query-gallery pairs.")
@click.option("--device", default=None, help="cpu | cuda (default: cpu for feature files).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the metrics as JSON to this file.")
def eval_cmd(features: Optional[str], checkpoint: Optional[str], dataset: Optional[str], root: Optional[str],
             flip: bool, feature: Optional[str], metric: str, rerank: bool, k1: int, k2: int, lambda_value: float,
             max_rank: int, tpr: bool, device: Optional[str], json_out: Optional[str]) -> None:
    """Evaluate re-identification features: CMC (R1/R5/R10), mAP, mINP (see docs/metrics.md).

    \b
    Examples:
      robustreid eval --features runs/demo/features.safetensors
      robustreid eval --features feats.safetensors --rerank --json metrics.json
      robustreid eval --checkpoint runs/bot --dataset market1501 --root /data/market --flip
      robustreid eval --checkpoint runs/fed --dataset occluded_duke --root /data/Occluded_Duke --feature fdm
    """
    from ..eval import evaluate
    from ..eval.features import load_features

    if (features is None) == (checkpoint is None):
        raise click.UsageError("give exactly one of --features FILE or --checkpoint C (with --dataset and --root)")
    if feature is not None and checkpoint is None:
        raise click.UsageError("--feature chooses what a --checkpoint's model returns; a feature file is fixed")
    if checkpoint is not None:
        if not dataset or not root:
            raise click.UsageError("--checkpoint needs --dataset NAME and --root DIR")
        try:
            from ..engine.extract import extract_dataset_features
        except ImportError as e:
            raise click.ClickException(f"--checkpoint needs robustreid.engine.extract.extract_dataset_features, "
                                       f"which is unavailable here ({e})") from None
        try:
            fs = extract_dataset_features(checkpoint, dataset, root, splits=("query", "gallery"), device=device,
                                          flip=flip, feature=feature)
        except (FileNotFoundError, ValueError, KeyError) as e:
            raise click.ClickException(f"feature extraction failed: {e}") from None
        source = f"{checkpoint} on {dataset}" + (f" (feature {feature})" if feature else "")
    else:
        try:
            fs = load_features(features)
        except (FileNotFoundError, ValueError) as e:
            raise click.ClickException(str(e)) from None
        source = features
    q, g = fs.select("query"), fs.select("gallery")
    if len(q) == 0 or len(g) == 0:
        raise click.ClickException(f"{source}: needs query and gallery rows (has {len(q)} query, {len(g)} "
                                   f"gallery; split codes 0 = query, 1 = gallery)")
    try:
        res = evaluate(q.features, g.features, q.pids, g.pids, q.camids, g.camids, metric=metric,
                       max_rank=max_rank, device=device or "cpu", tpr_at_fpr=tpr, rerank=rerank, k1=k1, k2=k2,
                       lambda_value=lambda_value)
    except ValueError as e:
        raise click.ClickException(f"{source}: {e}") from None
    warns = _warnings(res, str(source))
    click.echo(f"{source}: {len(q)} query / {len(g)} gallery, dimension {q.features.shape[1]}")
    click.echo(_table(res, metric, rerank))
    for w in warns:
        click.secho(f"WARNING: {w}", fg="yellow", err=True)
    if json_out:
        from ..utils.io import atomic_write_text

        out = dict(res.as_dict(), metric=metric, rerank=rerank, max_rank=max_rank, source=str(source),
                   cmc=[float(v) for v in res.cmc], warnings=warns)
        if rerank:
            out.update(k1=k1, k2=k2, lambda_value=lambda_value)
        atomic_write_text(Path(json_out), json.dumps(_json_safe(out), indent=2, allow_nan=False) + "\n")
        click.echo(f"wrote {json_out}")
