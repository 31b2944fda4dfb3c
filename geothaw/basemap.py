"""Offline cartopy basemap for Alaska maps, drawn from the shipped Natural Earth clip.

cartopy's own ``coastlines()``/``NaturalEarthFeature`` download on first use; geothaw never does.
"""

from __future__ import annotations

from functools import lru_cache

from .domain import load_basemap_layer

ALASKA_EXTENT_3338 = (-2_350_000.0, 1_550_000.0, 120_000.0, 2_450_000.0)  # x0, x1, y0, y1 in metres


@lru_cache(maxsize=1)
def alaska_albers():
    """cartopy CRS equal to EPSG:3338 (Alaska Albers, NAD83)."""
    import cartopy.crs as ccrs

    return ccrs.epsg(3338)


@lru_cache(maxsize=None)
def _layer_geometries(layer: str, scale: str) -> tuple:
    """The layer's shapely geometries, kept alive for the whole process.

    cartopy caches each geometry's projected path under the geometry's identity, so handing every map the
    same objects lets it project the coastline once per process instead of once per map (the quick run's
    maps stage spent ≈ 10 of its 14 s re-projecting Natural Earth for its 12 map panels)."""
    return tuple(load_basemap_layer(layer, scale).geometry)


def add_basemap(ax, scale: str = "50m", *, land: bool = True, lakes: bool = True, borders: bool = True,
                coast_color: str = "0.25", linewidth: float = 0.5, zorder: int = 3) -> None:
    """Draw land, lakes, coastline and country borders on a cartopy ``GeoAxes`` from shipped data."""
    import cartopy.crs as ccrs
    from cartopy.feature import ShapelyFeature

    pc = ccrs.PlateCarree()
    if land:
        ax.add_feature(ShapelyFeature(_layer_geometries("land", scale), pc),
                       facecolor="0.93", edgecolor="none", zorder=0)
    if lakes:
        ax.add_feature(ShapelyFeature(_layer_geometries("lakes", scale), pc),
                       facecolor="#cfe3f3", edgecolor=coast_color, linewidth=linewidth * 0.5, zorder=zorder)
    ax.add_feature(ShapelyFeature(_layer_geometries("coastline", scale), pc),
                   facecolor="none", edgecolor=coast_color, linewidth=linewidth, zorder=zorder)
    if borders:
        ax.add_feature(ShapelyFeature(_layer_geometries("borders", scale), pc),
                       facecolor="none", edgecolor="0.45", linewidth=linewidth, linestyle="--", zorder=zorder)


def new_alaska_map(figsize=(9.0, 5.6), extent=ALASKA_EXTENT_3338):
    """A figure with one EPSG:3338 GeoAxes framed on Alaska (Aleutians included)."""
    import matplotlib.pyplot as plt

    crs = alaska_albers()
    fig = plt.figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1, projection=crs)
    ax.set_extent(extent, crs=crs)
    return fig, ax
