"""Losses (ID with label smoothing, triplet, center, JSD, mask, OEM, memory bank). See :mod:`.base`.

Importing this package registers every loss in ``LOSSES``: ``ce``, ``triplet``, ``center``, ``igoas_ce`` and
``mask`` (IGOAS), ``parts_ce`` (PCB) and, when its module exists, ``jsd``."""

import importlib
import importlib.util

from .base import LOSSES, CombinedLoss, build_losses
from . import ce, center, triplet  # noqa: F401  (registration)
from . import fed  # noqa: F401  (registration: fed_oem, fed_id, fed_bank, ...)
from . import igoas, pcb  # noqa: F401  (registration)
from .ce import CrossEntropyLabelSmooth
from .center import CenterLoss
from .triplet import TripletLoss, hard_mining

# losses owned by other modules, imported when present
for _mod in ("jsd",):
    if importlib.util.find_spec(f"{__name__}.{_mod}") is not None:
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["LOSSES", "CombinedLoss", "build_losses", "CrossEntropyLabelSmooth", "TripletLoss", "CenterLoss",
           "hard_mining"]
