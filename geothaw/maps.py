"""Cartopy maps in Alaska Albers (EPSG:3338) on the offline basemap."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .basemap import add_basemap, new_alaska_map
from .domain import Domain
from .features import DEPTH_LABELS
from .scenarios import scenario_label
from .io.atomic import atomic_path

if TYPE_CHECKING:
    import xarray as xr

SOURCE_LINE = "geothaw · basemap: Natural Earth (public domain)"


def save_figure(fig, path: str | Path, dpi: int = 130) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return Path(path)


SOURCE_LINE_CHARS = 100  # about the map frame's width at 7 pt: longer lines ran under the colour bar


def source_lines(extra: str = "", width: int = SOURCE_LINE_CHARS) -> str:
    """The provenance text, broken between its " · " parts into lines of at most ``width`` characters."""
    parts = [*SOURCE_LINE.split(" · "), "projection EPSG:3338", *(extra.split(" · ") if extra else [])]
    lines = [parts[0]]
    for part in parts[1:]:
        if len(lines[-1]) + 3 + len(part) <= width:
            lines[-1] += " · " + part
        else:
            lines.append(part)
    return "\n".join(lines)


def add_source_line(ax, extra: str = "") -> None:
    """Small provenance lines under the map frame, kept to its width."""
    ax.annotate(source_lines(extra), xy=(0.0, -0.015), xycoords="axes fraction", va="top", fontsize=7, color="0.4")


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


# ---- product maps --------------------------------------------------------------------------------------------


def _mesh(ax, da, **kwargs):
    import cartopy.crs as ccrs

    return ax.pcolormesh(da["longitude"].values, da["latitude"].values, da.values, transform=ccrs.PlateCarree(),
                         shading="nearest", zorder=1, rasterized=True, **kwargs)


def plot_exceedance(era_magt, path: str | Path, *, title: str, source: str = "") -> Path:
    """Map of where the era-mean MAGT exceeds 0 °C (red) vs stays frozen (blue) at one depth."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig, ax = new_alaska_map()
    add_basemap(ax)
    state = xr_where_state(era_magt)
    _mesh(ax, state, cmap=ListedColormap(["#4a7fb5", "#d7301f"]), vmin=-0.5, vmax=1.5)
    ax.legend(handles=[Patch(color="#d7301f", label="MAGT > 0 °C"), Patch(color="#4a7fb5", label="MAGT ≤ 0 °C")],
              loc="lower left", fontsize=8, framealpha=0.9)
    ax.set_title(title, fontsize=11)
    add_source_line(ax, source)
    return save_figure(fig, path)


def xr_where_state(magt):
    """1 where MAGT > 0, 0 where ≤ 0, NaN where no data."""
    return (magt > 0).astype("float32").where(magt.notnull())


def plot_magt(magt, path: str | Path, *, title: str, source: str = "", vmax: float = 8.0) -> Path:
    """MAGT map with a diverging colormap centred on 0 °C."""
    from matplotlib.colors import TwoSlopeNorm

    fig, ax = new_alaska_map()
    add_basemap(ax)
    mesh = _mesh(ax, magt, cmap="RdBu_r", norm=TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax))
    cbar = fig.colorbar(mesh, ax=ax, shrink=0.75, extend="both")
    cbar.set_label("mean annual ground temperature (°C)")
    ax.set_title(title, fontsize=11)
    add_source_line(ax, source)
    return save_figure(fig, path)


def plot_first_exceedance(first_year, path: str | Path, *, title: str, source: str = "") -> Path:
    """Map of the first year after which the 10-year running MAGT stays above 0 °C (grey: never / already)."""
    import numpy as np

    fig, ax = new_alaska_map()
    add_basemap(ax)
    valid = first_year.notnull()
    years = first_year.values[np.isfinite(first_year.values)]
    vmin, vmax = (float(years.min()), float(years.max())) if years.size else (2000.0, 2100.0)
    mesh = _mesh(ax, first_year, cmap="plasma_r", vmin=vmin, vmax=max(vmax, vmin + 1))
    cbar = fig.colorbar(mesh, ax=ax, shrink=0.75)
    cbar.set_label("first year with lasting MAGT > 0 °C\n(10-year running mean)")
    ax.set_title(title + f"  ({int(valid.sum()):,} cells cross 0 °C)", fontsize=11)
    add_source_line(ax, " · ".join(filter(None, [source, "uncoloured land: no lasting exceedance"])))
    return save_figure(fig, path)


def land_share_above_zero(eras: xr.Dataset, depth_index: int) -> dict[str, float]:
    """Per era, the share of the land area (not of the grid cells) with era-mean MAGT > 0 °C at one depth: the
    ``fraction`` column of ``area_above_0C.csv``, from the same function (EPSG:3338 cell areas; northern cells,
    the colder ones, are the smaller)."""
    from .products import area_exceeding_zero

    lat = eras["latitude"].values
    resolution = float(abs(lat[1] - lat[0])) if lat.size > 1 else 0.1
    table = area_exceeding_zero(eras, resolution, scenario="")
    rows = table[table["depth_m"] == float(eras["depth"].values[depth_index])]
    return {era: 0.0 if np.isnan(f) else float(f) for era, f in zip(rows["era"], rows["fraction"])}


def plot_overview(eras_by_scenario: dict, path: str | Path, *, depth_index: int = 2, source: str = "") -> Path:
    """Multi-panel overview: rows = scenarios, columns = eras; cells above 0 °C at one depth."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from .basemap import ALASKA_EXTENT_3338, alaska_albers

    scenarios = list(eras_by_scenario)
    eras = list(next(iter(eras_by_scenario.values()))["era"].values)
    crs = alaska_albers()
    fig, axes = plt.subplots(len(scenarios), len(eras), figsize=(3.3 * len(eras), 2.25 * len(scenarios) + 0.9),
                             subplot_kw={"projection": crs}, squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.86, bottom=0.1, wspace=0.04, hspace=0.3)
    cmap = ListedColormap(["#4a7fb5", "#d7301f"])
    for i, scen in enumerate(scenarios):
        shares = land_share_above_zero(eras_by_scenario[scen], depth_index)
        for j, era in enumerate(eras):
            ax = axes[i, j]
            ax.set_extent(ALASKA_EXTENT_3338, crs=crs)
            add_basemap(ax, linewidth=0.3)
            magt = eras_by_scenario[scen]["magt"].sel(era=era).isel(depth=depth_index)
            _mesh(ax, xr_where_state(magt), cmap=cmap, vmin=-0.5, vmax=1.5)
            ax.set_title(f"{scenario_label(scen)} · {era}\n{100 * shares[str(era)]:.0f}% of land > 0 °C",
                         fontsize=8)
    fig.suptitle(f"Ground projected above 0 °C (era-mean MAGT, {DEPTH_LABELS[depth_index]})", fontsize=12, y=0.98)
    fig.legend(handles=[Patch(color="#d7301f", label="MAGT > 0 °C"), Patch(color="#4a7fb5", label="MAGT ≤ 0 °C")],
               loc="lower right", ncol=2, fontsize=9, bbox_to_anchor=(0.99, 0.0))
    fig.text(0.01, 0.02, source_lines(source, width=200), fontsize=6, color="0.4")  # the whole figure's width
    return save_figure(fig, path)
