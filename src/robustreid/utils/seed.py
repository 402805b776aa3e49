"""Seeds: derive stable per-item seeds from names, and seed every generator at once."""

from __future__ import annotations

import hashlib
import random

import numpy as np


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any parts (strings, ints, ...), identical on every machine and run.

    ``derive_seed("market1501", "query/0001_c1s1_001051_00.jpg", "fog", 3, 0)`` always gives the same value;
    Python's ``hash`` is salted per process and must not be used for this.
    """
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(repr(p).encode("utf-8"))
        h.update(b"\x1f")
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    import torch

    torch.manual_seed(seed)
