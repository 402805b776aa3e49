"""The four evaluation protocols, the two modes and the per-image corruption choices.

A *cell* of the benchmark is one (protocol, corruption, severity, pass) for one model on one dataset:

- ``clean``: nothing corrupted (one cell, corruption ``"none"``, severity 0, pass 0);
- ``query`` / ``gallery`` / ``both``: that side (or both) corrupted.

Two modes choose the corruption of each image:

- ``sweep``: every chosen corruption × severity is its own deterministic cell (``passes`` cells each when
  ``passes > 1``, each pass with its own per-image seeds);
- ``mix``: the published protocol — each image gets one random corruption and one random severity, chosen by a
  generator seeded from ``derive_seed(dataset, path, "mix", pass, seed)``; cells have corruption ``"mix"``,
  severity 0 and one row per pass (report mean ± std over passes).

Every image's corruption randomness comes from :func:`robustreid.corruptions.image_seed` (dataset, path relative
to the dataset root, corruption, severity, pass, seed), so a cell's corrupted images do not depend on the batch
size, on the worker count, on the device nor on which other cells run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple

from ..corruptions.base import parse_corruptions, parse_severities  # noqa: F401  (re-exported)
from ..corruptions.mix import MIX, mix_choice  # noqa: F401  (re-exported: the mix rule lives with the corruptions)

PROTOCOLS = ("clean", "query", "gallery", "both")
CORRUPTED_PROTOCOLS = ("query", "gallery", "both")
MODES = ("sweep", "mix")
#: which sides each protocol corrupts
SIDES = {"clean": (), "query": ("query",), "gallery": ("gallery",), "both": ("query", "gallery")}
NONE = "none"


@dataclass(frozen=True)
class Cell:
    """One benchmark cell (for one model and dataset)."""

    protocol: str
    corruption: str
    severity: int
    pass_index: int

    @property
    def group(self) -> Tuple[str, int, int]:
        """Cells of one group share their corrupted query and gallery features."""
        return (self.corruption, self.severity, self.pass_index)


def parse_protocols(protocols: Iterable[str] | str) -> Tuple[str, ...]:
    if isinstance(protocols, str):
        protocols = [p for p in protocols.replace(" ", "").split(",") if p]
    out = []
    for p in protocols:
        if p not in PROTOCOLS:
            raise ValueError(f"unknown protocol {p!r}; expected some of {', '.join(PROTOCOLS)}")
        if p not in out:
            out.append(p)
    if not out:
        raise ValueError(f"no protocol given; expected some of {', '.join(PROTOCOLS)}")
    return tuple(p for p in PROTOCOLS if p in out)


def parse_modes(modes: Iterable[str] | str) -> Tuple[str, ...]:
    if isinstance(modes, str):
        modes = [m for m in modes.replace(" ", "").split(",") if m]
    out = []
    for m in modes:
        if m not in MODES:
            raise ValueError(f"unknown mode {m!r}; expected sweep, mix or both (sweep,mix)")
        if m not in out:
            out.append(m)
    if not out:
        raise ValueError("no mode given; expected sweep, mix or sweep,mix")
    return tuple(out)


def build_cells(protocols: Sequence[str], modes: Sequence[str], corruptions: Sequence[str],
                severities: Sequence[int], passes: int, mix_passes: int | None = None) -> List[Cell]:
    """All cells of one model in run order: clean first, then sweep groups, then mix passes."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    cells: List[Cell] = []
    if "clean" in protocols:
        cells.append(Cell("clean", NONE, 0, 0))
    corrupted = [p for p in protocols if p != "clean"]
    if "sweep" in modes:
        for c in corruptions:
            for s in severities:
                for k in range(passes):
                    cells.extend(Cell(p, c, int(s), k) for p in corrupted)
    if "mix" in modes:
        for k in range(mix_passes if mix_passes is not None else passes):
            cells.extend(Cell(p, MIX, 0, k) for p in corrupted)
    return cells


def relative_path(path: str, root: str | None) -> str:
    """The sample path relative to the dataset root (with '/'), the key of its seeds."""
    p = str(path)
    if root:
        try:
            rel = os.path.relpath(p, str(root))
            if not rel.startswith(".."):
                p = rel
        except ValueError:  # other drive on Windows
            pass
    return p.replace("\\", "/")
