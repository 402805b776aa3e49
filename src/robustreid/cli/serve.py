"""``robustreid serve``: the search service (FastAPI + uvicorn) over a gallery index; a thin wrapper around
:mod:`robustreid.serve`."""

from __future__ import annotations

from typing import Optional

import click


@click.command("serve")
@click.option("--index", "index_path", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--checkpoint", default=None, help="The index's model (default: the checkpoint it records).")
@click.option("--onnx", "onnx_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="Serve an exported ONNX file of the index's model (onnxruntime).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1), help="CPU threads for the model.")
@click.option("--max-batch", default=32, show_default=True, type=click.IntRange(min=1),
              help="Images per forward pass shared by concurrent requests.")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(min=0),
              help="How long the first request of a batch waits for others.")
@click.option("--max-images", default=32, show_default=True, type=click.IntRange(min=1), help="Files per request.")
@click.option("--max-bytes", default=4 * 2**20, show_default=True, type=click.IntRange(min=1024),
              help="Bytes per file.")
@click.option("--max-pixels", default=4_000_000, show_default=True, type=click.IntRange(min=64),
              help="Width × height per image.")
@click.option("--no-persist", is_flag=True, help="Keep crops added with /index/add in memory only (default: saved).")
@click.option("--log-level", type=click.Choice(["warning", "info", "debug"]), default="info", show_default=True)
def serve(index_path: str, host: str, port: int, checkpoint: Optional[str], onnx_path: Optional[str], device: str,
          threads: int, max_batch: int, max_wait_ms: float, max_images: int, max_bytes: int, max_pixels: int,
          no_persist: bool, log_level: str) -> None:
    """Serve INDEX over HTTP: GET / (the search page), GET /health, POST /embed, POST /search, POST /index/add.

    \b
    Examples:
      robustreid serve --index market.index                       # http://127.0.0.1:8000/
      robustreid serve --index market.index --onnx bot.onnx --host 0.0.0.0 --port 8080
      curl -F images=@query.jpg 'http://127.0.0.1:8000/search?k=10&thumbnails=false'
    """
    from ..eval.index import GalleryIndex
    from ..serve import Gallery, UploadLimits, embedder_for_index

    from .index import _threads

    _threads(threads)
    try:
        from ..serve.app import create_app
        from ..serve.server import serve_forever

        index = GalleryIndex.load(index_path)
        emb = embedder_for_index(index, index_path, checkpoint, onnx_path, device=device, threads=threads)
        app = create_app(Gallery(index, emb, index_path), max_batch=max_batch, max_wait_ms=max_wait_ms,
                         limits=UploadLimits(max_images=max_images, max_bytes=max_bytes, max_pixels=max_pixels),
                         persist=not no_persist)
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"serving {index_path} ({len(index)} crops, {index.kind}) with the {emb.describe()}")
    click.echo(f"open http://{host}:{port}/ (API docs at /docs)")
    serve_forever(app, host, port, log_level=log_level)
