"""The sample record and the dataset type every loader returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass(frozen=True)
class Sample:
    """One image of one identity seen by one camera.

    ``pid`` is the label used for training (relabelled 0..N-1 in the train split) and the original identity in
    query/gallery; ``orig_pid`` always holds the id read from the file name or list. ``camid`` is 0-based. When the
    source has no camera information (folder / CSV loaders) the loader sets query camid 0, gallery camid 1 and
    train camid 0 with ``extra["camera_known"] = False``, so same-camera filtering removes nothing (docs/datasets.md).
    """

    path: str
    pid: int
    camid: int
    orig_pid: Optional[int] = None
    occluded: Optional[bool] = None
    mask_path: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def replace(self, **changes: Any) -> "Sample":
        return dataclasses.replace(self, **changes)


@dataclass
class ReidDataset:
    """train / query / gallery lists of :class:`Sample` and the counts the models need."""

    name: str
    train: List[Sample]
    query: List[Sample]
    gallery: List[Sample]
    root: str = ""
    #: files that were skipped (``skip_bad=True``) or other issues found while loading: "path: reason" strings
    problems: List[str] = field(default_factory=list)
    #: loader-specific information (e.g. the MSMT17 version, the query folder of Partial-REID)
    extra: Dict[str, Any] = field(default_factory=dict)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({s.camid for s in self.train})

    def split(self, name: str) -> List[Sample]:
        if name not in ("train", "query", "gallery"):
            raise ValueError(f"unknown split {name!r}; expected train, query or gallery")
        return getattr(self, name)

    def __repr__(self) -> str:
        return (
            f"ReidDataset({self.name!r}, train={len(self.train)} ({self.num_train_pids} ids), "
            f"query={len(self.query)}, gallery={len(self.gallery)})"
        )
