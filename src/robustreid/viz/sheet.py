"""Drawing the pictures: heat-map overlays, labelled grids of them, and the self-contained HTML sheet.

Every cell of a grid carries its own caption (model, version — corruption and severity — and layer are always
readable from the cell, its row title and the figure title), so a PNG cut out of a page still says what it shows.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..utils.io import atomic_write_text
from . import plots
from .layers import normalise, upsample


def overlay(image: torch.Tensor, heat: torch.Tensor, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """uint8 3×H×W crop blended with a colour-mapped H×W heat map in [0, 1] -> H×W×3 uint8."""
    plt = plots._plt()
    img = image.detach().cpu().permute(1, 2, 0).numpy().astype(np.float32)
    rgb = plt.get_cmap(cmap)(heat.detach().cpu().clamp(0, 1).numpy())[..., :3] * 255.0
    return np.clip((1 - alpha) * img + alpha * rgb, 0, 255).astype(np.uint8)


@dataclass
class Cell:
    """One picture of a grid: an H×W×3 image, its caption, and per-band values written on it (stripe scores)."""

    image: np.ndarray
    caption: str = ""
    bands: Optional[Sequence[float]] = None


@dataclass
class Row:
    title: str
    cells: List[Cell] = field(default_factory=list)


def row_overlays(images: Sequence[torch.Tensor], maps: torch.Tensor, captions: Sequence[str], *,
                 bands: bool = False) -> List[Cell]:
    """Cells of one row (the versions of one query): the maps scaled together (one maximum for the row, so a
    weaker response shows darker; stripe scores are shown as they are, in [0, 1]). Long captions wrap."""
    captions = [textwrap.fill(c, 16) for c in captions]
    h, w = images[0].shape[-2:]
    if bands:
        heat = upsample(maps[:, :, :1], (h, w))
        return [Cell(overlay(img, heat[i]), captions[i], [float(v) for v in maps[i, :, 0]])
                for i, img in enumerate(images)]
    big = upsample(maps, (h, w))
    scaled = normalise(big.reshape(1, -1)).reshape(big.shape)
    return [Cell(overlay(img, scaled[i]), captions[i]) for i, img in enumerate(images)]


def grid_figure(rows: Sequence[Row], *, title: str = "", note: str = "", cell_w: float = 1.05) -> bytes:
    """PNG (256-colour palette, a third of the size of RGB) of rows of captioned cells, row titles on the left."""
    plt = plots._plt()
    nr = len(rows)
    nc = max((len(r.cells) for r in rows), default=1)
    h0, w0 = rows[0].cells[0].image.shape[:2]
    lines = max((c.caption.count("\n") + 1 for r in rows for c in r.cells), default=1)
    img_h, gap, left, wspace = cell_w * h0 / max(w0, 1), 0.14 + 0.11 * lines, 1.6, 0.06
    top, bottom = 0.5, 0.3 if note else 0.06
    fig_w = left + cell_w * (nc + (nc - 1) * wspace) + 0.1
    fig_h = nr * img_h + (nr - 1) * gap + top + bottom
    with plt.rc_context(plots._STYLE):
        fig, axes = plt.subplots(nr, nc, figsize=(fig_w, fig_h), squeeze=False)
        for r, row in enumerate(rows):
            for c in range(nc):
                ax = axes[r][c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= len(row.cells):
                    ax.axis("off")
                    continue
                _draw_cell(ax, row.cells[c])
                if c == 0:
                    ax.set_ylabel(row.title, fontsize=7.5, rotation=0, ha="right", va="center")
        if title:
            fig.suptitle(title, x=0.01, y=1 - 0.06 / fig_h, ha="left", va="top", fontsize=11, fontweight="bold")
        if note:
            fig.text(0.01, 0.08 / fig_h, note, fontsize=7.5, color="#5b6478")
        fig.subplots_adjust(wspace=wspace, hspace=gap / img_h, top=1 - top / fig_h, bottom=bottom / fig_h,
                            left=left / fig_w, right=1 - 0.1 / fig_w)
        return palette_png(plots.fig_to_png(fig))


def palette_png(png: bytes, colours: int = 256) -> bytes:
    """The PNG re-encoded with a ``colours``-colour palette (crops and heat maps: ~3× smaller, hardly visible)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        q = im.convert("RGB").quantize(colours, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    q.save(buf, format="PNG")
    return buf.getvalue()


def _draw_cell(ax, cell: Cell) -> None:
    ax.imshow(cell.image, interpolation="nearest")
    for s in ax.spines.values():
        s.set_visible(False)
    ax.set_title(cell.caption, fontsize=7, pad=2)
    if cell.bands:
        k = len(cell.bands)
        h = cell.image.shape[0]
        for i, v in enumerate(cell.bands):
            ax.text(cell.image.shape[1] / 2, (i + 0.5) * h / k, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white", fontweight="bold")
            if i:
                ax.axhline(i * h / k - 0.5, color="white", lw=0.6)


# ------------------------------------------------------------------------------------------------------ HTML sheet
CSS = """
body { margin:0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Arial, "DejaVu Sans", sans-serif; color:#1d2433;
       background:#f6f8fb; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 30px 50px; background:#fff; min-height:100vh; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
figure { margin: 10px 0 20px; } figure img { max-width: 100%; height: auto; border: 1px solid #dde2ea; }
figcaption, .note { color: #5b6478; font-size: 13px; max-width: 980px; }
pre { background: #0f1729; color: #e6edf7; padding: 10px 12px; border-radius: 6px; white-space: pre-wrap;
      word-break: break-all; font-size: 12.5px; }
"""


def img_tag(png: bytes, alt: str, caption: str = "") -> str:
    """A figure with the PNG inline (base64), the caption already HTML."""
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{b64}">{cap}</figure>'


def write_sheet(path: Path, title: str, figures: Sequence[Tuple[str, bytes, str]], *, intro: str = "",
                command: str = "") -> Path:
    """One self-contained HTML page: ``figures`` = (heading, PNG, caption HTML); the command that made it."""
    parts = [f"<h2>{html.escape(h)}</h2>" + img_tag(png, h, cap) for h, png, cap in figures]
    cmd = f"<p>Made with:</p><pre><code>{html.escape(command)}</code></pre>" if command else ""
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
           f"<style>{CSS}</style></head><body><main><h1>{html.escape(title)}</h1>"
           f'<p class="note">generated {now} by robustreid</p>{intro}{"".join(parts)}{cmd}</main></body></html>\n')
    path = Path(path)
    atomic_write_text(path, doc)
    return path
