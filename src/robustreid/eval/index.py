"""Gallery search at scale on FAISS: exact (flat) and approximate (IVF-Flat, HNSW) inner-product indexes on
L2-normalised features, with per-item metadata (pid, camid, path).

FAISS (``faiss-cpu``, the ``faiss`` extra) is imported on first use. Saved as two files: ``<path>`` (the FAISS index,
``faiss.write_index``; every kind stores the vectors themselves, see :meth:`GalleryIndex.features`) and
``<path>.meta.safetensors`` (pids, camids, the paths as newline-separated UTF-8 bytes, the settings and a free
string-to-string ``info`` mapping, e.g. the identity of the model that embedded the gallery). Nothing is pickled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

KINDS = ("flat", "ivf", "hnsw")
FORMAT = "robustreid.gallery_index/1"


def _faiss():
    try:
        import faiss  # noqa: F401
    except ImportError:
        raise ImportError("GalleryIndex needs FAISS: pip install 'robustreid[faiss]' (the faiss-cpu package)") from None
    return faiss


def _as_f32(x, name: str, dim: Optional[int] = None) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected an N×D array, got shape {a.shape}")
    if dim is not None and a.shape[1] != dim:
        raise ValueError(f"{name}: expected dimension {dim}, got {a.shape[1]}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    n = np.linalg.norm(a, axis=1, keepdims=True)
    return np.ascontiguousarray(a / np.maximum(n, 1e-12), dtype=np.float32)


def _meta_array(x, n: int, name: str, default: int) -> np.ndarray:
    if x is None:
        return np.full(n, default, dtype=np.int64)
    a = np.asarray(x, dtype=np.int64).reshape(-1)
    if a.size != n:
        raise ValueError(f"{name} has {a.size} entries but there are {n} feature rows")
    return a


class GalleryIndex:
    """Top-k search of L2-normalised features by inner product (= cosine similarity).

    kinds: ``"flat"`` (exact), ``"ivf"`` (IVF-Flat: ``nlist`` clusters, ``nprobe`` visited per query),
    ``"hnsw"`` (graph with ``hnsw_m`` links, ``ef_search`` at query time).
    """

    def __init__(self, dim: int, kind: str = "flat", *, nlist: Optional[int] = None, nprobe: int = 16,
                 hnsw_m: int = 32, ef_search: int = 64, ef_construction: int = 80):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim, self.kind = int(dim), kind
        self.nlist, self.nprobe = nlist, int(nprobe)
        self.hnsw_m, self.ef_search, self.ef_construction = int(hnsw_m), int(ef_search), int(ef_construction)
        self._index = None
        self.pids = np.zeros(0, dtype=np.int64)
        self.camids = np.zeros(0, dtype=np.int64)
        self.paths: List[str] = []
        self.info: Dict[str, str] = {}  # saved with the index: model identity, how it was built, ...

    # ---------------------------------------------------------------------------------------------------------
    def _create(self, train: np.ndarray):
        faiss = _faiss()
        if self.kind == "flat":
            index = faiss.IndexFlatIP(self.dim)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
        else:
            if self.nlist is None:
                self.nlist = default_nlist(train.shape[0])
            if train.shape[0] < self.nlist:
                raise ValueError(f"an IVF index with nlist={self.nlist} needs at least {self.nlist} training "
                                 f"vectors, got {train.shape[0]}")
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(train)
        self._index = index
        self._apply_search_params()

    def _apply_search_params(self):
        if self.kind == "ivf":
            self._index.nprobe = self.nprobe
        elif self.kind == "hnsw":
            self._index.hnsw.efSearch = self.ef_search

    @classmethod
    def build(cls, features, pids=None, camids=None, paths: Optional[Sequence[str]] = None, *, kind: str = "flat",
              train_size: Optional[int] = None, seed: int = 0, **params) -> "GalleryIndex":
        """Create an index of ``kind`` and add ``features`` (N×D) with their metadata. IVF trains its clusters
        on ``train_size`` random rows (default: all, capped at 256·nlist)."""
        x = _as_f32(features, "features")
        self = cls(x.shape[1], kind, **params)
        train = x
        if kind == "ivf":
            nl = self.nlist or default_nlist(x.shape[0])
            self.nlist = nl
            m = train_size or min(x.shape[0], 256 * nl)
            if m < x.shape[0]:
                train = x[np.random.default_rng(seed).choice(x.shape[0], m, replace=False)]
        self._create(train)
        self._add_normalised(x, pids, camids, paths)
        return self

    def add(self, features, pids=None, camids=None, paths: Optional[Sequence[str]] = None) -> None:
        """Append items (ids continue from ``len(self)``). An empty flat/HNSW index is created on first add; an
        IVF index must come from :meth:`build` (it needs training data)."""
        x = _as_f32(features, "features", self.dim)
        if self._index is None:
            if self.kind == "ivf":
                self._create(x)
            else:
                self._create(x[:0])
        self._add_normalised(x, pids, camids, paths)

    def _add_normalised(self, x: np.ndarray, pids, camids, paths) -> None:
        n = x.shape[0]
        p = _meta_array(pids, n, "pids", -1)
        c = _meta_array(camids, n, "camids", -1)
        if paths is None:
            pl = [""] * n
        else:
            pl = [str(s) for s in paths]
            if len(pl) != n:
                raise ValueError(f"paths has {len(pl)} entries but there are {n} feature rows")
        self._index.add(x)
        self.pids = np.concatenate([self.pids, p])
        self.camids = np.concatenate([self.camids, c])
        self.paths.extend(pl)

    def __len__(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def features(self, start: int = 0, stop: Optional[int] = None) -> np.ndarray:
        """The stored (L2-normalised) vectors of rows ``start:stop`` as float32, read back from FAISS."""
        n = len(self)
        stop = n if stop is None else min(int(stop), n)
        if not 0 <= start <= stop:
            raise ValueError(f"features: rows {start}:{stop} out of range for an index of {n} rows")
        if stop == start:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.kind == "ivf":
            self._index.make_direct_map()
        return np.asarray(self._index.reconstruct_n(int(start), int(stop - start)), dtype=np.float32)

    # ---------------------------------------------------------------------------------------------------------
    def search(self, queries, k: int = 10) -> Tuple[np.ndarray, np.ndarray, Dict[str, object]]:
        """Top-k per query: ``ids`` (Q×k int64, -1 where fewer than k items), ``scores`` (Q×k float32 cosine
        similarity, best first) and metadata rows ``{"pid": Q×k, "camid": Q×k, "path": Q lists of k}``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = _as_f32(queries, "queries", self.dim)
        if len(self) == 0:
            ids = np.full((q.shape[0], k), -1, dtype=np.int64)
            scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
        else:
            scores, ids = self._index.search(q, k)
            ids = ids.astype(np.int64, copy=False)
        ok = ids >= 0
        safe = np.where(ok, ids, 0)
        meta = {
            "pid": np.where(ok, self.pids[safe] if len(self.pids) else -1, -1),
            "camid": np.where(ok, self.camids[safe] if len(self.camids) else -1, -1),
            "path": [[self.paths[i] if i >= 0 else "" for i in row] for row in ids.tolist()],
        }
        return ids, scores, meta

    # ---------------------------------------------------------------------------------------------------------
    def save(self, path: Union[str, Path]) -> None:
        """Write ``path`` (FAISS index) and ``path.meta.safetensors`` (metadata), each atomically."""
        faiss = _faiss()
        import torch
        from safetensors.torch import save_file

        from ..utils.io import atomic_path

        if self._index is None:
            raise ValueError("cannot save an empty GalleryIndex (nothing was added)")
        path = Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self._index, str(tmp))
        settings = {"kind": self.kind, "dim": self.dim, "nlist": self.nlist, "nprobe": self.nprobe,
                    "hnsw_m": self.hnsw_m, "ef_search": self.ef_search, "ef_construction": self.ef_construction}
        if any("\n" in p for p in self.paths):
            raise ValueError("cannot save a path that contains a newline")
        meta = {"format": FORMAT, "settings": json.dumps(settings), "info": json.dumps(self.info)}
        blob = "\n".join(self.paths).encode("utf-8")
        tensors = {"pids": torch.from_numpy(self.pids.copy()), "camids": torch.from_numpy(self.camids.copy()),
                   "paths_utf8": torch.frombuffer(bytearray(blob), dtype=torch.uint8) if blob
                   else torch.zeros(0, dtype=torch.uint8)}
        with atomic_path(_meta_path(path)) as tmp:
            save_file(tensors, str(tmp), metadata=meta)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "GalleryIndex":
        faiss = _faiss()
        from safetensors import safe_open

        path = Path(path)
        mp = _meta_path(path)
        for p in (path, mp):
            if not p.is_file():
                raise FileNotFoundError(f"gallery index file {p} does not exist")
        try:
            with safe_open(str(mp), framework="np") as f:
                meta = dict(f.metadata() or {})
                if meta.get("format") != FORMAT:
                    raise ValueError(f"{mp}: not a robustreid gallery index sidecar")
                pids, camids = f.get_tensor("pids"), f.get_tensor("camids")
                blob = f.get_tensor("paths_utf8").tobytes() if "paths_utf8" in f.keys() else None
            settings = json.loads(meta["settings"])
            info = json.loads(meta.get("info", "{}"))
            if blob is None:  # written before paths moved out of the JSON header
                paths = json.loads(meta["paths"])
            else:
                paths = blob.decode("utf-8").split("\n") if len(pids) else []
        except ValueError:
            raise
        except Exception as e:  # safetensors / json errors
            raise ValueError(f"{mp}: cannot read the gallery index metadata ({e})") from None
        self = cls(settings["dim"], settings["kind"], nlist=settings["nlist"], nprobe=settings["nprobe"],
                   hnsw_m=settings["hnsw_m"], ef_search=settings["ef_search"],
                   ef_construction=settings["ef_construction"])
        try:
            self._index = faiss.read_index(str(path))
        except RuntimeError as e:
            raise ValueError(f"{path}: cannot read as a FAISS index ({str(e).splitlines()[0]})") from None
        if self._index.d != self.dim or self._index.ntotal != len(pids) or len(paths) != len(pids):
            raise ValueError(f"{path}: index and metadata disagree (dim {self._index.d} vs {self.dim}, "
                             f"{self._index.ntotal} vectors vs {len(pids)} metadata rows)")
        self._apply_search_params()
        self.pids, self.camids, self.paths = np.asarray(pids, np.int64), np.asarray(camids, np.int64), paths
        self.info = {str(k): str(v) for k, v in info.items()}
        return self

    def set_search_params(self, *, nprobe: Optional[int] = None, ef_search: Optional[int] = None) -> None:
        if nprobe is not None:
            self.nprobe = int(nprobe)
        if ef_search is not None:
            self.ef_search = int(ef_search)
        if self._index is not None:
            self._apply_search_params()


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: 4·sqrt(n), but at most n / 39 (FAISS wants >= 39 training points per list)."""
    return int(max(1, min(65536, round(4 * math.sqrt(max(n, 1))), n // 39)))


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.safetensors")
