"""Distributed training helpers: torchrun + DistributedDataParallel (NCCL on GPU, Gloo on CPU).

Launch::

    torchrun --nproc_per_node 4 -m robustreid train bot_r50 --out runs/bot        # one machine, 4 GPUs
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 --nproc_per_node 8 \
        -m robustreid train bot_r50 --out runs/bot                                 # two machines

The trainer calls :func:`init_distributed` (a no-op unless ``WORLD_SIZE`` > 1 in the environment), shards the
identities of every epoch across ranks with the PK sampler, gathers features to rank 0 for evaluation and writes
files on rank 0 only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_info() -> DistInfo:
    """Rank / world size / local rank from torchrun's environment variables (defaults: single process)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str = "auto", backend: Optional[str] = None) -> DistInfo:
    """Join the process group when launched by torchrun (or already initialised); return this process's info."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    info = env_info()
    if info.world_size <= 1:
        return info
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if backend is None:
        backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a copy; identity when not distributed)."""
    if not is_dist():
        return t
    t = t.detach().clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / dist.get_world_size()


def gather_rows(t: torch.Tensor) -> Optional[torch.Tensor]:
    """Concatenate each rank's rows (N_r × ...) in rank order on rank 0 (``None`` on other ranks).

    Ranks may hold different numbers of rows (padded for the collective, trimmed afterwards). Not distributed:
    returns ``t``."""
    if not is_dist():
        return t
    world = dist.get_world_size()
    backend_device = t.device if dist.get_backend() == "nccl" else torch.device("cpu")
    local = t.to(backend_device).contiguous()
    n = torch.tensor([local.shape[0]], device=backend_device, dtype=torch.long)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    m = max(counts)
    if local.shape[0] < m:
        pad = torch.zeros((m - local.shape[0],) + tuple(local.shape[1:]), dtype=local.dtype, device=local.device)
        local = torch.cat([local, pad])
    out: List[torch.Tensor] = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(out, local)  # all_gather works on every backend (gather is not on NCCL in all versions)
    if dist.get_rank() != 0:
        return None
    return torch.cat([o[:c] for o, c in zip(out, counts)]).to(t.device)


def broadcast_buffers(model: torch.nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (BatchNorm running statistics) to every rank, so all replicas extract alike."""
    if not is_dist():
        return
    for b in model.buffers():
        if dist.get_backend() == "nccl" or b.device.type == "cpu":
            dist.broadcast(b.data, src)
        else:
            t = b.data.cpu()
            dist.broadcast(t, src)
            b.data.copy_(t)


def shard_indices(n: int, rank: int, world_size: int) -> List[int]:
    """Contiguous, balanced shard of ``range(n)`` for ``rank`` (concatenating shards in rank order gives 0..n-1)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return list(range(start, start + base + (1 if rank < extra else 0)))


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
