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
