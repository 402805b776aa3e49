"""Distributed training helpers: torchrun + DistributedDataParallel (NCCL on GPU, Gloo on CPU).

Launch::

    torchrun --nproc_per_node 4 -m robustreid train bot_r50 --out runs/bot        # one machine, 4 GPUs
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 --nproc_per_node 8 \
        -m robustreid train bot_r50 --out runs/bot                                 # two machines

The trainer calls :func:`init_distributed` (a no-op unless ``WORLD_SIZE`` > 1 in the environment), shards the
identities of every epoch across ranks with the PK sampler, gathers features to rank 0 for evaluation and writes
files on rank 0 only.

The extraction and the robustness benchmark use the helpers at the end of this module under torchrun too:
:func:`sharded_rows` gives each rank a share of the images in whole batches and all-gathers the features;
:func:`run_on_main` runs file work on rank 0 and re-raises its errors on every rank (no rank is left waiting).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import pickle
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence

import numpy as np
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


def init_distributed(device: str = "auto", backend: Optional[str] = None,
                     timeout_s: Optional[float] = None) -> DistInfo:
    """Join the process group when launched by torchrun (or already initialised); return this process's info.
    ``timeout_s``: how long a collective may wait for the other ranks (torch's default when ``None``)."""
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
    if timeout_s is None:
        dist.init_process_group(backend=backend)
    else:
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


#: how long a command's collectives wait for the slowest rank: a benchmark round waits for its slowest group, which
#: on CPUs can take longer than torch's default (30 min for Gloo)
COMMAND_TIMEOUT_S = 6 * 3600.0


@contextlib.contextmanager
def launched(device: str = "auto", timeout_s: float = COMMAND_TIMEOUT_S) -> Iterator[DistInfo]:
    """A command's view of torchrun: join the process group if launched by it (no-op otherwise), leave it at the end
    — only if joined here, so a caller's own group stays up."""
    joined_before = dist.is_available() and dist.is_initialized()
    info = init_distributed(device, timeout_s=timeout_s)
    try:
        yield info
    finally:
        if not joined_before:
            cleanup()


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


def batch_shard(n: int, batch_size: int, rank: int, world_size: int) -> range:
    """``rank``'s share of ``range(n)`` in whole batches: contiguous, balanced by number of batches, every batch
    boundary at a multiple of ``batch_size`` as in a one-process pass (so each image is in a batch of the same
    composition, and eval-mode features are bit-identical to one process's). Rank-order concatenation = 0..n-1."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = shard_indices(-(-n // batch_size), rank, world_size)
    if not batches:
        return range(0)
    return range(batches[0] * batch_size, min(n, (batches[-1] + 1) * batch_size))


def all_gather_objects(obj: Any) -> List[Any]:
    """Every rank's picklable ``obj``, in rank order, on every rank (``[obj]`` when not distributed)."""
    if not is_dist():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``src``'s picklable ``obj`` on every rank (``obj`` itself when not distributed)."""
    if not is_dist():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src)
    return box[0]


def _portable(err: BaseException) -> BaseException:
    """The exception itself when it survives pickling (same type and message on every rank), else a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001 - any unpicklable exception
        return RuntimeError(f"{type(err).__name__}: {err}")


def run_on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0 only (file reads and writes), its picklable result on every rank. An exception raised by
    ``fn`` is raised on every rank, so no rank is left waiting in a collective."""
    if not is_dist():
        return fn()
    result: Any = None
    error: Optional[BaseException] = None
    if dist.get_rank() == 0:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
            error = e
    ok, payload = broadcast_object((True, result) if error is None else (False, _portable(error)))
    if error is not None:
        raise error
    if not ok:
        raise payload
    return payload


def _comm_device() -> torch.device:
    """Where a collective's tensors live: the current GPU under NCCL, the CPU otherwise."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_array(a: Optional[np.ndarray], src: int = 0) -> Optional[np.ndarray]:
    """``src``'s numpy array (or ``None``) on every rank, sent as a tensor (large feature matrices are not pickled)."""
    if not is_dist():
        return a
    meta = broadcast_object(None if a is None else (tuple(a.shape), str(a.dtype)), src)
    if meta is None:
        return None
    shape, dtype = meta
    if dist.get_rank() == src:
        t = torch.from_numpy(np.ascontiguousarray(a)).to(_comm_device())
    else:
        t = torch.empty(shape, dtype=torch.from_numpy(np.empty(0, dtype=np.dtype(dtype))).dtype, device=_comm_device())
    dist.broadcast(t, src)
    return t.cpu().numpy()


def all_gather_rows(t: torch.Tensor, failure: Optional[BaseException] = None) -> torch.Tensor:
    """Every rank's rows (N_r × ...) concatenated in rank order, on every rank (``t`` when not distributed).

    Ranks may hold different numbers of rows, or none (an empty rank takes the others' row shape and dtype). A rank
    that failed passes its exception as ``failure``: then every rank raises (the failing rank its own error, the
    others the same error), instead of waiting for it."""
    if not is_dist():
        if failure is not None:
            raise failure
        return t
    mine = (0, None, None) if t.shape[0] == 0 else (int(t.shape[0]), tuple(t.shape[1:]), str(t.dtype))
    metas = all_gather_objects((mine, None if failure is None else _portable(failure)))
    if failure is not None:
        raise failure
    for _, err in metas:
        if err is not None:
            raise err
    shapes = {(m[1], m[2]) for m, _ in metas if m[0]}
    if len(shapes) > 1:
        raise ValueError(f"ranks returned rows of different shapes/dtypes: {sorted(map(str, shapes))}")
    if not shapes:
        return t
    counts = [m[0] for m, _ in metas]
    (row_shape, dtype_name), = shapes
    dev = _comm_device()
    if t.shape[0]:
        local = t.to(dev).contiguous()
    else:
        local = torch.empty((0,) + row_shape, dtype=getattr(torch, dtype_name.replace("torch.", "")), device=dev)
    m = max(counts)
    if local.shape[0] < m:
        local = torch.cat([local, torch.zeros((m - local.shape[0],) + row_shape, dtype=local.dtype, device=dev)])
    out: List[torch.Tensor] = [torch.empty_like(local) for _ in counts]
    dist.all_gather(out, local)
    return torch.cat([o[:c] for o, c in zip(out, counts)]).to(t.device if t.shape[0] else torch.device("cpu"))


def sharded_rows(fn: Callable[[Sequence[int]], Any], n: int, batch_size: int) -> np.ndarray:
    """Rows ``fn(indices)`` (numpy or tensor, one row per index) of ``range(n)``, computed in shares across ranks.

    Each rank calls ``fn`` on its :func:`batch_shard` (whole batches of ``batch_size``), then every rank gets all
    ``n`` rows in index order. Not distributed: ``fn(range(n))``. An error on one rank is raised on every rank."""
    if not is_dist():
        return np.asarray(fn(range(n)))
    mine = batch_shard(n, batch_size, get_rank(), get_world_size())
    local, failure = torch.zeros((0,)), None
    if len(mine):
        try:
            rows = fn(mine)
            local = rows.detach().cpu() if torch.is_tensor(rows) else torch.from_numpy(np.ascontiguousarray(rows))
            if local.shape[0] != len(mine):
                raise RuntimeError(f"rank {get_rank()}: {local.shape[0]} rows for {len(mine)} items")
        except Exception as e:  # noqa: BLE001 - raised on every rank by all_gather_rows
            failure = e
    out = all_gather_rows(local, failure).cpu().numpy()
    if out.shape[0] != n:
        raise RuntimeError(f"gathered {out.shape[0]} rows for {n} items")
    return out


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
