"""The robustness benchmark across processes: ``torchrun --nproc-per-node N -m robustreid bench ...``.

Under torchrun (``WORLD_SIZE`` > 1, process group joined by ``robustreid.engine.distributed.init_distributed``) the
runner works as a :class:`Team` of ranks:

- **clean features**: each rank extracts a share of the query and gallery images in whole batches
  (:func:`robustreid.engine.distributed.sharded_rows`); the features are all-gathered, so every rank holds them
  all; rank 0 reads and writes the clean-feature cache;
- **cells**: the groups of cells that share their corrupted features (one corruption, severity and pass) are dealt
  round-robin in rounds of ``world_size`` groups — group *i* of the run order goes to rank *i* mod N; a rank
  extracts, corrupts and evaluates only its own groups;
- **merging**: after each round the rows are all-gathered and rank 0 appends them to ``results.csv`` /
  ``results.jsonl`` in the one-process run order (each row atomically, as in one process), so the files are the
  same rows in the same order as a one-process run; an interruption loses at most the round in progress;
- **resume**: rank 0 reads the results and every rank gets the set of finished cells, so a re-run (with any
  number of processes, or none) skips them.

Only rank 0 touches the run directory (``run.json``, results, cache, examples), so ``--out`` needs to exist only
on the node of rank 0. One process (no torchrun) uses :data:`SOLO`, which is the plain runner.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from ..engine import distributed as D
from .results import ResultStore, row_key

T = TypeVar("T")


class SharedStore:
    """The :class:`~robustreid.robustness.results.ResultStore` of a distributed run.

    Rank 0 holds the real store; every rank knows the finished cells (``key in store``). ``append`` keeps the row
    until the end of the round; :meth:`flush` (a collective) sends all ranks' rows to rank 0, which appends them in
    run order (``group`` = index of the group in the run order, then the order of appends within it)."""

    def __init__(self, run_dir: Union[str, Path], team: "Team"):
        self.team = team
        self._store: Optional[ResultStore] = None

        def open_store():
            self._store = ResultStore(run_dir)
            return sorted(self._store.done)

        self.done = set(D.run_on_main(open_store))
        self.group = 0
        self._pending: List[Tuple[int, int, Dict]] = []

    def __contains__(self, key) -> bool:
        return key in self.done

    def append(self, row: Dict) -> None:
        self._pending.append((self.group, len(self._pending), dict(row)))

    def flush(self) -> None:
        """Collective: every rank's pending rows to rank 0, appended there in run order."""
        everyone = D.all_gather_objects(self._pending)
        self._pending = []
        merged = sorted((p for rank_rows in everyone for p in rank_rows), key=lambda p: (p[0], p[1]))
        for _, _, row in merged:
            if self._store is not None:
                self._store.append(row)
            self.done.add(row_key(row))

    def rows(self) -> List[Dict]:
        """Collective: all rows of the run (rank 0's store), on every rank."""
        return D.broadcast_object(list(self._store.rows) if self._store is not None else None)


class Team:
    """The ranks of a benchmark run (one process: ``world == 1``, every method the plain single-process action)."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank = int(rank)
        self.world = int(world)

    @classmethod
    def current(cls) -> "Team":
        """The team of this process: the joined torch.distributed group, or one process."""
        return cls(D.get_rank(), D.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    # -------------------------------------------------------------------------------------------- rank 0's work
    def on_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` on rank 0 (file work), its result on every rank; its error raised on every rank."""
        return D.run_on_main(fn) if self.enabled else fn()

    def agree(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (e.g. whether a file exists, on a directory only rank 0 may see)."""
        return D.broadcast_object(value) if self.enabled else value

    def array_from_main(self, fn: Callable[[], Optional[np.ndarray]]) -> Optional[np.ndarray]:
        """``fn()`` (an array or ``None``, e.g. a cache read) on rank 0, the array on every rank (sent as a tensor)."""
        if not self.enabled:
            return fn()
        box: Dict[str, Optional[np.ndarray]] = {}

        def main() -> bool:
            box["a"] = fn()
            return box["a"] is not None

        if not D.run_on_main(main):
            return None
        return D.broadcast_array(box.get("a"))

    # -------------------------------------------------------------------------------------------------- results
    def store(self, run_dir: Union[str, Path]) -> Union[ResultStore, SharedStore]:
        return SharedStore(run_dir, self) if self.enabled else ResultStore(run_dir)

    def rows(self, store: Union[ResultStore, SharedStore]) -> List[Dict]:
        """All rows of the run on every rank (a collective when distributed)."""
        return store.rows() if isinstance(store, SharedStore) else list(store.rows)

    def share(self, items: Iterable[T], store: Union[ResultStore, SharedStore]) -> Iterator[T]:
        """This rank's items (item ``i`` -> rank ``i mod world``), in rounds of ``world`` items; the store is
        flushed after each round. Every rank must consume the iterator to the end (each flush is a collective)."""
        items = list(items)
        if not self.enabled:
            yield from items
            return
        for start in range(0, len(items), self.world):
            round_items = items[start:start + self.world]
            if self.rank < len(round_items):
                store.group = start + self.rank  # type: ignore[union-attr]
                yield round_items[self.rank]
            store.flush()  # type: ignore[union-attr]

    def count_mine(self, n: int) -> int:
        """How many of ``n`` shared items this rank handles (for its progress bar)."""
        return len(range(self.rank, n, self.world))

    def merged(self, d: Dict[str, Any]) -> Dict[str, Any]:
        """The union of every rank's dict (later ranks' keys win; rank 0's order first) — e.g. the report's examples,
        whose corrupted lists come from the rank that owned their group."""
        if not self.enabled:
            return d
        out: Dict[str, Any] = {}
        for part in D.all_gather_objects(d):
            out.update(part or {})
        return out

    # ------------------------------------------------------------------------------------------------ features
    def sharded(self, extract: Callable[..., Tuple[np.ndarray, float]], batch_size: int
                ) -> Callable[..., Tuple[np.ndarray, float]]:
        """``extract(samples, transform=None) -> (features, seconds)`` split across ranks in whole batches of
        ``batch_size``; every rank gets all the features, in sample order (bit-identical to one process)."""
        if not self.enabled:
            return extract

        def run(samples: Sequence, transform=None) -> Tuple[np.ndarray, float]:
            t0 = time.perf_counter()
            f = D.sharded_rows(lambda idx: extract([samples[i] for i in idx], transform)[0], len(samples),
                               batch_size)
            return np.asarray(f, dtype=np.float32), time.perf_counter() - t0

        return run


#: the team of a one-process run
SOLO = Team()
