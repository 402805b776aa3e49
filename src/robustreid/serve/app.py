"""The HTTP API (FastAPI): ``/health``, ``/embed``, ``/search``, ``/index/add`` and the page at ``/``.

Uploads are multipart files in the field ``images``, checked by :mod:`robustreid.serve.uploads` (4xx with a
message otherwise). Decoding runs in the thread pool; the model runs in one worker behind a
:class:`~robustreid.serve.batcher.BatchQueue`, so concurrent requests share forward passes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

try:
    import python_multipart  # noqa: F401  (FastAPI's form parsing)
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
except ImportError as _e:  # pragma: no cover - the serve extra is missing
    raise ImportError(f"the service needs FastAPI, python-multipart and uvicorn ({_e}): pip install "
                      "'robustreid[serve]'") from None

from ..export.identity import short_id
from ..utils.io import atomic_write_bytes
from .batcher import BatchQueue
from .gallery import Gallery
from .page import PAGE
from .sheet import thumbnail
from .uploads import UploadError, UploadLimits, check_count, decode_upload, extension_of


def _ints(values: List[str], n: int, name: str) -> List[int]:
    items = [v.strip() for s in values for v in str(s).split(",") if v.strip()]
    if not items:
        return [-1] * n
    if len(items) != n:
        raise UploadError(400, f"{name}: {len(items)} values for {n} images (give one per image, comma-separated)")
    try:
        return [int(v) for v in items]
    except ValueError:
        raise UploadError(400, f"{name}: expected integers, got {','.join(items)!r}") from None


async def read_files(request: Request, limits: UploadLimits) -> Tuple[List[Tuple[str, bytes]], Any]:
    """The uploaded files of the field ``images`` as (name, bytes) and the form; 4xx with a message on bad input."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise UploadError(411, "send the upload with a Content-Length header (multipart/form-data)")
    if int(length) > limits.max_request_bytes():
        raise UploadError(413, f"request of {int(length):,} bytes; at most {limits.max_request_bytes():,} "
                               f"({limits.max_images} images of {limits.max_bytes:,} bytes)")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadError(415, "send images as multipart/form-data files in the field 'images'")
    try:
        form = await request.form(max_files=4 * limits.max_images + 4, max_fields=64)
    except Exception as e:
        raise UploadError(400, f"cannot parse the multipart form ({getattr(e, 'detail', e)})") from None
    parts = form.getlist("images")
    check_count(len(parts), limits)
    files = []
    for i, part in enumerate(parts):
        if isinstance(part, str):
            raise UploadError(400, f"images[{i}] is a text field; send files")
        data = await part.read(limits.max_bytes + 1)
        files.append((part.filename or f"images[{i}]", data))
    return files, form


def store_added(files: List[Tuple[str, bytes]], added_dir: Optional[Path]) -> List[str]:
    """Write added crops into ``added_dir`` under their content hash (once); their absolute paths ("" without a
    folder: the index then holds no path for them)."""
    if added_dir is None:
        return [""] * len(files)
    added_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for _, data in files:
        p = added_dir / (hashlib.sha256(data).hexdigest()[:20] + extension_of(data))
        if not p.exists():
            atomic_write_bytes(p, data)
        paths.append(str(p.resolve()))
    return paths


def create_app(gallery: Gallery, *, limits: Optional[UploadLimits] = None, max_batch: int = 32,
               max_wait_ms: float = 5.0, added_dir: Optional[Path] = None, persist: bool = True,
               max_k: int = 100):
    """The FastAPI application over ``gallery``. Crops added through ``/index/add`` are written to ``added_dir``
    (default: ``<index>.added/`` next to the index file) and, with ``persist``, the index is saved after each add."""
    limits = limits or UploadLimits()
    embedder = gallery.embedder
    if added_dir is None and gallery.path is not None:
        added_dir = gallery.path.with_name(gallery.path.name + ".added")

    def embed_items(items: List[torch.Tensor]) -> List[np.ndarray]:
        return list(embedder.embed(torch.stack(items)))

    queue = BatchQueue(embed_items, max_batch=max_batch, max_wait_ms=max_wait_ms, name="robustreid-model")

    @asynccontextmanager
    async def lifespan(app):
        yield
        queue.close()

    app = FastAPI(title="robustreid search", version="1", lifespan=lifespan,
                  description="Person re-identification search over a gallery index.")
    app.state.gallery, app.state.queue, app.state.limits = gallery, queue, limits
    started = time.time()

    @app.exception_handler(UploadError)
    async def _upload_error(request, exc: UploadError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    async def decode(files: List[Tuple[str, bytes]]) -> List[torch.Tensor]:
        imgs = await run_in_threadpool(lambda: [decode_upload(n, d, limits) for n, d in files])
        return await run_in_threadpool(lambda: list(embedder.prepare(imgs).unbind(0)))

    async def embed(files: List[Tuple[str, bytes]]) -> np.ndarray:
        batch = await decode(files)
        rows = await asyncio.wrap_future(queue.submit(batch))
        return np.stack(rows)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE)

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        return {"status": "ok", "model": {"identity": embedder.identity, "short": short_id(embedder.identity),
                                          "backend": embedder.backend, "source": embedder.source,
                                          "input_size": list(embedder.input_size), "flip": embedder.flip},
                "index": {"rows": len(gallery), "kind": gallery.index.kind, "dim": gallery.index.dim},
                "queue": queue.stats(), "limits": limits.as_dict(), "uptime_seconds": round(time.time() - started, 1)}

    @app.post("/embed")
    async def embed_endpoint(request: Request) -> Dict[str, Any]:
        """Images -> L2-normalised embeddings (what the index holds)."""
        files, _ = await read_files(request, limits)
        feats = await embed(files)
        return {"model": short_id(embedder.identity), "dim": int(feats.shape[1]), "count": int(feats.shape[0]),
                "normalized": True, "embeddings": feats.round(7).tolist()}

    @app.post("/search")
    async def search_endpoint(request: Request, k: int = 10, thumbnails: bool = True) -> Dict[str, Any]:
        if not 1 <= k <= max_k:
            raise UploadError(422, f"k: expected 1..{max_k}, got {k}")
        t0 = time.perf_counter()
        files, _ = await read_files(request, limits)
        feats = await embed(files)
        ranked = await run_in_threadpool(gallery.search, feats, k)
        if thumbnails:
            def add_thumbs():
                for rows in ranked:
                    for row in rows:
                        row["thumbnail"] = thumbnail(row["path"]) if row["path"] else None
            await run_in_threadpool(add_thumbs)
        return {"model": short_id(embedder.identity), "k": k, "gallery_rows": len(gallery),
                "results": [{"query": i, "name": files[i][0], "matches": rows} for i, rows in enumerate(ranked)],
                "seconds": round(time.perf_counter() - t0, 4)}

    @app.post("/index/add")
    async def add_endpoint(request: Request) -> Dict[str, Any]:
        files, form = await read_files(request, limits)
        pids = _ints(form.getlist("pids"), len(files), "pids")
        camids = _ints(form.getlist("camids"), len(files), "camids")
        feats = await embed(files)

        paths = await run_in_threadpool(store_added, files, added_dir)
        start, stop = await run_in_threadpool(gallery.add, feats, pids, camids, paths, persist)
        return {"added": stop - start, "ids": list(range(start, stop)), "rows": stop}

    return app
