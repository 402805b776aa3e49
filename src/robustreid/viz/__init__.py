"""robustreid.viz: plotting helpers returning PNG bytes (heat-map, grouped bars, scatter, crop grids, ranked lists)."""

from .plots import (bar_panels, crop_grid, fig_to_png, grouped_bars, heatmap, heatmap_panels, image_grid,
                    ranked_list_image, scatter_plot)

__all__ = ["bar_panels", "heatmap_panels", "crop_grid", "fig_to_png", "grouped_bars", "heatmap", "image_grid",
           "ranked_list_image", "scatter_plot"]
