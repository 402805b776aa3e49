"""robustreid.viz: plotting helpers returning PNG bytes (heat-map, grouped bars, scatter, crop grids, ranked lists)
and the pictures inside the models (``robustreid viz``, docs/viz.md): :mod:`.layers` (any module by name, hooks,
outputs as maps), :mod:`.actmap` (activation energy), :mod:`.gradcam` (Grad-CAM / Grad-CAM++ of a similarity),
:mod:`.embed` (embedding maps), :mod:`.ranks` (ranked-list records, shared with the report), :mod:`.source`
(models, queries, benchmark-seeded corrupted versions), :mod:`.figures` and :mod:`.sheet` (figures, HTML sheet)."""

from .plots import (bar_panels, crop_grid, fig_to_png, grouped_bars, heatmap, heatmap_panels, image_grid,
                    ranked_list_image, scatter_plot)

__all__ = ["bar_panels", "heatmap_panels", "crop_grid", "fig_to_png", "grouped_bars", "heatmap", "image_grid",
           "ranked_list_image", "scatter_plot"]
