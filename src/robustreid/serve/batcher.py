"""A batching queue: concurrent requests share forward passes.

Each request submits a list of items and gets a future. One worker thread takes the first waiting request, then
keeps collecting requests until ``max_batch`` items are gathered or ``max_wait_ms`` has passed since the first one,
runs the function once on all their items, and hands every request its slice of the results. A request larger than
``max_batch`` runs alone (the function is expected to chunk internally).
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence


_STOP = object()


@dataclass
class _Request:
    items: Sequence[Any]
    future: Future


class BatchQueue:
    def __init__(self, fn: Callable[[List[Any]], Sequence[Any]], *, max_batch: int = 32, max_wait_ms: float = 5.0,
                 name: str = "batcher"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.fn, self.max_batch, self.max_wait = fn, int(max_batch), float(max_wait_ms) / 1000.0
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._pending: Optional[_Request] = None
        self._stopping = False
        self._stats_lock = threading.Lock()
        self.batches = self.items = self.requests = self.largest = 0
        self.busy_seconds = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Any]) -> Future:
        """Queue ``items``; the future resolves to the list of ``fn``'s results for them, in order."""
        fut: Future = Future()
        if self._closed:
            fut.set_exception(RuntimeError("the batching queue is closed"))
            return fut
        if len(items) == 0:
            fut.set_result([])
            return fut
        self._queue.put(_Request(list(items), fut))
        return fut

    def __call__(self, items: Sequence[Any], timeout: Optional[float] = None) -> List[Any]:
        return self.submit(items).result(timeout)

    def _next(self, timeout: Optional[float]) -> Any:
        """The next request, ``_STOP``, or None when ``timeout`` passes first."""
        if self._pending is not None:
            req, self._pending = self._pending, None
            return req
        if self._stopping:
            return None
        try:
            return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return None

    def _gather(self) -> Optional[List[_Request]]:
        first = self._next(None)
        if first is None or first is _STOP:
            return None
        reqs, n = [first], len(first.items)
        deadline = time.monotonic() + self.max_wait
        while n < self.max_batch:
            req = self._next(deadline - time.monotonic())
            if req is None:
                break
            if req is _STOP:
                self._stopping = True
                break
            if n + len(req.items) > self.max_batch:
                self._pending = req  # starts the next batch
                break
            reqs.append(req)
            n += len(req.items)
        return reqs

    def _run(self) -> None:
        while True:
            reqs = self._gather()
            if reqs is None:
                return
            items = [it for r in reqs for it in r.items]
            t0 = time.perf_counter()
            try:
                results = list(self.fn(items))
                if len(results) != len(items):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(items)} items")
            except BaseException as e:  # every waiting request learns about the failure
                for r in reqs:
                    r.future.set_exception(e)
                continue
            finally:
                with self._stats_lock:
                    self.busy_seconds += time.perf_counter() - t0
            i = 0
            for r in reqs:
                r.future.set_result(results[i:i + len(r.items)])
                i += len(r.items)
            with self._stats_lock:
                self.batches += 1
                self.items += len(items)
                self.requests += len(reqs)
                self.largest = max(self.largest, len(items))

    def stats(self) -> Dict[str, Any]:
        with self._stats_lock:
            return {"batches": self.batches, "items": self.items, "requests": self.requests,
                    "largest_batch": self.largest, "mean_batch": round(self.items / self.batches, 3) if self.batches
                    else 0.0, "busy_seconds": round(self.busy_seconds, 3), "max_batch": self.max_batch,
                    "max_wait_ms": self.max_wait * 1000.0}

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued work, then stop the worker."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout)
