"""Apply a benchmark cell's corruption on the fly to a batch of native-size crops.

:class:`CorruptionTransform` is the ``transform(images, samples) -> images`` hook of
``robustreid.engine.extract.extract_features``: it receives the decoded crops at native resolution (a list of uint8
3×H×W tensors), groups those of the same shape (and, in mix mode, the same corruption and severity) into one batch,
moves it to the model's device, corrupts it with one seed per image and returns the list in the original order.
Nothing is written to disk.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..corruptions import corrupt, image_seed
from .protocols import MIX, mix_choice, relative_path


class CorruptionTransform:
    """Corrupt crops for one cell: ``corruption`` a name (with ``severity``) or ``"mix"``.

    In mix mode each image's (corruption, severity) is :func:`~robustreid.robustness.protocols.mix_choice` over
    ``mix_corruptions`` × ``mix_severities``. The per-image seed is always
    ``image_seed(dataset, relative path, corruption, severity, pass_index, seed)``.
    ``seconds`` accumulates the time spent corrupting (for the timing columns).
    """

    def __init__(self, dataset: str, root: Optional[str], corruption: str, severity: int = 0, pass_index: int = 0,
                 seed: int = 0, device: Optional[torch.device | str] = None,
                 mix_corruptions: Sequence[str] = (), mix_severities: Sequence[int] = (1, 2, 3, 4, 5)):
        if corruption == MIX and not mix_corruptions:
            raise ValueError("mix mode needs a non-empty list of corruptions to draw from")
        self.dataset = dataset
        self.root = root
        self.corruption = corruption
        self.severity = int(severity)
        self.pass_index = int(pass_index)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else None
        self.mix_corruptions = tuple(mix_corruptions)
        self.mix_severities = tuple(int(s) for s in mix_severities)
        self.seconds = 0.0

    def choice(self, path: str) -> Tuple[str, int]:
        """(corruption, severity) for one image (relative or absolute path)."""
        rel = relative_path(path, self.root)
        if self.corruption == MIX:
            return mix_choice(self.dataset, rel, self.pass_index, self.seed, self.mix_corruptions,
                              self.mix_severities)
        return self.corruption, self.severity

    def seed_of(self, path: str, corruption: str, severity: int) -> int:
        return image_seed(self.dataset, relative_path(path, self.root), corruption, severity, self.pass_index,
                          self.seed)

    def __call__(self, images: Sequence[torch.Tensor], samples: Sequence) -> List[torch.Tensor]:
        if len(images) != len(samples):
            raise ValueError(f"transform got {len(images)} images for {len(samples)} samples")
        t0 = time.perf_counter()
        groups: Dict[tuple, List[int]] = defaultdict(list)
        plan = []
        for i, (img, s) in enumerate(zip(images, samples)):
            c, sev = self.choice(s.path)
            plan.append((c, sev, self.seed_of(s.path, c, sev)))
            groups[(c, sev, tuple(img.shape), str(img.device))].append(i)
        out: List[Optional[torch.Tensor]] = [None] * len(images)
        for (c, sev, _shape, _dev), idx in groups.items():
            batch = torch.stack([images[i] for i in idx])
            if self.device is not None:
                batch = batch.to(self.device, non_blocking=True)
            res = corrupt(batch, c, sev, [plan[i][2] for i in idx])
            for j, i in enumerate(idx):
                out[i] = res[j]
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        return out  # type: ignore[return-value]

    def apply(self, images: Sequence[torch.Tensor], paths: Sequence[str]) -> List[torch.Tensor]:
        """The same on plain paths (for previews and reports)."""

        class _S:
            def __init__(self, path):
                self.path = path

        return self(images, [_S(p) for p in paths])
