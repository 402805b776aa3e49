"""``robustreid demo``: the main job end to end on the built-in synthetic dataset.

synthesise persons -> train the ``demo`` preset -> robustness benchmark (all 20 corruptions at one severity, plus
the published mix protocol with several passes, clean / query / gallery / both) -> one HTML report.

Every step resumes: running the command again reuses the dataset, the trained model and the finished benchmark
cells, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import time
from pathlib import Path

import click


def _step(n: int, total: int, text: str) -> None:
    click.secho(f"\n[{n}/{total}] {text}", bold=True)


@click.command("demo")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the dataset, the model, the benchmark and the report.")
@click.option("--identities", default=220, show_default=True, type=click.IntRange(min=4),
              help="Synthetic identities (half train, half test).")
@click.option("--images-per-id", default=12, show_default=True, type=click.IntRange(min=2),
              help="Synthetic images per identity (fewer: a quicker, rougher demo).")
@click.option("--epochs", default=None, type=click.IntRange(min=1), help="Override the demo preset's epochs.")
@click.option("--severity", default=3, show_default=True, type=click.IntRange(1, 5),
              help="Severity of the per-corruption sweep.")
@click.option("--mix-passes", default=3, show_default=True, type=click.IntRange(min=0),
              help="Passes of the mix protocol (each image one random corruption and severity); 0 to skip.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
def demo(out, identities, images_per_id, epochs, severity, mix_passes, seed, device):
    """The main job on synthetic data: synthesise, train, bench, report (about 10 minutes on 2 CPU cores)."""
    from ..data.synthetic import generate
    from ..engine import load_train_config, train
    from ..report.html import build_report
    from ..robustness import run_benchmark
    from ..robustness.summary import robustness_table
    from .data import dataset_rows, format_table

    out = Path(out)
    data_dir, model_dir, bench_dir = out / "data", out / "model", out / "bench"
    report_path = out / "report.html"
    t_start = time.perf_counter()
    timings = {}

    _step(1, 4, f"synthesise {identities} identities -> {data_dir}")
    t0 = time.perf_counter()
    try:
        s = generate(str(data_dir), identities=identities, images_per_id=images_per_id, seed=seed, progress=True)
    except (ValueError, FileExistsError) as e:
        raise click.ClickException(str(e)) from None
    from ..data import load_dataset

    ds = load_dataset("synthetic", str(data_dir))
    click.echo(("kept the existing set" if s.get("reused") else f"wrote {s['images']} images")
               + f" ({s['train_ids']} train ids, {s['test_ids']} test ids, {s['cameras']} cameras)")
    click.echo(format_table(["split", "images", "identities", "cameras", "distractors", "occluded"],
                            dataset_rows(ds)))
    timings["synthesise"] = time.perf_counter() - t0

    _step(2, 4, f"train the 'demo' preset -> {model_dir}")
    t0 = time.perf_counter()
    overrides = [f"data.root={data_dir}", f"train.seed={seed}", f"train.device={device}"]
    if epochs is not None:
        overrides.append(f"solver.epochs={epochs}")
    cfg = load_train_config("demo", overrides)
    resume = (model_dir / "state.pt").exists()
    train(cfg, model_dir, resume=resume, dataset=ds)
    timings["train"] = time.perf_counter() - t0

    _step(3, 4, f"robustness benchmark: 20 corruptions at severity {severity}"
                + (f" + mix protocol x{mix_passes} passes" if mix_passes else "") + f" -> {bench_dir}")
    t0 = time.perf_counter()
    modes = ("sweep", "mix") if mix_passes else ("sweep",)
    bench_device = None if device == "auto" else device
    rows = run_benchmark({"demo": str(model_dir)}, ds, bench_dir, protocols=("clean", "query", "gallery", "both"),
                         modes=modes, corruptions="all", severities=(severity,), passes=1,
                         mix_passes=max(mix_passes, 1), mix_severities=(1, 2, 3, 4, 5), seed=seed,
                         device=bench_device, command=f"robustreid demo --out {out} --seed {seed}")
    click.echo(robustness_table(rows))
    timings["bench"] = time.perf_counter() - t0
    parts = {k: sum(float(r.get(k) or 0) for r in rows) for k in ("extract_s", "corrupt_s", "metrics_s")}
    click.echo(f"bench {timings['bench']:.1f} s this run; recorded over all cells (incl. earlier, resumed runs): extraction {parts['extract_s']:.1f} s, corruption "
               f"{parts['corrupt_s']:.1f} s, metrics {parts['metrics_s']:.1f} s")

    clean = [r for r in rows if r["protocol"] == "clean"]
    if clean:
        c = clean[0]
        click.secho(f"clean: R1 {100 * float(c['R1']):.1f}  mAP {100 * float(c['mAP']):.1f}  "
                    f"mINP {100 * float(c['mINP']):.1f}", bold=True)

    _step(4, 4, f"report -> {report_path}")
    t0 = time.perf_counter()
    build_report([bench_dir], report_path, title="robustreid demo: synthetic persons")
    timings["report"] = time.perf_counter() - t0

    total = time.perf_counter() - t_start
    click.echo("\n" + "  ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"  total {total:.0f} s")
    click.secho(f"\nopen the report: {report_path.resolve()}", fg="green", bold=True)
