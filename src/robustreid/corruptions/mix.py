"""The mix rule: which corruption and severity one image gets in one pass of the published "mix" protocol.

Each image draws one corruption uniformly among the chosen ones, then one severity uniformly among the chosen
severities, from a generator seeded with ``derive_seed(dataset, path, "mix", pass, seed)`` (``path`` relative to
the dataset root, forward slashes). The dataset writer (:mod:`robustreid.corruptions.writer`, ``mode="mix"``) and
the robustness benchmark's on-the-fly mix protocol both use this one function, so a mix copy written to disk holds
exactly the images the benchmark corrupts with the same seed.
"""

from __future__ import annotations

import random
from typing import Sequence, Tuple

from ..utils.seed import derive_seed

MIX = "mix"


def mix_choice(dataset: str, path: str, pass_index: int, seed: int, corruptions: Sequence[str],
               severities: Sequence[int]) -> Tuple[str, int]:
    """The (corruption, severity) the mix protocol gives image ``path`` of ``dataset`` in pass ``pass_index``."""
    if not corruptions or not severities:
        raise ValueError("mix_choice: need at least one corruption and one severity")
    rng = random.Random(derive_seed(dataset, path, MIX, int(pass_index), int(seed)))
    c = corruptions[rng.randrange(len(corruptions))]
    s = severities[rng.randrange(len(severities))]
    return c, int(s)


__all__ = ["MIX", "mix_choice"]
