"""Thumbnails (JPEG data URIs) and the HTML sheet of ``robustreid search --html``: each query next to its ranked
gallery with scores; when a query's file name carries a person id (Market style), matches of that id are framed
green and others red. One self-contained file (images inline)."""

from __future__ import annotations

import base64
import html
import io
import os
from functools import lru_cache
from typing import Any, Dict, Optional, Sequence


@lru_cache(maxsize=8192)
def thumbnail(path: str, height: int = 128) -> Optional[str]:
    """A small JPEG of an image file as a data URI (None if the file cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            w = max(1, round(img.width * height / max(img.height, 1)))
            img = img.resize((w, height), Image.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=80)
    except Exception:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _pid_of(path: str) -> Optional[int]:
    from .gallery import _MARKET_NAME

    m = _MARKET_NAME.match(os.path.basename(path))
    return int(m.group(1)) if m else None


def _cell(src: Optional[str], caption: str, border: str, title: str) -> str:
    img = f'<img src="{src}" alt="">' if src else '<div class="missing">?</div>'
    return (f'<figure style="border-color:{border}" title="{html.escape(title)}">{img}'
            f"<figcaption>{caption}</figcaption></figure>")


def search_sheet(queries: Sequence[str], results: Sequence[Sequence[Dict[str, Any]]], *, title: str,
                 note: str = "") -> str:
    """HTML of the ranked lists: ``queries`` are file paths, ``results`` per query the rows of
    :meth:`robustreid.serve.Gallery.search`."""
    rows = []
    for q, matches in zip(queries, results):
        qpid = _pid_of(q)
        cells = [_cell(thumbnail(q), f"<b>query</b><br>{html.escape(os.path.basename(q))}", "#23395d", q)]
        for m in matches:
            border = "#bbb" if qpid is None or m["pid"] < 0 else ("#1a9850" if m["pid"] == qpid else "#d73027")
            cap = f"#{m['rank']} {m['score']:.3f}<br>id {m['pid']} cam {m['camid'] + 1 if m['camid'] >= 0 else '?'}"
            cells.append(_cell(thumbnail(m["path"]) if m["path"] else None, cap, border, m["path"]))
        rows.append(f'<div class="row">{"".join(cells)}</div>')
    style = ("body{font:13px system-ui,sans-serif;margin:16px}.row{display:flex;gap:6px;margin:8px 0}"
             "figure{margin:0;border:3px solid;border-radius:4px;padding:2px;text-align:center;width:72px}"
             "figure img{height:128px;max-width:68px;object-fit:contain}.missing{height:128px;line-height:128px}"
             "figcaption{font-size:11px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(note)}</p>"
            f"{''.join(rows)}</body></html>")
