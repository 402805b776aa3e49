#!/usr/bin/env python
"""Keep a study's result files in the repository, so that its tables and plots can be drawn again after the study
machine is gone.

    python benchmarks/keep_results.py --out runs/occluded --to benchmarks/results/occluded [--data real/data ...]

Kept, in the study's own layout: each benchmark folder's ``results.csv`` and ``run.json``
(``<dataset>/{mix,occlusion}/<model>/``) and the feature analyses (``<dataset>/features/*.json``) — small text files.
Not kept: weights, images, caches, logs. ``benchmarks/occluded_table.py --out`` and ``benchmarks/fed_table.py --out``
read the kept folder as they read the study's. A resumed benchmark only adds cells, so a kept ``results.csv`` is
replaced only by one that holds every cell it has; one that would lose cells is refused (the file is named) and
nothing is copied. Paths of this machine are not kept: the study folder is written as ``$OUT`` and each ``--data``
folder as ``$DATA/<its name>`` (``$DATA/Occluded_Duke``: which dataset stays readable) in the kept files (commands
and checkpoint or dataset paths in ``run.json`` and the JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustreid.robustness.results import read_results, row_key
from robustreid.utils.io import atomic_write_text

# the study's result files, as glob patterns relative to its folder
PATTERNS = ("*/mix/*/results.csv", "*/mix/*/run.json", "*/occlusion/*/results.csv", "*/occlusion/*/run.json",
            "*/features/*.json")


def _cells(results_csv: Path) -> set:
    return {row_key(r) for r in read_results(results_csv.parent)}


def portable(text: str, subs: dict) -> str:
    """``text`` with each folder of ``subs`` (absolute path -> placeholder) replaced by its placeholder, longest
    first (a data folder inside the study folder keeps its own name)."""
    for path in sorted(subs, key=len, reverse=True):
        text = text.replace(path, subs[path])
    return text


def plan(out: Path, to: Path, subs: dict) -> list:
    """[(source, destination, kept text)] of the files to write: new or changed ones. Raises ValueError naming a
    kept results.csv whose cells the study's copy does not all hold."""
    todo = []
    for pattern in PATTERNS:
        for src in sorted(out.glob(pattern)):
            dst = to / src.relative_to(out)
            text = portable(src.read_text(encoding="utf-8"), subs)
            if dst.is_file() and dst.read_text(encoding="utf-8") == text:
                continue
            if dst.is_file() and src.name == "results.csv":
                lost = _cells(dst) - _cells(src)
                if lost:
                    raise ValueError(f"{src} lacks {len(lost)} cell(s) that {dst} holds (e.g. {sorted(lost)[0]}): "
                                     "refusing to replace the kept results with fewer")
            todo.append((src, dst, text))
    return todo


def keep(out: Path, to: Path, data=()) -> list:
    """Copy the study's result files from ``out`` into ``to``, this machine's paths of ``out`` and the ``data``
    folders replaced by ``$OUT`` / ``$DATA/<the folder's name>``; returns the destinations written."""
    folders = [Path(d).resolve() for d in data]
    subs = {str(f): f"$DATA/{f.name}" for f in folders}
    subs[str(out.resolve())] = "$OUT"
    todo = plan(out, to, subs)
    for _, dst, text in todo:
        dst.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dst, text)
    return [dst for _, dst, _ in todo]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="the study folder (OUT of the study script)")
    ap.add_argument("--to", type=Path, required=True, help="the folder in the repository to keep them in")
    ap.add_argument("--data", type=Path, action="append", default=[],
                    help="a dataset folder whose path is written as $DATA/<its name> in the kept files (repeatable)")
    args = ap.parse_args(argv)
    if not args.out.is_dir():
        print(f"keep_results: {args.out} is not a folder", file=sys.stderr)
        return 2
    try:
        written = keep(args.out, args.to, args.data)
    except ValueError as e:
        print(f"keep_results: {e}", file=sys.stderr)
        return 2
    for dst in written:
        print(f"kept {dst}")
    print(f"{len(written)} file(s) written to {args.to}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
