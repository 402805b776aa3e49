"""Spread independent pieces of CPU work over torch's threads, one piece per Python thread.

Corruptions of a batch (16-image chunks) and the evaluator (query blocks) are made of independent pieces whose own
tensors are small: inside one piece an OpenMP team of two threads gains little, and on a loaded machine it loses a
lot (every small operation ends in a barrier where one thread waits for a descheduled partner). :func:`parallel_map`
runs the pieces on ``torch.get_num_threads()`` Python threads instead, each with one intra-op thread; torch, numpy
and PIL release the GIL in their kernels. Results are those of the sequential loop, in order.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

_worker = threading.local()
_pool_lock = threading.Lock()
_pool: Optional[ThreadPoolExecutor] = None
_pool_key: Tuple[int, int] = (0, 0)  # (process id, workers) the pool was made for


def _mark_worker() -> None:
    _worker.active = True


def _on_one_intraop_thread(fn: Callable[[T], R], x: T) -> R:
    """``fn(x)`` with this thread's torch on one intra-op thread. Set per piece, not once when the thread starts:
    a thread's first torch call re-reads the process-wide thread count (which the caller restores after every
    map), so a worker that started in one call but ran no torch op there would run the next call's pieces with
    the caller's count — two OpenMP teams of two on two cores."""
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    return fn(x)


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    """One pool per process and size, kept between calls: fresh threads (and their fresh malloc arenas, which hand
    memory back to the kernel after every piece) cost more CPU than the work they share. A forked child makes its
    own (the parent's threads do not exist there)."""
    global _pool, _pool_key
    key = (os.getpid(), int(workers))
    with _pool_lock:
        if _pool is None or _pool_key != key:
            old, same_process = _pool, _pool_key[0] == key[0]
            _pool = ThreadPoolExecutor(max_workers=workers, initializer=_mark_worker,
                                       thread_name_prefix="robustreid-worker")
            _pool_key = key
            if old is not None and same_process:
                old.shutdown(wait=False)
        return _pool


def in_worker() -> bool:
    """True inside a :func:`parallel_map` worker thread (where nested calls run sequentially)."""
    return getattr(_worker, "active", False)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], threads: Optional[int] = None) -> List[R]:
    """``[fn(x) for x in items]``, spread over ``threads`` (default ``torch.get_num_threads()``) Python threads
    when that is more than one, each running torch with one intra-op thread. Calls from inside a worker run
    sequentially. ``fn`` must not depend on the thread count (exceptions propagate as in the loop)."""
    items = list(items)
    threads = torch.get_num_threads() if threads is None else int(threads)
    if threads <= 1 or len(items) < 2 or in_worker():
        return [fn(x) for x in items]
    own = torch.get_num_threads()
    try:
        return list(_thread_pool(threads).map(partial(_on_one_intraop_thread, fn), items))
    finally:
        torch.set_num_threads(own)  # a worker's set_num_threads(1) also changed torch's process-wide default


__all__ = ["in_worker", "parallel_map"]
