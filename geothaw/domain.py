"""The ERA5-Land 0.1° Alaska grid as a first-class object.

Longitudes are kept on one continuous axis in degrees east (0–360 convention, e.g. 172.0 … 231.0), so
the western Aleutians (172–180 E) and mainland Alaska (e.g. 147.7 W = 212.3 E) sit side by side and no
cell is ever dropped or split at the antimeridian. Latitudes are descending (north first), as in
ERA5-Land files and north-up rasters. Cell centres are exact multiples of the resolution, as in
ERA5-Land (its 0.1° grid has centres at 0.0, 0.1, … in both axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files

import numpy as np
import xarray as xr

from .errors import ConfigError

EPSG_NATIVE = 4326
EPSG_ALASKA_ALBERS = 3338
DEFAULT_BAND_EDGES = (51.0, 56.0, 60.0, 64.0, 68.0, 72.0)
NATURAL_EARTH_GPKG = "naturalearth_alaska.gpkg"


def wrap_longitude(lon: np.ndarray | float, lon_min: float = 0.0) -> np.ndarray:
    """Map longitudes (any convention) onto ``[lon_min, lon_min + 360)``."""
    return (np.asarray(lon, dtype="float64") - lon_min) % 360.0 + lon_min


def to_pm180(lon: np.ndarray | float) -> np.ndarray:
    """Longitudes in −180…180 (what EPSG:4326 tools and PROJ expect)."""
    return (np.asarray(lon, dtype="float64") + 180.0) % 360.0 - 180.0


def shipped_data_path(name: str):
    """Path of a file shipped in ``geothaw/data`` (works for installed and editable installs)."""
    return files("geothaw") / "data" / name


@dataclass(frozen=True)
class Domain:
    """A regular lat/lon grid with ERA5-Land cell centres, a land mask and latitude bands.

    ``lon_min``/``lon_max`` are centres of the first/last column in degrees east; ``lon_max`` may exceed
    180 so that the grid can run continuously across the antimeridian.
    """

    lat_min: float = 51.0
    lat_max: float = 72.0
    lon_min: float = 172.0
    lon_max: float = 231.0
    resolution: float = 0.1
    band_edges: tuple[float, ...] = DEFAULT_BAND_EDGES
    clip_to_alaska: bool = False
    _cache: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.lat_max <= self.lat_min:
            raise ConfigError(f"domain.lat_max ({self.lat_max}) must exceed domain.lat_min ({self.lat_min})")
        if not -90 <= self.lat_min <= 90 or not -90 <= self.lat_max <= 90:
            raise ConfigError("domain latitudes must lie in [-90, 90]")
        if self.lon_max <= self.lon_min or self.lon_max - self.lon_min >= 360:
            raise ConfigError(
                f"domain.lon_max ({self.lon_max}) must exceed domain.lon_min ({self.lon_min}) by less than 360; "
                "use degrees east beyond 180 to cross the antimeridian (e.g. 172 → 231)"
            )
        if self.resolution <= 0:
            raise ConfigError("domain.resolution must be positive")
        edges = np.asarray(self.band_edges, dtype=float)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ConfigError("domain.band_edges must be at least two strictly increasing latitudes")

    # ---- axes ---------------------------------------------------------------------------------------
    def _axis(self, start: float, stop: float) -> np.ndarray:
        n = int(round((stop - start) / self.resolution)) + 1
        # Rounding keeps centres bit-identical to values parsed from files (e.g. 64.8, not 64.80000000000001).
        decimals = max(0, int(np.ceil(-np.log10(self.resolution))) + 2)
        return np.round(start + self.resolution * np.arange(n), decimals)

    @cached_property
    def latitude(self) -> np.ndarray:
        """Cell-centre latitudes, descending (north first)."""
        return self._axis(self.lat_min, self.lat_max)[::-1].copy()

    @cached_property
    def longitude(self) -> np.ndarray:
        """Cell-centre longitudes on a continuous axis in degrees east (may exceed 180)."""
        return self._axis(self.lon_min, self.lon_max)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.latitude.size, self.longitude.size)

    @property
    def n_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def transform(self):
        """Affine transform (EPSG:4326, continuous longitudes) of the north-up grid."""
        from affine import Affine

        r = self.resolution
        return Affine(r, 0.0, self.lon_min - r / 2, 0.0, -r, self.lat_max + r / 2)

    def coords(self) -> dict[str, xr.DataArray]:
        lat = xr.DataArray(
            self.latitude, dims="latitude",
            attrs={"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"},
        )
        lon = xr.DataArray(
            self.longitude, dims="longitude",
            attrs={"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
        )
        return {"latitude": lat, "longitude": lon}

    def template(self, name: str = "data", fill: float = np.nan, dtype: str = "float32") -> xr.DataArray:
        """An empty (latitude, longitude) DataArray on this grid."""
        return xr.DataArray(np.full(self.shape, fill, dtype=dtype), coords=self.coords(), dims=("latitude", "longitude"), name=name)

    def coarsen(self, factor: int) -> "Domain":
        """The same extent on a grid ``factor`` times coarser (cell centres stay on ERA5-Land's grid)."""
        if factor < 1:
            raise ConfigError("coarsening factor must be >= 1")
        return Domain(self.lat_min, self.lat_max, self.lon_min, self.lon_max, round(self.resolution * factor, 6),
                      self.band_edges, self.clip_to_alaska)

    # ---- CRS ----------------------------------------------------------------------------------------
    def to_albers(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project longitudes (any convention) and latitudes to Alaska Albers (EPSG:3338), metres."""
        return albers_transformer().transform(to_pm180(lon), np.asarray(lat, dtype="float64"))

    def cell_area_km2(self) -> xr.DataArray:
        """Area of each cell (km²) measured in Alaska Albers (EPSG:3338, equal-area on the GRS80 ellipsoid)."""
        out = self.template("cell_area", dtype="float64")
        out[:] = cell_area_albers_km2(self.latitude, self.longitude, self.resolution)
        out.attrs["units"] = "km2"
        return out

    # ---- latitude bands -----------------------------------------------------------------------------
    @property
    def n_bands(self) -> int:
        return len(self.band_edges) - 1

    def band_index(self, lat: np.ndarray | float) -> np.ndarray:
        """Latitude-band index 0…n_bands−1 (values outside the edges are clamped to the end bands)."""
        edges = np.asarray(self.band_edges, dtype=float)
        idx = np.searchsorted(edges, np.asarray(lat, dtype=float), side="right") - 1
        return np.clip(idx, 0, self.n_bands - 1).astype("int64")

    def band_labels(self) -> list[str]:
        e = self.band_edges
        return [f"{e[i]:g}–{e[i + 1]:g}N" for i in range(self.n_bands)]

    def bands(self) -> xr.DataArray:
        out = self.template("band", dtype="int64", fill=0)
        out[:] = self.band_index(self.latitude)[:, None]
        out.attrs = {"long_name": "latitude band index", "band_edges": list(self.band_edges)}
        return out

    # ---- land mask ----------------------------------------------------------------------------------
    def land_fraction(self, scale: str = "10m", supersample: int = 5) -> xr.DataArray:
        """Fraction of each cell covered by Natural Earth land (minus large lakes), from shipped data.

        Rasterises on a grid ``supersample`` times finer and averages, like ERA5-Land's fractional ``lsm``.
        """
        key = ("land_fraction", scale, supersample, self.clip_to_alaska)
        if key in self._cache:
            return self._cache[key].copy()
        from rasterio.features import rasterize
        from affine import Affine

        land = load_basemap_layer("land", scale, continuous_lon=True)
        lakes = load_basemap_layer("lakes", scale, continuous_lon=True)
        ny, nx = self.shape
        s = supersample
        fine = self.transform @ Affine.scale(1.0 / s)
        shape = (ny * s, nx * s)
        grid = rasterize(((g, 1) for g in land.geometry), out_shape=shape, transform=fine, dtype="uint8")
        if len(lakes):
            lake_px = rasterize(((g, 1) for g in lakes.geometry), out_shape=shape, transform=fine, dtype="uint8")
            grid[lake_px == 1] = 0
        if self.clip_to_alaska:
            ak = alaska_boundary(scale, continuous_lon=True)
            inside = rasterize(((g, 1) for g in ak.geometry), out_shape=shape, transform=fine, dtype="uint8")
            grid &= inside
        frac = grid.reshape(ny, s, nx, s).mean(axis=(1, 3))
        out = self.template("lsm", dtype="float32")
        out[:] = frac
        out.attrs = {"long_name": "land-sea mask (fraction of cell that is land)", "units": "1",
                     "source": f"Natural Earth {scale} land minus lakes" + (", clipped to Alaska" if self.clip_to_alaska else "")}
        self._cache[key] = out
        return out.copy()

    def land_mask(self, threshold: float = 0.5, scale: str = "10m") -> xr.DataArray:
        """Boolean land mask: cells at least ``threshold`` land, as ERA5-Land keeps cells with lsm ≥ 0.5."""
        frac = self.land_fraction(scale=scale)
        mask = frac >= threshold
        mask.name = "land"
        mask.attrs = {"long_name": "land mask", "threshold": threshold}
        return mask

    def contains(self, lon: float, lat: float) -> bool:
        lon = float(wrap_longitude(lon, self.lon_min - self.resolution / 2))
        h = self.resolution / 2
        return (self.lat_min - h <= lat <= self.lat_max + h) and (self.lon_min - h <= lon <= self.lon_max + h)

    def nearest_cell(self, lon: float, lat: float) -> tuple[int, int]:
        """(row, column) of the cell whose centre is nearest (lon in any convention)."""
        if not self.contains(lon, lat):
            raise ValueError(f"point ({lon}, {lat}) lies outside the domain")
        lon = float(wrap_longitude(lon, self.lon_min - self.resolution / 2))
        return int(np.argmin(np.abs(self.latitude - lat))), int(np.argmin(np.abs(self.longitude - lon)))

    @classmethod
    def from_config(cls, cfg) -> "Domain":
        return cls(cfg.lat_min, cfg.lat_max, cfg.lon_min, cfg.lon_max, cfg.resolution, tuple(cfg.band_edges), cfg.clip_to_alaska)


@cache
def albers_transformer():
    """EPSG:4326 → EPSG:3338 (lon, lat order), built once: building one costs ~50 ms, and the raster writer needs
    it for every file. pyproj transformers are thread-safe (pyproj ≥ 3.1)."""
    from pyproj import Transformer

    return Transformer.from_crs(EPSG_NATIVE, EPSG_ALASKA_ALBERS, always_xy=True)


def cell_area_albers_km2(latitude: np.ndarray, longitude: np.ndarray, resolution: float) -> np.ndarray:
    """Area (km²) of lat/lon cells from their outlines projected to Alaska Albers (EPSG:3338).

    An equal-area projection makes the area independent of longitude, so one column is projected and broadcast.
    Each edge is sampled at 5 points so the curved parallels are followed.
    """
    t = albers_transformer()
    h = resolution / 2
    s = np.linspace(-h, h, 5)
    ring_dx = np.concatenate([s, np.full(4, h), s[::-1][1:], np.full(3, -h)])
    ring_dy = np.concatenate([np.full(5, -h), s[1:], np.full(4, h), s[::-1][1:4]])
    lat = np.asarray(latitude, dtype="float64")[:, None] + ring_dy
    lon = np.broadcast_to(-154.0 + ring_dx, lat.shape)
    xs, ys = t.transform(lon, lat)
    area = 0.5 * np.abs(np.sum(xs * np.roll(ys, -1, axis=-1) - np.roll(xs, -1, axis=-1) * ys, axis=-1)) / 1e6
    return np.broadcast_to(area[:, None], (area.size, np.asarray(longitude).size)).copy()


# ---- shipped basemap ---------------------------------------------------------------------------------
def _shift_to_continuous(gdf, lon_split: float = 0.0):
    """Move parts west of ``lon_split`` (negative longitudes) by +360 so Alaska is one continuous block."""
    import shapely

    gdf = gdf.explode(index_parts=False).reset_index(drop=True)
    west = gdf.geometry.bounds["maxx"] <= lon_split
    gdf.loc[west, "geometry"] = shapely.transform(gdf.loc[west, "geometry"].values, lambda xy: xy + [360.0, 0.0])
    return gdf


def load_basemap_layer(layer: str, scale: str = "50m", continuous_lon: bool = False):
    """A Natural Earth layer (land, coastline, lakes, borders, countries) clipped to Alaska, shipped offline.

    With ``continuous_lon`` the geometries use the 0–360 convention of the domain grid; otherwise −180…180
    (ready for cartopy's ``PlateCarree`` and any projection).
    """
    import geopandas as gpd

    path = shipped_data_path(NATURAL_EARTH_GPKG)
    gdf = gpd.read_file(str(path), layer=f"{layer}_{scale}")
    return _shift_to_continuous(gdf) if continuous_lon else gdf


def alaska_boundary(scale: str = "50m", continuous_lon: bool = False):
    """The Alaska polygon(s): the USA country polygon inside the shipped clip box."""
    countries = load_basemap_layer("countries", scale, continuous_lon=continuous_lon)
    return countries[countries["ADMIN"] == "United States of America"].reset_index(drop=True)
