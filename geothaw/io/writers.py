"""Atomic writers for NetCDF (CF) and GeoTIFF products."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

import xarray as xr

from ..domain import Domain
from .atomic import atomic_path
from .chunk_cache import NETCDF_CHUNK_CACHE_BYTES


def write_netcdf(ds: xr.Dataset, path: str | Path, **kwargs) -> Path:
    """Write ``ds`` to NetCDF4 atomically (temp file + rename)."""
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", **kwargs)
    return Path(path)


def write_domain(domain: Domain, path: str | Path) -> Path:
    """Land fraction, land mask, latitude band and cell area on the domain grid, georeferenced (EPSG:4326)."""
    import rioxarray  # noqa: F401 - registers .rio

    ds = xr.Dataset({
        "lsm": domain.land_fraction(),
        "land": domain.land_mask().astype("int8"),
        "band": domain.bands().astype("int8"),
        "cell_area": domain.cell_area_km2().astype("float32"),
    })
    ds["land"].attrs = {"long_name": "land mask (lsm >= 0.5)", "flag_values": [0, 1], "flag_meanings": "sea land"}
    ds.attrs = {"Conventions": "CF-1.8", "title": "geothaw domain", "band_edges": list(domain.band_edges),
                "resolution_deg": domain.resolution}
    ds = ds.rio.set_spatial_dims(x_dim="longitude", y_dim="latitude").rio.write_crs("EPSG:4326")
    ds = ds.rio.write_coordinate_system()
    return write_netcdf(ds, path)


# ---- products --------------------------------------------------------------------------------------------
def _cf_georeference(ds: xr.Dataset) -> xr.Dataset:
    """Attach EPSG:4326 as a CF grid mapping (``spatial_ref`` + ``grid_mapping`` attrs) so GDAL sees the CRS."""
    import rioxarray  # noqa: F401

    ds = ds.rio.set_spatial_dims(x_dim="longitude", y_dim="latitude").rio.write_crs("EPSG:4326")
    ds = ds.rio.write_coordinate_system()
    for v in ds.data_vars:
        if {"latitude", "longitude"} <= set(ds[v].dims):
            ds[v].attrs["grid_mapping"] = "spatial_ref"
    return ds


# Longitude width of the HDF5 chunks, and so of the slabs products are written in. A slab holds every scenario's
# products of the dask blocks it spans: 128 (2 blocks of 64) instead of 256 took the full domain's two-scenario
# write from 3,588 to 2,763 MB peak RSS (measured, docs/results.md §8).
HDF5_LON_CHUNK = 128


def _slab_width(products: xr.Dataset) -> int:
    """Longitude width of a write slab: whole dask chunks (a block is never computed twice) spanning at least
    one HDF5 chunk width, so every slab fills whole HDF5 chunks."""
    chunked = [v for v in products.data_vars.values() if v.chunks is not None and "longitude" in v.dims]
    step = chunked[0].chunksizes["longitude"][0] if chunked else HDF5_LON_CHUNK
    return min(products.sizes["longitude"], step * -(-HDF5_LON_CHUNK // step))


def _cf_products(ds: xr.Dataset, scenario: str, provenance: dict) -> xr.Dataset:
    """Dimension order, depth bounds, CRS and global attributes of a products file (data stays lazy)."""
    import numpy as np

    from ..products import DEPTH_BOUNDS

    ds = ds.transpose("year", "depth", "latitude", "longitude", missing_dims="ignore")
    ds = ds.assign_coords(depth_bnds=(("depth", "nv"), np.asarray(DEPTH_BOUNDS)))
    ds["year"].attrs = {"long_name": "calendar year", "units": "year"}
    ds = _cf_georeference(ds)
    ds.attrs = {"Conventions": "CF-1.8", "title": f"geothaw yearly active-layer soil temperature products, {scenario}",
                "scenario": scenario, "institution": "geothaw", "source": "geothaw sequence model driven by bias-corrected forcing",
                **{k: str(v) for k, v in provenance.items()}}
    return ds


def write_products_netcdf(products: xr.Dataset, path: str | Path, *, scenario: str, provenance: dict,
                          on_slab: Callable[[int, int], None] | None = None) -> Path:
    """CF-1.8 NetCDF of yearly products for one scenario: dims (year, depth, latitude, longitude), depth bounds.

    ``products`` may be lazy (dask); see :func:`write_scenario_products` for how it is computed and written.
    """
    one = products.expand_dims(scenario=[scenario])
    return write_scenario_products(one, {scenario: path}, provenance=provenance, on_slab=on_slab)[scenario]


def _define_variables(nc, ds: xr.Dataset, names: list[str], width: int) -> None:
    """Create the data variables of a products file (compressed, chunked in ``width``-wide slabs), no data yet."""
    import numpy as np

    for v in names:
        da = ds[v]
        attrs = dict(da.attrs)
        fill = attrs.pop("_FillValue", da.encoding.get("_FillValue"))
        if da.dtype.kind == "f":
            fill = np.float32(np.nan)
        chunks = tuple(min(s, c) for s, c in zip(da.shape, (1, 4, 256, width)[-da.ndim:]))
        var = nc.createVariable(v, da.dtype, da.dims, zlib=True, complevel=4, shuffle=True,
                                chunksizes=chunks if da.ndim >= 2 else None,
                                fill_value=None if fill is None else np.asarray(fill, dtype=da.dtype))
        var.set_var_chunk_cache(size=NETCDF_CHUNK_CACHE_BYTES)  # slabs fill whole chunks: no need to keep them
        var.setncatts({k: (np.asarray(a) if isinstance(a, (list, tuple)) else a) for k, a in attrs.items()})
    nc.setncattr("coordinates", "depth_bnds")  # spatial_ref is found through each variable's grid_mapping


def write_scenario_products(products: xr.Dataset, paths: Mapping[str, str | Path], *, provenance: dict,
                            on_slab: Callable[[int, int], None] | None = None) -> dict[str, Path]:
    """One CF-1.8 products NetCDF per scenario from ``products`` with a ``scenario`` dimension (``paths`` by
    scenario name), every file written atomically.

    ``products`` may be lazy (dask): it is computed one longitude slab at a time for all scenarios together
    (whole HDF5 chunks, in a fixed order), so memory is bounded by a slab, not the domain, the work the
    scenarios share is done once, and the bytes are the same on every run. ``on_slab(done, total)`` is called
    after each slab (progress).
    """
    import netCDF4

    scenarios = [str(s) for s in products["scenario"].values]
    if set(scenarios) != set(paths):
        raise ValueError(f"paths are for {sorted(paths)}, products for {sorted(scenarios)}")
    files = {s: _cf_products(products.sel(scenario=s, drop=True), s, provenance) for s in scenarios}
    names = list(files[scenarios[0]].data_vars)
    # computed once per slab for every scenario; the files' own dimension order
    data = products[names].transpose("scenario", "year", "depth", "latitude", "longitude", missing_dims="ignore")
    nx = data.sizes["longitude"]
    width = _slab_width(data)
    slabs = [slice(x0, min(x0 + width, nx)) for x0 in range(0, nx, width)]
    with contextlib.ExitStack() as stack:  # files close (LIFO) before their atomic renames
        tmps = {s: stack.enter_context(atomic_path(paths[s], suffix=".nc")) for s in scenarios}
        ncs = {}
        for s in scenarios:
            # xarray writes the coordinates, the CRS variable and the global attributes ...
            # CF: coordinates and bounds have no missing values, so no _FillValue (xarray adds NaN to floats)
            header = files[s].drop_vars(names)
            header.to_netcdf(tmps[s], engine="netcdf4", encoding={c: {"_FillValue": None} for c in header.variables
                                                                  if header[c].dtype.kind == "f"})
            ncs[s] = stack.enter_context(netCDF4.Dataset(tmps[s], "a"))
            # ... and the data variables are defined here so they can be filled slab by slab.
            _define_variables(ncs[s], files[s], names, width)
        for i, sl in enumerate(slabs):
            slab = data.isel(longitude=sl).compute()
            for k, s in enumerate(scenarios):
                for v in names:
                    ncs[s][v][..., sl.start:sl.stop] = slab[v].values[k]
            if on_slab is not None:
                on_slab(i + 1, len(slabs))
    return {s: Path(paths[s]) for s in scenarios}


def albers_grid(domain: Domain, resolution_m: float):
    """(transform, (height, width)) of an EPSG:3338 grid covering the domain, snapped to multiples of the pixel size."""
    import numpy as np
    from affine import Affine

    lat = np.concatenate([domain.latitude, domain.latitude, np.full(domain.longitude.size, domain.lat_min),
                          np.full(domain.longitude.size, domain.lat_max)])
    lon = np.concatenate([np.full(domain.latitude.size, domain.lon_min), np.full(domain.latitude.size, domain.lon_max),
                          domain.longitude, domain.longitude])
    x, y = domain.to_albers(lon, lat)
    r = resolution_m
    x0, x1 = np.floor(x.min() / r) * r - r, np.ceil(x.max() / r) * r + r
    y0, y1 = np.floor(y.min() / r) * r - r, np.ceil(y.max() / r) * r + r
    return Affine(r, 0.0, x0, 0.0, -r, y1), (int(round((y1 - y0) / r)), int(round((x1 - x0) / r)))


COG_BLOCK = 256  # COG tile size (pixels)


def _grid_transform(da) -> "affine.Affine":  # noqa: F821
    """North-up affine transform of a regular (latitude, longitude) grid from its cell-centre coordinates."""
    from affine import Affine

    lat, lon = da["latitude"].values, da["longitude"].values
    if lat.size < 2 or lon.size < 2:
        raise ValueError("a raster needs at least 2 latitudes and 2 longitudes to have a grid spacing")
    # spacing over the whole span, as rioxarray computes it: the same transform to the last bit
    dx = float(lon[-1] - lon[0]) / (lon.size - 1)
    dy = float(lat[-1] - lat[0]) / (lat.size - 1)
    return Affine(dx, 0.0, float(lon[0]) - dx / 2, 0.0, dy, float(lat[0]) - dy / 2)


def _warp_to_albers(da: xr.DataArray, domain: Domain, resolution_m: float):
    """(values, transform): a (band, latitude, longitude) array warped onto the domain's EPSG:3338 grid as float32
    (nearest neighbour, NaN outside). On plain arrays: rioxarray's accessor makes reference cycles of the
    warped stack (≈ 0.36 GB per full-size COG) that only the cyclic garbage collector frees."""
    import numpy as np
    import rasterio.warp
    from rasterio.crs import CRS
    from rasterio.enums import Resampling

    transform, shape = albers_grid(domain, resolution_m)
    source = np.asarray(da.values, dtype="float32")
    values = np.full((source.shape[0], *shape), np.nan, dtype="float32")
    rasterio.warp.reproject(source, values, src_transform=_grid_transform(da), src_crs=CRS.from_epsg(4326),
                            src_nodata=np.nan, dst_transform=transform, dst_crs=CRS.from_epsg(3338), dst_nodata=np.nan,
                            resampling=Resampling.nearest)
    return values, transform


def write_cog(da: xr.DataArray, path: str | Path, *, domain: Domain, crs: int = 3338, resolution_m: float = 5000.0,
              band_descriptions: list[str] | None = None, units: str = "", nodata: float = -9999.0,
              categorical: bool = False, threads: int = 1) -> Path:
    """A Cloud-Optimized GeoTIFF from a (band, latitude, longitude) array on the domain grid.

    Written as a tiled GTiff first and then copied with GDAL's COG driver (writing COG directly from dask
    produced empty overviews in the past). Nearest-neighbour resampling keeps flags and NaN edges crisp.
    ``threads`` compress the COG's blocks in parallel inside GDAL: the same bytes, little extra memory.
    """
    import uuid

    import numpy as np
    import rasterio
    import rasterio.shutil
    from rasterio.crs import CRS

    if "band" not in da.dims:
        da = da.expand_dims(band=1)
    da = da.transpose("band", "latitude", "longitude")
    dtype = "int16" if categorical else "float32"
    if crs == 3338:
        values, transform = _warp_to_albers(da, domain, resolution_m)
        out_crs = CRS.from_epsg(3338)
    else:
        transform, out_crs = _grid_transform(da), CRS.from_epsg(4326)
        values = np.array(da.values, dtype="float32")  # a copy: the nodata fill below is in place
    # in place: the reprojection (or the float32 copy above) is ours, and a 0.1° domain's 120 bands are 200 MB
    values[np.isnan(values)] = nodata
    values = values.astype(dtype, copy=False)
    profile = {"driver": "GTiff", "height": values.shape[1], "width": values.shape[2], "count": values.shape[0],
               "dtype": dtype, "crs": out_crs, "transform": transform, "nodata": nodata,
               "tiled": True, "blockxsize": COG_BLOCK, "blockysize": COG_BLOCK,
               # the COG driver builds overviews band by band: a band-interleaved source makes that ~20 % faster
               # on a 120-band stack, and the COG is byte-identical (it is pixel-interleaved either way)
               "interleave": "band"}
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    # The tiled source lives in GDAL's in-memory file system, uncompressed: only the COG is compressed, once.
    tiled = f"/vsimem/geothaw-{uuid.uuid4().hex}.tif"
    try:
        with rasterio.open(tiled, "w", **profile) as dst:
            dst.write(values)
            for i in range(values.shape[0]):
                if band_descriptions:
                    dst.set_band_description(i + 1, band_descriptions[i])
                dst.update_tags(i + 1, units=units)
            dst.update_tags(units=units)
        del values  # the tiled source holds it now: one stack less per writer while the COG is built
        with atomic_path(final, suffix=".tif") as tmp:
            rasterio.shutil.copy(tiled, tmp, driver="COG", compress="DEFLATE",
                                 predictor="2" if categorical else "3", overview_resampling="nearest", blocksize=COG_BLOCK,
                                 num_threads=str(max(1, threads)))
    finally:
        rasterio.shutil.delete(tiled) if rasterio.shutil.exists(tiled) else None
    return final


def exceedance_polygons(eras: xr.Dataset, *, domain: Domain, scenario: str, resolution_m: float = 5000.0):
    """Polygons (EPSG:3338) of connected areas whose era-mean MAGT exceeds 0 °C, per era × depth, with areas."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    rows = []
    for era in eras["era"].values:
        for i, depth in enumerate(eras["depth"].values):
            magt = eras["magt"].sel(era=era).isel(depth=i)
            above = (magt > 0).astype("float32").where(magt.notnull())
            warped, transform = _warp_to_albers(above.expand_dims(band=1), domain, resolution_m)
            grid = warped[0]
            mask = grid == 1
            if not mask.any():
                continue
            for geom, _ in shapes(mask.astype("uint8"), mask=mask, transform=transform):
                poly = shape(geom)
                rows.append({"scenario": scenario, "era": str(era), "depth_m": float(depth),
                             "area_km2": poly.area / 1e6, "geometry": poly})
    gdf = gpd.GeoDataFrame(rows, geometry="geometry", crs="EPSG:3338") if rows else \
        gpd.GeoDataFrame({"scenario": [], "era": [], "depth_m": [], "area_km2": []}, geometry=[], crs="EPSG:3338")
    return gdf


GPKG_FIXED_DATE = "2000-01-01T00:00:00.000Z"


def write_exceedance_gpkg(gdf, path: str | Path, layer: str = "exceedance") -> Path:
    """Write exceedance polygons to a GeoPackage atomically.

    GDAL stamps ``gpkg_contents.last_change`` with the wall clock; a fixed ``OGR_CURRENT_DATE`` keeps the file
    byte-identical between runs (same seed → same bytes, also after a resumed run).
    """
    import pyogrio

    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_FIXED_DATE})
    try:
        with atomic_path(path, suffix=".gpkg") as tmp:
            tmp.unlink()  # GDAL refuses to create a GeoPackage over an existing empty file
            gdf.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})
    return Path(path)
