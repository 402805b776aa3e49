"""Entry point of the ``robustreid`` command: thin wrappers around the packages, grouped by job.

Sub-commands are imported lazily so that ``robustreid --help`` is fast and a missing optional dependency of one
command never breaks the others.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from .. import __version__

#: command name -> "module:attribute", in the order shown by --help
COMMANDS = {
    "synth": ("robustreid.cli.data:synth", "Generate the built-in synthetic person dataset."),
    "data": ("robustreid.cli.data:data", "Inspect datasets (counts, problems); build Occluded-Duke."),
    "corrupt": ("robustreid.cli.corrupt:corrupt", "Write corrupted copies of a dataset; preview corruptions."),
    "train": ("robustreid.cli.train:train", "Train a model from a config preset."),
    "extract": ("robustreid.cli.train:extract", "Extract features of a dataset with a trained model."),
    "eval": ("robustreid.cli.eval:eval_cmd", "Evaluate features or a checkpoint (CMC, mAP, mINP, re-ranking)."),
    "bench": ("robustreid.cli.bench:bench", "Robustness benchmark: clean / query / gallery / both corrupted."),
    "report": ("robustreid.cli.report:report", "Write the HTML report of one or more benchmark runs."),
    "viz": ("robustreid.cli.viz:viz", "Pictures inside the models: activation maps, Grad-CAM, embeddings, ranks."),
    "analyze": ("robustreid.cli.report:analyze", "Analyses across runs (robustness vs cross-dataset correlation)."),
    "study": ("robustreid.cli.study:study", "Small self-contained studies (noise as a regulariser)."),
    "demo": ("robustreid.cli.demo:demo", "The main job on synthetic data: synthesise, train, bench, report."),
    "export": ("robustreid.cli.export:export", "Export a model to ONNX (raw images in, embeddings out) with parity."),
    "index": ("robustreid.cli.index:index", "Build, extend and inspect a gallery index (FAISS) tied to its model."),
    "search": ("robustreid.cli.index:search", "Rank an index's gallery for query images (text, JSON or HTML)."),
    "serve": ("robustreid.cli.serve:serve", "Serve a gallery index over HTTP: API and a search page."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name, quiet=True) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str):
        return self._load(cmd_name)

    def _load(self, name: str, quiet: bool = False):
        if name not in COMMANDS:
            return None
        target = COMMANDS[name][0]
        mod_name, attr = target.split(":")
        try:
            mod = importlib.import_module(mod_name)
            return getattr(mod, attr)
        except (ImportError, AttributeError) as e:
            if quiet:
                return None
            raise click.ClickException(f"command {name!r} is unavailable: {e}") from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="robustreid")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """robustreid: person re-identification that stays accurate under noise, corruption and occlusion."""
    level = logging.WARNING - 10 * min(verbose + 1, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main() -> None:  # pragma: no cover - used by ``python -m robustreid``
    cli(prog_name="robustreid")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
