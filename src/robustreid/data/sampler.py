"""The identity (PK) sampler: batches of P identities × K images, DDP-aware and resumable."""

from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..utils.seed import derive_seed

__all__ = ["PKSampler"]


class PKSampler(Sampler[int]):
    """Indices in batches of ``p`` identities × ``k`` images (yielded flat: use ``batch_size = p * k``).

    Each epoch the identities (those with >= 1 image) are shuffled and dealt round-robin to the ``world_size``
    ranks, so each rank owns a disjoint share; a rank visits each of its identities ``repeats`` times (reshuffled
    for every repeat). Every rank pads its share by re-using its own identities up to the same number of batches,
    so all ranks step together.
    Within a batch the P identities are distinct; each contributes K images, drawn without replacement when it has
    >= K images and with replacement otherwise. The order is a deterministic function of (seed, epoch, rank).

    Resume mid-epoch: ``sd = sampler.state_dict(batches_done=n)`` then ``load_state_dict(sd)``: the next iteration
    yields the rest of that epoch (skipping its first ``n`` batches); later epochs are whole again.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 repeats: int = 1):
        if p < 1 or k < 1:
            raise ValueError(f"p and k must be >= 1, got p={p}, k={k}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.p, self.k, self.seed, self.rank, self.world_size, self.repeats = int(p), int(k), int(seed), int(rank), int(world_size), int(repeats)
        by_pid: Dict[int, List[int]] = {}
        for i, pid in enumerate(pids):
            by_pid.setdefault(int(pid), []).append(i)
        self.index_by_pid = {pid: np.asarray(idx, dtype=np.int64) for pid, idx in sorted(by_pid.items())}
        self.ids = np.asarray(list(self.index_by_pid), dtype=np.int64)
        n = len(self.ids)
        if n < self.p * self.world_size:
            raise ValueError(f"PKSampler needs at least p × world_size = {self.p * self.world_size} identities, "
                             f"got {n}")
        self.epoch = 0
        self._skip = 0
        per_rank_max = -(-n // self.world_size)
        self.batches_per_repeat = -(-per_rank_max // self.p)

    @property
    def num_batches(self) -> int:
        """Batches per rank per epoch (the same on every rank)."""
        return self.batches_per_repeat * self.repeats

    def __len__(self) -> int:
        """Indices per rank per epoch."""
        return self.num_batches * self.p * self.k

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: Optional[int] = None, rank: Optional[int] = None) -> List[List[int]]:
        """All batches (lists of p*k indices) of ``rank`` in ``epoch`` (defaults: this sampler's)."""
        epoch = self.epoch if epoch is None else int(epoch)
        rank = self.rank if rank is None else int(rank)
        out: List[List[int]] = []
        rng = np.random.default_rng(derive_seed("pk-sampler", self.seed, epoch))
        own = self.ids[rng.permutation(len(self.ids))][rank::self.world_size]  # this rank's identities this epoch
        need = self.batches_per_repeat * self.p
        # image draws: per (seed, epoch, rank) so ranks never share a stream
        irng = np.random.default_rng(derive_seed("pk-sampler-images", self.seed, epoch, rank))
        for r in range(self.repeats):
            share = own if r == 0 else own[irng.permutation(len(own))]
            share = np.concatenate([share, share[: need - len(share)]])
            for b in range(self.batches_per_repeat):
                batch: List[int] = []
                for pid in share[b * self.p:(b + 1) * self.p]:
                    idx = self.index_by_pid[int(pid)]
                    pick = irng.choice(idx, self.k, replace=len(idx) < self.k)
                    batch.extend(int(i) for i in pick)
                out.append(batch)
        return out

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        for batch in self.batches()[skip:]:
            yield from batch

    def state_dict(self, batches_done: int = 0) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "batches_done": int(batches_done), "p": self.p, "k": self.k,
                "rank": self.rank, "world_size": self.world_size, "repeats": self.repeats,
                "num_ids": int(len(self.ids))}

    def load_state_dict(self, state: dict) -> None:
        for key in ("seed", "p", "k", "world_size", "repeats", "num_ids"):
            mine = len(self.ids) if key == "num_ids" else getattr(self, key)
            if key in state and int(state[key]) != mine:
                raise ValueError(f"PKSampler state has {key}={state[key]} but this sampler has {key}={mine}")
        self.epoch = int(state["epoch"])
        done = int(state.get("batches_done", 0))
        if not 0 <= done <= self.num_batches:
            raise ValueError(f"batches_done={done} is outside 0..{self.num_batches}")
        self._skip = done
