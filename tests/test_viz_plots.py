"""The plotting helpers' layout: a figure title never sits on the panel titles, whatever the number of rows."""

import matplotlib
import numpy as np
import pytest

from robustreid.viz import plots

matplotlib.use("Agg")


def _overlaps(fig, title: str) -> list:
    """For each titled axes of ``fig``: whether its title's box overlaps the box of the figure text ``title``."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    (sup,) = [t for t in fig.texts if t.get_text() == title]
    box = sup.get_window_extent(r)
    return [ax.title.get_window_extent(r).overlaps(box) for ax in fig.axes if ax.get_title()]


@pytest.fixture
def figures(monkeypatch):
    """The figures the helpers build, kept open instead of turned into PNG bytes."""
    figs = []
    monkeypatch.setattr(plots, "fig_to_png", lambda fig: figs.append(fig) or b"")
    yield figs
    for f in figs:
        plots._plt().close(f)


@pytest.mark.parametrize("rows", [1, 4, 10])
def test_heatmap_panels_title_is_clear_of_the_panel_titles(figures, rows):
    # the report draws one such figure per model: 4 rows for the occlusion family, up to 20 for the full sweep
    title = "bot_lite0_igo on occluded_duke — clean mAP 11.6%"
    m = np.linspace(0, 0.12, rows * 2).reshape(rows, 2)
    plots.heatmap_panels([m, m, m], ["query corrupted", "gallery corrupted", "query + gallery corrupted"],
                         [f"occlusion pedestrian {i}" for i in range(rows)], ["1", "3"], suptitle=title,
                         cbar_label="mAP %", vmax=12)  # as the report calls it
    overlaps = _overlaps(figures[-1], title)
    assert len(overlaps) == 3 and not any(overlaps)
    fig = figures[-1]
    r = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(r) for ax in fig.axes if ax.get_title()]
    assert min(b.x0 - a.x1 for a, b in zip(boxes, boxes[1:])) > 5  # neighbouring panel titles stay apart (px)


def test_bar_panels_title_is_clear_of_the_panel_titles(figures):
    title = "Mean mAP per corruption family (sweep cells)"
    panels = [{"title": t, "groups": ["occlusion"], "values": [[0.1], [0.2]]} for t in ("query", "gallery", "both")]
    plots.bar_panels(panels, ["a", "b"], suptitle=title, reference=[0.3, 0.4])
    overlaps = _overlaps(figures[-1], title)
    assert len(overlaps) == 3 and not any(overlaps)


def test_grid_canvas_places_fits_and_frames_each_crop():
    red = np.zeros((3, 20, 10), np.uint8)
    red[0] = 200  # a 3×H×W tensor-like crop
    blue = np.zeros((40, 10, 3), np.uint8)
    blue[..., 2] = 150  # H×W×3, taller than the cell's aspect: fitted, centred on white
    canvas = plots.grid_canvas([[red, None], [blue, red]], [[None, None], ["#00ff00", "#1f5fbf"]],
                               cell=(20, 10), gap=(4, 2), frame_px=2)
    assert canvas.shape == (2 * 20 + 4, 2 * 10 + 2, 3) and canvas.dtype == np.uint8
    assert (canvas[:20, :10] == [200, 0, 0]).all()  # exactly the cell's size: unchanged, no frame
    assert (canvas[:20, 12:] == 255).all() and (canvas[20:24] == 255).all()  # the empty cell and the gap
    b = canvas[24:44, :10]
    assert (b[:2] == [0, 255, 0]).all() and (b[:, :2] == [0, 255, 0]).all()  # the frame, 2 px
    assert (b[10, 2:7] == [0, 0, 150]).all()  # the crop, 20×5 after fitting, from column (10 - 5) // 2
    assert (b[10, 7] == 255).all()  # white beside the narrower crop, inside the frame
    assert (canvas[24:44, 12:][-1] == [0x1F, 0x5F, 0xBF]).all()


def _boxes(img: np.ndarray, colours) -> list:
    """(top, left, bottom, right) of the pixels of each exact colour in an RGB image."""
    out = []
    for col in colours:
        ys, xs = np.nonzero((img == col).all(axis=-1))
        out.append((ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
    return out


def test_crop_grid_wraps_rows_and_captions_each_crop_above_it():
    from io import BytesIO

    from PIL import Image

    colours = [(200, 30, 30), (30, 160, 30), (40, 40, 210)]
    crops = [np.tile(np.array(c, np.uint8), (128, 64, 1)) for c in colours]  # the cell's 2:1 aspect: no margins
    png = plots.crop_grid(crops, ["gaussian_noise", "fog", "clean"], per_row=2, title="One query")
    img = np.asarray(Image.open(BytesIO(png)).convert("RGB"))
    (t0, l0, b0, r0), (t1, l1, b1, r1), (t2, l2, b2, r2) = _boxes(img, colours)
    ch = round(1.5 * plots._STYLE["savefig.dpi"])
    assert (b0 - t0, r0 - l0) == (ch, ch // 2) == (b2 - t2, r2 - l2)  # each crop fills its cell, unresampled
    assert t1 == t0 and l1 > r0  # 2 per row: the second crop beside the first
    assert l2 == l0 and t2 > b0  # the third wraps to a second row, under the first
    gap = img[b0:t2, l0:r0]
    assert (gap < 128).all(axis=-1).any()  # the third crop's caption (dark text) between the rows
    above = img[:t0, l1:r1]
    assert (above < 128).all(axis=-1).any()  # the second crop's caption above the first row
    assert not (img[b2:, :] < 128).all(axis=-1).any()  # captions above their crops: nothing dark below the last row
