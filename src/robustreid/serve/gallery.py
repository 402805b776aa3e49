"""A searchable gallery: a :class:`~robustreid.eval.index.GalleryIndex` plus the model that embedded it.

The index's ``info`` records the model's identity (and where it came from, the flip setting, the input size), so a
search or an ``add`` with any other model is refused instead of returning meaningless neighbours.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..eval.index import GalleryIndex
from ..export.identity import short_id
from ..utils.progress import progress_bar
from .embedder import Embedder, check_same_model, open_embedder

_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


@dataclass
class ImageList:
    """Images to index with their identity labels (-1 = unknown) and a description of where they came from."""

    paths: List[str]
    pids: np.ndarray
    camids: np.ndarray
    source: str


def images_from_dataset(name: str, root: str, split: str = "gallery") -> ImageList:
    from ..data import load_dataset

    if split not in ("gallery", "query", "train"):
        raise ValueError(f"split: expected gallery, query or train, got {split!r}")
    samples = load_dataset(name, root).split(split)
    if not samples:
        raise ValueError(f"dataset {name} at {root} has no {split} images")
    return ImageList([os.path.abspath(s.path) for s in samples], np.array([s.pid for s in samples], np.int64),
                     np.array([s.camid for s in samples], np.int64), f"{name}:{root}:{split}")


def images_from_folder(folder: Union[str, Path]) -> ImageList:
    """Every image under ``folder`` (recursively, sorted). Market-style names (``0002_c1s1_...``) give the person
    and camera (0-based); other names get -1."""
    from ..data.datasets import list_images

    folder = str(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"--images {folder}: not a folder")
    paths = [os.path.abspath(p) for p in list_images(folder, recursive=True)]
    if not paths:
        raise ValueError(f"--images {folder}: no image files found (JPEG, PNG, BMP, TIFF, WebP)")
    pids, cams = [], []
    for p in paths:
        m = _MARKET_NAME.match(os.path.basename(p))
        pids.append(int(m.group(1)) if m else -1)
        cams.append(int(m.group(2)) - 1 if m else -1)
    return ImageList(paths, np.array(pids, np.int64), np.array(cams, np.int64), f"folder:{os.path.abspath(folder)}")


def _model_info(embedder: Embedder) -> Dict[str, str]:
    return {"model_identity": embedder.identity, "model_source": embedder.source, "backend": embedder.backend,
            "flip": str(bool(embedder.flip)), "input_size": f"{embedder.input_size[0]}x{embedder.input_size[1]}"}


def embed_resumable(embedder: Embedder, paths: Sequence[str], parts: Optional[Union[str, Path]] = None, *,
                    chunk: int = 4096, progress: bool = True, desc: str = "embed") -> np.ndarray:
    """Embed ``paths`` in chunks, each written atomically to ``parts/NNNNNN.npy``; a rerun of the same job (same
    model, flip, paths and chunk size, recorded in ``parts/job.json``) loads the chunks already done. Without
    ``parts`` nothing is written."""
    if parts is None:
        return embedder.embed_paths(paths, progress=progress, desc=desc)
    from ..utils.io import atomic_path, atomic_write_text

    parts = Path(parts)
    job = hashlib.sha256("\n".join([embedder.identity, str(embedder.flip), str(chunk), *map(str, paths)])
                         .encode()).hexdigest()
    marker = parts / "job.json"
    if marker.is_file() and json.loads(marker.read_text()).get("job") != job:
        shutil.rmtree(parts)  # chunks of another job: start over
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(marker, json.dumps({"job": job, "rows": len(paths), "chunk": chunk}))
    bar = None
    if progress:
        bar = progress_bar(total=len(paths), desc=desc, unit="img")
    out = []
    for i, start in enumerate(range(0, len(paths), chunk)):
        f = parts / f"{i:06d}.npy"
        if f.is_file():
            a = np.load(f)
            if bar is not None:
                bar.update(len(a))
        else:
            a = embedder.embed_paths(paths[start:start + chunk], bar=bar, progress=False)
            with atomic_path(f) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, a)
        out.append(a)
    if bar is not None:
        bar.close()
    return np.concatenate(out)


def build_index(embedder: Embedder, images: ImageList, *, kind: str = "flat", progress: bool = True,
                parts: Optional[Union[str, Path]] = None, **params: Any) -> GalleryIndex:
    """Embed ``images`` in batches and build an index of ``kind`` that remembers the model. With ``parts`` (a
    folder) the embedding resumes after an interruption (:func:`embed_resumable`)."""
    t0 = time.perf_counter()
    feats = embed_resumable(embedder, images.paths, parts, progress=progress, desc="index")
    t1 = time.perf_counter()
    index = GalleryIndex.build(feats, images.pids, images.camids, images.paths, kind=kind, **params)
    index.info = {**_model_info(embedder), "sources": images.source, "embed_seconds": f"{t1 - t0:.2f}",
                  "index_seconds": f"{time.perf_counter() - t1:.2f}"}
    return index


def add_images(index: GalleryIndex, embedder: Embedder, images: ImageList, *, where: str = "the index",
               progress: bool = True, parts: Optional[Union[str, Path]] = None) -> Tuple[int, int]:
    """Embed and append ``images``; returns the new rows' id range [start, stop)."""
    check_same_model(index.info.get("model_identity", ""), embedder, where, index.info.get("model_source"))
    feats = embed_resumable(embedder, images.paths, parts, progress=progress, desc="add")
    start = len(index)
    index.add(feats, images.pids, images.camids, images.paths)
    src = index.info.get("sources", "")
    index.info["sources"] = f"{src};{images.source}" if src else images.source
    return start, len(index)


def embedder_for_index(index: GalleryIndex, where: str, checkpoint=None, onnx=None, **kwargs: Any) -> Embedder:
    """The index's own model (its recorded checkpoint) unless one is given; any model must match the index."""
    info = index.info
    if checkpoint is None and onnx is None:
        src = info.get("model_source", "")
        if not src or not os.path.exists(src):
            raise ValueError(f"{where} does not say where its model is (recorded: {src or 'nothing'}); pass "
                             f"--checkpoint or --onnx with the model {short_id(info.get('model_identity', '?'))}")
        if src.endswith(".onnx"):
            onnx = src
        else:
            checkpoint = src
    kwargs.setdefault("flip", info.get("flip", "False") == "True")
    embedder = open_embedder(checkpoint, onnx, **kwargs)
    check_same_model(info.get("model_identity", ""), embedder, where, info.get("model_source"))
    return embedder


def describe(index: GalleryIndex, path: Optional[str] = None) -> Dict[str, Any]:
    """What ``robustreid index info`` prints: size, kind, dimension, labels, model, sources."""
    known = index.pids[index.pids >= 0]
    d: Dict[str, Any] = {"path": path, "rows": len(index), "kind": index.kind, "dim": index.dim,
                         "identities": int(np.unique(known).size),
                         "cameras": int(np.unique(index.camids[index.camids >= 0]).size),
                         "unlabelled_rows": int((index.pids < 0).sum())}
    if index.kind == "ivf":
        d.update(nlist=index.nlist, nprobe=index.nprobe)
    elif index.kind == "hnsw":
        d.update(hnsw_m=index.hnsw_m, ef_search=index.ef_search)
    d.update({k: v for k, v in index.info.items()})
    return d


class Gallery:
    """An index and its embedder behind one lock (searches and adds from many threads)."""

    def __init__(self, index: GalleryIndex, embedder: Embedder, path: Optional[Union[str, Path]] = None):
        check_same_model(index.info.get("model_identity", ""), embedder, str(path or "the index"),
                         index.info.get("model_source"))
        self.index, self.embedder = index, embedder
        self.path = Path(path) if path is not None else None
        self.lock = threading.Lock()

    def search(self, feats: np.ndarray, k: int) -> List[List[Dict[str, Any]]]:
        with self.lock:
            ids, scores, meta = self.index.search(feats, k)
        out = []
        for q in range(ids.shape[0]):
            rows = []
            for r in range(ids.shape[1]):
                if ids[q, r] < 0:
                    break
                rows.append({"rank": r + 1, "id": int(ids[q, r]), "score": float(scores[q, r]),
                             "pid": int(meta["pid"][q, r]), "camid": int(meta["camid"][q, r]),
                             "path": meta["path"][q][r]})
            out.append(rows)
        return out

    def add(self, feats: np.ndarray, pids: Sequence[int], camids: Sequence[int], paths: Sequence[str],
            persist: bool = True) -> Tuple[int, int]:
        with self.lock:
            start = len(self.index)
            self.index.add(feats, pids, camids, paths)
            if persist and self.path is not None:
                self.index.save(self.path)
            return start, len(self.index)

    def path_of(self, i: int) -> str:
        with self.lock:
            return self.index.paths[i] if 0 <= i < len(self.index.paths) else ""

    def __len__(self) -> int:
        return len(self.index)


def embed_files(embedder: Embedder, files: Sequence[Union[str, Path]]) -> Tuple[np.ndarray, List[torch.Tensor]]:
    """Query images from files -> (embeddings, decoded native-size images)."""
    from ..transforms.decode import read_image

    imgs = [read_image(f) for f in files]
    return embedder.embed_images(imgs), imgs
