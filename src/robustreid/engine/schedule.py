"""Learning-rate schedule as a pure function of (epoch, iteration): resuming anywhere gives the exact same rates.

Time is measured in (fractional) epochs, ``t = epoch + iteration / iters_per_epoch``.

- warm-up (``t < warmup_epochs``): factor = warmup_factor + (1 - warmup_factor) · t / warmup_epochs
  (linear, per iteration; BoT's 3.5e-5 -> 3.5e-4 over 10 epochs is warmup_factor 0.1).
- ``multistep``: factor = gamma ** (number of milestones m in ``steps`` with m <= epoch) (decays at epoch starts).
- ``cosine``: after warm-up, factor = m + (1 - m) · ½ (1 + cos(π · (t - w) / (epochs - w))), m = ``min_lr_factor``.

Warm-up and the decay multiply: during warm-up the decay factor is that of the current epoch (1 unless a milestone
falls inside the warm-up).
"""

from __future__ import annotations

import bisect
import math
from typing import Sequence


def lr_factor(
    epoch: int,
    iteration: int,
    iters_per_epoch: int,
    *,
    epochs: int,
    schedule: str = "multistep",
    warmup_epochs: float = 0.0,
    warmup_factor: float = 1.0,
    steps: Sequence[int] = (),
    gamma: float = 0.1,
    min_lr_factor: float = 0.0,
) -> float:
    """Multiplier of the base learning rate at ``iteration`` (0-based) of ``epoch`` (0-based)."""
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch}")
    t = epoch + iteration / iters_per_epoch
    if schedule == "multistep":
        decay = gamma ** bisect.bisect_right(sorted(steps), epoch)
    elif schedule == "cosine":
        span = max(epochs - warmup_epochs, 1e-12)
        u = min(max((t - warmup_epochs) / span, 0.0), 1.0)
        decay = min_lr_factor + (1.0 - min_lr_factor) * 0.5 * (1.0 + math.cos(math.pi * u))
    else:
        raise ValueError(f"unknown schedule {schedule!r}; expected multistep or cosine")
    if warmup_epochs > 0 and t < warmup_epochs:
        warm = warmup_factor + (1.0 - warmup_factor) * t / warmup_epochs
    else:
        warm = 1.0
    return warm * decay


def lr_factor_from_config(solver, epoch: int, iteration: int, iters_per_epoch: int) -> float:
    """:func:`lr_factor` with the settings of a ``SolverConfig``."""
    return lr_factor(
        epoch,
        iteration,
        iters_per_epoch,
        epochs=solver.epochs,
        schedule=solver.schedule,
        warmup_epochs=solver.warmup_epochs,
        warmup_factor=solver.warmup_factor,
        steps=solver.steps,
        gamma=solver.gamma,
        min_lr_factor=solver.min_lr_factor,
    )
