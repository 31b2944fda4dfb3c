"""Cartopy maps in Alaska Albers (EPSG:3338) on the offline basemap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .basemap import add_basemap, new_alaska_map
from .domain import Domain
from .io.atomic import atomic_path

SOURCE_LINE = "geothaw · basemap: Natural Earth (public domain)"


def save_figure(fig, path: str | Path, dpi: int = 130) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


def add_source_line(ax, extra: str = "") -> None:
    """Small provenance line under the map frame."""
    text = SOURCE_LINE + " · projection EPSG:3338" + (f" · {extra}" if extra else "")
    ax.annotate(text, xy=(0.0, -0.015), xycoords="axes fraction", va="top", fontsize=7, color="0.4")


def plot_domain(domain: Domain, path: str | Path) -> Path:
    """Map of the model domain: land cells coloured by latitude band."""
    import cartopy.crs as ccrs
    from matplotlib.colors import BoundaryNorm, ListedColormap
    import matplotlib.pyplot as plt

    land = domain.land_mask().values
    bands = np.where(land, domain.bands().values, np.nan)
    fig, ax = new_alaska_map()
    add_basemap(ax)
    cmap = ListedColormap(plt.get_cmap("viridis")(np.linspace(0.1, 0.9, domain.n_bands)))
    norm = BoundaryNorm(np.arange(domain.n_bands + 1) - 0.5, domain.n_bands)
    mesh = ax.pcolormesh(domain.longitude, domain.latitude, bands, transform=ccrs.PlateCarree(), cmap=cmap,
                         norm=norm, shading="nearest", zorder=1, rasterized=True)
    cbar = fig.colorbar(mesh, ax=ax, shrink=0.7, ticks=range(domain.n_bands))
    cbar.ax.set_yticklabels(domain.band_labels())
    cbar.set_label("latitude band")
    ax.set_title(f"geothaw domain: {int(land.sum()):,} land cells at {domain.resolution}° (ERA5-Land grid)")
    add_source_line(ax)
    return save_figure(fig, path)
