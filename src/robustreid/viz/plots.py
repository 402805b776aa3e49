"""Plotting helpers (matplotlib, Agg backend): every function returns PNG bytes, ready to inline or save.

- :func:`heatmap` — a labelled matrix with annotated values (corruption × severity);
- :func:`grouped_bars` — groups (families) with one bar per series (models) side by side;
- :func:`scatter_plot` — labelled points with a least-squares line;
- :func:`image_grid` / :func:`crop_grid` — a grid of uint8 crops with row/column titles;
- :func:`ranked_list_image` — a query and its top-k gallery crops, right (green) and wrong (red) framed.
"""

from __future__ import annotations

import io
from typing import List, Optional, Sequence

import numpy as np

_STYLE = {"font.size": 10, "axes.titlesize": 12, "axes.titleweight": "bold", "axes.labelsize": 10,
          "figure.dpi": 100, "savefig.dpi": 100, "axes.spines.top": False, "axes.spines.right": False}
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def fig_to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    _plt().close(fig)
    return buf.getvalue()


def heatmap(matrix, row_labels: Sequence[str], col_labels: Sequence[str], *, title: str = "",
            xlabel: str = "", ylabel: str = "", fmt: str = "{:.0f}", scale: float = 100.0, vmin: float = 0.0,
            vmax: Optional[float] = None, cmap: str = "viridis", cbar_label: str = "") -> bytes:
    """Annotated heat-map of ``matrix`` (rows × cols, NaN shown blank); values are multiplied by ``scale``."""
    plt = _plt()
    m = np.asarray(matrix, dtype=float) * scale
    vmax = vmax if vmax is not None else (np.nanmax(m) if np.isfinite(m).any() else 1.0)
    with plt.rc_context(_STYLE):
        h = max(2.2, 0.32 * len(row_labels) + 1.2)
        w = max(3.6, 0.75 * len(col_labels) + 2.6)
        fig, ax = plt.subplots(figsize=(w, h))
        im = _annotated_heat(ax, m, row_labels, col_labels, cmap, vmin, vmax, fmt, 8.5)
        if title:
            ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        cb.outline.set_visible(False)
        if cbar_label:
            cb.set_label(cbar_label)
        return fig_to_png(fig)


def _annotated_heat(ax, m, row_labels, col_labels, cmap, vmin, vmax, fmt: str, fontsize: float):
    """Draw matrix ``m`` on ``ax`` with row/column labels and each finite value written in a readable colour."""
    im = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
    ax.set_yticks(range(len(row_labels)), [str(r).replace("_", " ") for r in row_labels])
    ax.tick_params(length=0)
    for sp in ax.spines.values():
        sp.set_visible(False)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            v = m[i, j]
            if np.isfinite(v):
                rgba = im.cmap(im.norm(v))
                lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=fontsize,
                        color="black" if lum > 0.55 else "white")
    return im


def heatmap_panels(matrices: Sequence, titles: Sequence[str], row_labels: Sequence[str],
                   col_labels: Sequence[str], *, suptitle: str = "", xlabel: str = "severity", fmt: str = "{:.0f}",
                   scale: float = 100.0, vmin: float = 0.0, vmax: Optional[float] = None, cmap: str = "viridis",
                   cbar_label: str = "") -> bytes:
    """Several annotated heat-maps side by side sharing rows, colour scale and one colour bar (e.g. one panel per
    protocol). NaN cells are blank."""
    plt = _plt()
    mats = [np.asarray(m, dtype=float) * scale for m in matrices]
    finite = [m[np.isfinite(m)] for m in mats]
    allv = np.concatenate(finite) if finite and any(f.size for f in finite) else np.array([1.0])
    vmax = vmax if vmax is not None else float(allv.max())
    nrow, ncol = len(row_labels), len(col_labels)
    with plt.rc_context(_STYLE):
        # wide enough for the columns and for the panel's title (10.5 pt bold: ~0.09 in a character), so that
        # neighbouring titles do not run into each other with few columns
        pw = max(0.62 * ncol + 0.5, 1.9, 0.09 * max((len(t) for t in titles), default=0))
        if fmt == "{:.0f}" and vmax < 10:
            fmt = "{:.1f}"  # small values (a weak model) keep one decimal
        # constrained layout keeps the figure title clear of the panel titles, however few the rows
        fig, axes = plt.subplots(1, len(mats), figsize=(pw * len(mats) + 1.9, 0.3 * nrow + 1.6), squeeze=False,
                                 sharey=True, layout="constrained")
        im = None
        for k, (ax, m) in enumerate(zip(axes[0], mats)):
            im = _annotated_heat(ax, m, row_labels, col_labels, cmap, vmin, vmax, fmt, 8)
            ax.set_title(titles[k], fontsize=10.5)
            ax.set_xlabel(xlabel)
        if suptitle:
            fig.suptitle(suptitle, x=0.01, ha="left", fontsize=12, fontweight="bold")
        cb = fig.colorbar(im, ax=list(axes[0]), fraction=0.03, pad=0.015)
        cb.outline.set_visible(False)
        if cbar_label:
            cb.set_label(cbar_label)
        return fig_to_png(fig)


def bar_panels(panels: Sequence[dict], series: Sequence[str], *, suptitle: str = "", ylabel: str = "",
               scale: float = 100.0, reference: Optional[Sequence[float]] = None,
               reference_label: str = "clean") -> bytes:
    """Grouped bars in several panels side by side (e.g. one per protocol). Each panel is
    ``{"title": str, "groups": [...], "values": series × groups}``; dashed lines at ``reference[s]``."""
    plt = _plt()
    ns = len(series)
    top = 1e-9
    for p in panels:
        v = np.asarray(p["values"], dtype=float) * scale
        if np.isfinite(v).any():
            top = max(top, float(np.nanmax(v)))
    if reference is not None and np.isfinite(np.asarray(reference, dtype=float)).any():
        top = max(top, float(np.nanmax(np.asarray(reference, dtype=float))) * scale)
    afmt = "{:.0f}" if top >= 10 else "{:.1f}"
    with plt.rc_context(_STYLE):
        widths = [max(2.4, 0.55 * len(p["groups"]) * max(1, ns) ** 0.6 + 0.6) for p in panels]
        fig, axes = plt.subplots(1, len(panels), figsize=(sum(widths) + 1.8, 3.3), squeeze=False, sharey=True,
                                 gridspec_kw={"width_ratios": widths})
        for ax, p in zip(axes[0], panels):
            v = np.asarray(p["values"], dtype=float) * scale
            ng = len(p["groups"])
            width = 0.8 / max(ns, 1)
            x = np.arange(ng)
            for si, name in enumerate(series):
                col = PALETTE[si % len(PALETTE)]
                bars = ax.bar(x - 0.4 + width * (si + 0.5), np.nan_to_num(v[si]), width * 0.92, label=name,
                              color=col)
                for b, val in zip(bars, v[si]):
                    if np.isfinite(val):
                        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), afmt.format(val), ha="center",
                                va="bottom", fontsize=7.5)
                if reference is not None and np.isfinite(reference[si]):
                    ax.axhline(reference[si] * scale, color=col, ls="--", lw=1, alpha=0.8)
            ax.set_xticks(x, list(p["groups"]), fontsize=9)
            ax.set_title(p["title"], fontsize=10.5)
            ax.grid(axis="y", alpha=0.3)
            ax.set_ylim(0, top * 1.15)
        axes[0][0].set_ylabel(ylabel)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if reference is not None:
            from matplotlib.lines import Line2D

            handles.append(Line2D([], [], color="gray", ls="--"))
            labels.append(f"{reference_label} (dashed)")
        axes[0][-1].legend(handles, labels, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
        if suptitle:
            fig.suptitle(suptitle, x=0.01, ha="left", fontsize=12, fontweight="bold")
        fig.tight_layout()
        return fig_to_png(fig)


def grouped_bars(groups: Sequence[str], series: Sequence[str], values, *, title: str = "", ylabel: str = "",
                 scale: float = 100.0, reference: Optional[Sequence[float]] = None,
                 reference_label: str = "clean", annotate: bool = True) -> bytes:
    """Bars: one group per ``groups`` entry, one bar per ``series`` (values: series × groups); optional dashed
    line per series at ``reference[s]`` (e.g. the clean mAP)."""
    plt = _plt()
    v = np.asarray(values, dtype=float) * scale
    ns, ng = len(series), len(groups)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * ng * max(1, ns) ** 0.5 + 2), 3.4))
        width = 0.8 / max(ns, 1)
        x = np.arange(ng)
        for si, name in enumerate(series):
            pos = x - 0.4 + width * (si + 0.5)
            col = PALETTE[si % len(PALETTE)]
            bars = ax.bar(pos, np.nan_to_num(v[si]), width * 0.92, label=name, color=col)
            if annotate:
                for b, val in zip(bars, v[si]):
                    if np.isfinite(val):
                        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{val:.0f}", ha="center",
                                va="bottom", fontsize=8)
            if reference is not None and np.isfinite(reference[si]):
                ax.axhline(reference[si] * scale, color=col, ls="--", lw=1, alpha=0.8)
        ax.set_xticks(x, list(groups))
        ax.set_ylabel(ylabel)
        top = np.nanmax(v) if np.isfinite(v).any() else 1
        if reference is not None:
            top = max(top, np.nanmax(np.asarray(reference, dtype=float) * scale))
        ax.set_ylim(0, top * 1.15 + 1e-9)
        if title:
            ax.set_title(title, loc="left")
        if ns > 1 or reference is not None:
            handles, labels = ax.get_legend_handles_labels()
            if reference is not None:
                from matplotlib.lines import Line2D

                handles.append(Line2D([], [], color="gray", ls="--"))
                labels.append(f"{reference_label} (dashed)")
            ax.legend(handles, labels, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
        ax.grid(axis="y", alpha=0.3)
        return fig_to_png(fig)


def scatter_plot(x: Sequence[float], y: Sequence[float], labels: Sequence[str], *, xlabel: str = "",
                 ylabel: str = "", title: str = "") -> bytes:
    plt = _plt()
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.2, 4.4))
        ax.scatter(x, y, s=40, color=PALETTE[0], zorder=3)
        for xi, yi, lab in zip(x, y, labels):
            ax.annotate(str(lab), (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if len(x) >= 2 and np.ptp(x) > 0:
            a, b = np.polyfit(x, y, 1)
            xs = np.linspace(x.min(), x.max(), 10)
            ax.plot(xs, a * xs + b, color="gray", ls="--", lw=1, label="least squares")
            ax.legend(frameon=False, fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        return fig_to_png(fig)


def _to_hwc(img) -> np.ndarray:
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = a.transpose(1, 2, 0)
    return a.astype(np.uint8)


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """``img`` (H×W×3 uint8) resized to fit h×w with its aspect kept (bilinear), centred on white."""
    from PIL import Image

    ih, iw = img.shape[:2]
    s = min(h / max(ih, 1), w / max(iw, 1))
    nh, nw = max(1, round(ih * s)), max(1, round(iw * s))
    small = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    out = np.full((h, w, 3), 255, np.uint8)
    t, l_ = (h - nh) // 2, (w - nw) // 2
    out[t:t + nh, l_:l_ + nw] = small
    return out


def _hex_rgb(colour: str) -> np.ndarray:
    from matplotlib.colors import to_rgb

    return np.round(np.asarray(to_rgb(colour)) * 255).astype(np.uint8)


def grid_canvas(rows: Sequence[Sequence], frames: Optional[Sequence[Sequence[Optional[str]]]] = None, *,
                cell: Sequence[int] = (128, 64), gap: Sequence[int] = (14, 8), frame_px: int = 3) -> np.ndarray:
    """The crops of ``rows`` laid out on one white uint8 canvas: every crop fitted into a ``cell`` (h, w) pixels,
    ``gap`` (rows, columns) pixels apart, framed ``frame_px`` pixels wide in ``frames[r][c]`` when given (None
    leaves a cell empty)."""
    (ch, cw), (gy, gx) = cell, gap
    nr, nc = len(rows), max((len(r) for r in rows), default=1)
    canvas = np.full((nr * ch + (nr - 1) * gy, nc * cw + (nc - 1) * gx, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            if img is None:
                continue
            y, x = r * (ch + gy), c * (cw + gx)
            canvas[y:y + ch, x:x + cw] = _fit(_to_hwc(img), ch, cw)
            col = frames[r][c] if frames is not None and c < len(frames[r]) else None
            if col:
                rgb, f = _hex_rgb(col), frame_px
                canvas[y:y + f, x:x + cw] = rgb
                canvas[y + ch - f:y + ch, x:x + cw] = rgb
                canvas[y:y + ch, x:x + f] = rgb
                canvas[y:y + ch, x + cw - f:x + cw] = rgb
    return canvas


def image_grid(rows: Sequence[Sequence], *, row_titles: Sequence[str] = (), col_titles: Sequence[str] = (),
               title: str = "", cell_height: float = 1.25, frames: Optional[Sequence[Sequence[Optional[str]]]] = None,
               fontsize: float = 8) -> bytes:
    """A grid of crops (uint8 3×H×W tensors or H×W×3 arrays; None leaves a cell empty) with titles;
    ``frames[r][c]`` a colour to frame a cell with. The crops are composed into one image (:func:`grid_canvas`)
    and drawn once: one matplotlib axes per crop made a report's ranked lists its slowest figure."""
    plt = _plt()
    ppi = _STYLE["savefig.dpi"]  # one canvas pixel per output pixel: no resampling when saved
    ch = round(cell_height * ppi)
    (cw, gy, gx) = (ch // 2, ch // 9, ch // 16)
    canvas = grid_canvas(rows, frames, cell=(ch, cw), gap=(gy, gx))
    with plt.rc_context(_STYLE):
        fig = plt.figure(figsize=(canvas.shape[1] / ppi, canvas.shape[0] / ppi))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(canvas, interpolation="none")
        ax.set_axis_off()
        for c, t in enumerate(col_titles[:max((len(r) for r in rows), default=0)]):
            ax.text(c * (cw + gx) + cw / 2, -4, str(t).replace("_", " "), ha="center", va="bottom",
                    fontsize=fontsize)
        labels = [ax.text(-6, r * (ch + gy) + ch / 2, str(t), ha="right", va="center", fontsize=fontsize)
                  for r, t in enumerate(row_titles[:len(rows)])]
        if title:  # above the column titles, from the left edge of the row titles (1 data unit = 1 pixel)
            renderer = fig.canvas.get_renderer()
            left = max((t.get_window_extent(renderer).width for t in labels), default=-6) + 6
            above = (fontsize + 6) * ppi / 72 if col_titles else 0
            ax.text(-left, -10 - above, title, ha="left", va="bottom", fontsize=11, fontweight="bold")
        return fig_to_png(fig)


def crop_grid(crops: Sequence, names: Sequence[str], *, per_row: int = 10, title: str = "",
              captions: Optional[Sequence[str]] = None, cell_height: float = 1.5, fontsize: float = 7.5) -> bytes:
    """Crops with one caption each above it, wrapped ``per_row`` per row (e.g. one query under every corruption);
    composed into one image like :func:`image_grid` (a caption longer than 12 characters breaks at its first
    space)."""
    plt = _plt()
    ppi = _STYLE["savefig.dpi"]
    ch = round(cell_height * ppi)
    cw, gx = ch // 2, ch // 12
    line = fontsize * 1.2 * ppi / 72  # pixels per caption line
    gy = round(2 * line + 8)  # room for a two-line caption above every row but the first
    cells = list(crops)
    rows = [cells[k:k + per_row] for k in range(0, len(cells), per_row)] or [[None]]
    canvas = grid_canvas(rows, cell=(ch, cw), gap=(gy, gx))
    with plt.rc_context(_STYLE):
        fig = plt.figure(figsize=(canvas.shape[1] / ppi, canvas.shape[0] / ppi))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(canvas, interpolation="none")
        ax.set_axis_off()
        for k in range(len(cells)):
            cap = str(captions[k] if captions else names[k]).replace("_", " ")
            if len(cap) > 12 and " " in cap:
                cap = cap.replace(" ", "\n", 1)
            r, c = divmod(k, per_row)
            ax.text(c * (cw + gx) + cw / 2, r * (ch + gy) - 4, cap, ha="center", va="bottom", fontsize=fontsize,
                    linespacing=1.0)
        if title:  # above the first row's captions (1 data unit = 1 pixel)
            ax.text(0, -gy - 4, title, ha="left", va="bottom", fontsize=11, fontweight="bold")
        return fig_to_png(fig)


def ranked_list_image(lists: Sequence[dict], *, title: str = "", k: int = 10) -> bytes:
    """Rows of ranked lists: each ``{"label": str, "query": img, "gallery": [img...], "match": [bool...]}``; the
    query is framed blue, matches green, non-matches red (rank numbers above each crop)."""
    rows: List[List] = []
    frames: List[List[Optional[str]]] = []
    titles: List[str] = []
    for it in lists:
        g = list(it["gallery"])[:k]
        rows.append([it["query"], None] + g)
        frames.append(["#1f5fbf", None] + ["#1a9e3a" if m else "#d62728" for m in list(it["match"])[:k]])
        titles.append(it.get("label", ""))
    cols = ["query", ""] + [str(i + 1) for i in range(k)]
    return image_grid(rows, row_titles=titles, col_titles=cols, title=title, frames=frames, cell_height=1.35)
