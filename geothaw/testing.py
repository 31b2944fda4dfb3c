"""Factory fixtures: tiny canonical datasets and the same data written in every real on-disk layout.

Shipped in the package so that tests, notebooks and downstream projects can reuse them::

    dom = antimeridian_domain()                       # 6 × 7 cells at 179.7 … 180.3 °E
    truth = era5land_truth(dom, months=36)            # canonical (°C, mm/month, …)
    write_era5land_new_cds(truth, tmp / "new.nc")     # new-CDS NetCDF4, −180…180, split blocks
    write_era5land_old_cds(truth, tmp / "old.nc", expver_months=3)
    write_era5land_grib(truth, tmp / "era5.grib")
    assert open_era5land(tmp / "new.nc", dom).t2m.equals(...)

Every writer converts the canonical truth back to the file's native units/conventions, so a reader that
round-trips to ``truth`` has undone exactly what the real products do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .domain import Domain, to_pm180, wrap_longitude
from .io.canonical import DAILY_ACCUMULATIONS, GRAVITY, INVARIANTS, TEMPERATURES, days_in_month

DYNAMIC_VARIABLES = ("t2m", "tp", "sd", "sde", "rsn", "stl1", "stl2", "stl3", "stl4",
                     "swvl1", "swvl2", "swvl3", "swvl4")
RAW_UNITS = {  # what CDS files carry
    **{v: "K" for v in TEMPERATURES}, "tp": "m", "sf": "m", "sd": "m of water equivalent", "sde": "m",
    "rsn": "kg m**-3", **{f"swvl{i}": "m**3 m**-3" for i in range(1, 5)},
    "lsm": "(0 - 1)", "z": "m**2 s**-2", "slt": "~",
}
GRIB_SHORT_NAMES = {"t2m": "2t", "d2m": "2d"}


def antimeridian_domain(ny: int = 6, nx: int = 7, *, lat_max: float = 60.0, lon_min: float = 179.7,
                        resolution: float = 0.1) -> Domain:
    """A few-by-few-cell domain straddling 180° (default 59.5…60.0 °N, 179.7…180.3 °E)."""
    return Domain(lat_min=round(lat_max - (ny - 1) * resolution, 6), lat_max=lat_max, lon_min=lon_min,
                  lon_max=round(lon_min + (nx - 1) * resolution, 6), resolution=resolution)


def era5land_truth(domain: Domain, *, start: str = "2000-01", months: int = 36,
                   variables: Sequence[str] = DYNAMIC_VARIABLES, invariants: bool = True, seed: int = 0) -> xr.Dataset:
    """A canonical ERA5-Land dataset on ``domain`` (float32, units attrs, NaN sea cells in one corner)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, periods=months, freq="MS").values.astype("datetime64[ns]")
    ny, nx = domain.shape
    season = np.sin(2 * np.pi * (np.arange(months) - 3) / 12.0)[:, None, None]
    lat = (domain.latitude - 60.0)[None, :, None]
    sea = np.zeros((ny, nx), bool)
    sea[0, : max(1, nx // 3)] = True  # a north-west sea corner, always leaving land cells
    base = {
        "t2m": lambda: -5 + 15 * season - 0.5 * lat, "stl1": lambda: -3 + 12 * season - 0.4 * lat,
        "stl2": lambda: -2 + 9 * season, "stl3": lambda: -1.5 + 5 * season, "stl4": lambda: -1 + 2 * season,
        "tp": lambda: 40 + 20 * season, "sd": lambda: np.clip(0.1 - 0.1 * season, 0, None),
        "sde": lambda: np.clip(0.4 - 0.4 * season, 0, None), "rsn": lambda: 250 - 50 * season,
        **{f"swvl{i}": (lambda i=i: 0.2 + 0.03 * i + 0.05 * season) for i in range(1, 5)},
        "skt": lambda: -4 + 14 * season, "d2m": lambda: -8 + 12 * season, "sf": lambda: 10 - 8 * season,
    }
    units = {"t2m": "degC", "tp": "mm month-1", "sf": "mm month-1", "sd": "m", "sde": "m", "rsn": "kg m-3",
             **{v: "degC" for v in TEMPERATURES}, **{f"swvl{i}": "m3 m-3" for i in range(1, 5)}}
    coords = {"time": time, **domain.coords()}
    out = xr.Dataset(coords=coords)
    for v in variables:
        vals = base[v]() + rng.normal(0.0, 0.05 if v not in ("tp", "rsn", "sf") else 1.0, (months, ny, nx))
        vals = np.broadcast_to(vals, (months, ny, nx)).astype("float32").copy()
        vals[:, sea] = np.nan
        out[v] = (("time", "latitude", "longitude"), vals, {"units": units[v]})
    if invariants:
        elev = (200.0 + 50 * rng.random((ny, nx))).astype("float32")
        lsm = np.where(sea, 0.0, 1.0).astype("float32")
        slt = np.where(sea, 0.0, 1 + (np.arange(ny * nx).reshape(ny, nx) % 7)).astype("float32")
        out["lsm"] = (("latitude", "longitude"), lsm, {"units": "1"})
        out["z"] = (("latitude", "longitude"), (elev * GRAVITY).astype("float32"), {"units": "m2 s-2"})
        out["elevation"] = (("latitude", "longitude"), (out["z"].values / GRAVITY).astype("float32"), {"units": "m"})
        out["slt"] = (("latitude", "longitude"), slt, {"units": "1"})
    return out


def _raw(truth: xr.Dataset, variables: Sequence[str] | None) -> xr.Dataset:
    """Canonical → CDS native units (K, m of water per day, …), dropping derived ``elevation``."""
    names = [n for n in truth.data_vars if n != "elevation" and (variables is None or n in variables)]
    out = xr.Dataset(coords={c: truth[c] for c in truth.coords if c in ("time", "latitude", "longitude")})
    for n in names:
        da = truth[n].astype("float64")
        if n in TEMPERATURES:
            da = da + 273.15
        elif n in DAILY_ACCUMULATIONS:
            da = da / days_in_month(truth["time"]) / 1000.0
        out[n] = da.astype("float32")
        out[n].attrs = {"units": RAW_UNITS.get(n, truth[n].attrs.get("units", "1"))}
    if "time" in out.coords and not any("time" in out[n].dims for n in out.data_vars):
        out = out.drop_vars("time")
    return out


def _invariant_file(raw: xr.Dataset, time0) -> xr.Dataset:
    """Invariants as CDS delivers them: one (arbitrary) time step."""
    st = raw[[n for n in raw.data_vars if n in INVARIANTS]]
    return st.expand_dims(time=[np.datetime64(time0, "ns")])


def write_era5land_new_cds(truth: xr.Dataset, path: str | os.PathLike, *, variables: Sequence[str] | None = None,
                           invariants_only: bool = False, lon_order: str = "ascending") -> Path:
    """New-CDS NetCDF4: ``valid_time`` (s since 1970), ``number``, string ``expver``, NaN fill, −180…180 lon.

    ``lon_order="ascending"`` sorts −180…180 so a domain crossing 180 is split into two blocks, as CDS does
    for requests with W > E; ``"request"`` keeps the continuous order (172…179.9, −180…−129).
    """
    raw = _raw(truth, variables)
    if invariants_only:
        raw = _invariant_file(raw, truth["time"].values[0] if "time" in truth.coords else "2000-01-01")
    else:
        raw = raw[[n for n in raw.data_vars if n not in INVARIANTS]]
    raw = raw.assign_coords(longitude=to_pm180(raw["longitude"].values))
    if lon_order == "ascending":
        raw = raw.sortby("longitude")
    raw = raw.rename({"time": "valid_time"})
    raw = raw.assign_coords(number=0, expver=("valid_time", np.array(["0001"] * raw.sizes["valid_time"], dtype=object)))
    enc = {n: {"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True} for n in raw.data_vars}
    enc["valid_time"] = {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}
    raw.attrs = {"GRIB_centre": "ecmf", "Conventions": "CF-1.7", "institution": "European Centre for Medium-Range Weather Forecasts"}
    raw.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=enc)
    return Path(path)


def _packing(da: xr.DataArray) -> dict:
    lo, hi = float(da.min()), float(da.max())
    scale = (hi - lo) / 65000.0 if hi > lo else 1.0
    return {"dtype": "int16", "scale_factor": scale, "add_offset": (hi + lo) / 2.0, "_FillValue": np.int16(-32767),
            "missing_value": np.int16(-32767)}


def write_era5land_old_cds(truth: xr.Dataset, path: str | os.PathLike, *, variables: Sequence[str] | None = None,
                           invariants_only: bool = False, expver_months: int = 0) -> Path:
    """Old-CDS NetCDF3: int16 packed, 0…360 lon, hours since 1900; ``expver_months`` > 0 adds the 4-D quirk
    (the last months only in expver 5 = ERA5T, the rest only in expver 1)."""
    raw = _raw(truth, variables)
    if invariants_only:
        raw = _invariant_file(raw, truth["time"].values[0] if "time" in truth.coords else "2000-01-01")
    else:
        raw = raw[[n for n in raw.data_vars if n not in INVARIANTS]]
    raw = raw.assign_coords(longitude=wrap_longitude(raw["longitude"].values, 0.0)).sortby("longitude")
    if expver_months:
        cut = raw["time"].values[-expver_months]
        era5 = raw.where(raw["time"] < cut)
        era5t = raw.where(raw["time"] >= cut)
        raw = xr.concat([era5, era5t], dim=xr.DataArray(np.array([1, 5], dtype="int32"), dims="expver", name="expver"))
        raw = raw.transpose("time", "expver", "latitude", "longitude")
    enc = {n: _packing(raw[n]) for n in raw.data_vars}
    enc["time"] = {"units": "hours since 1900-01-01 00:00:00.0", "calendar": "gregorian", "dtype": "int32"}
    raw.attrs = {"Conventions": "CF-1.6", "history": "geothaw.testing old-CDS layout"}
    raw.to_netcdf(path, engine="netcdf4", format="NETCDF3_64BIT", encoding=enc)
    return Path(path)


def write_era5land_grib(truth: xr.Dataset, path: str | os.PathLike, *, variables: Sequence[str] | None = None,
                        invariants_only: bool = False) -> Path:
    """GRIB1 messages as CDS delivers ERA5-Land (one per variable and month; invariants one message each).

    Written with the eccodes API: ``cfgrib.xarray_to_grib`` is experimental and broken with current xarray.
    Longitudes are stored continuously (e.g. 179.7 … 180.3), as MARS does for an area crossing 180.
    """
    import eccodes

    raw = _raw(truth, variables)
    lat, lon = raw["latitude"].values, raw["longitude"].values
    names = [n for n in raw.data_vars if (n in INVARIANTS) == invariants_only]
    times = truth["time"].values if "time" in truth.coords else np.array(["2000-01-01"], dtype="datetime64[ns]")
    geometry = {
        "Ni": lon.size, "Nj": lat.size,
        "latitudeOfFirstGridPointInDegrees": float(lat[0]), "latitudeOfLastGridPointInDegrees": float(lat[-1]),
        "longitudeOfFirstGridPointInDegrees": float(lon[0]), "longitudeOfLastGridPointInDegrees": float(lon[-1]),
        "iDirectionIncrementInDegrees": float(abs(lon[1] - lon[0])), "jDirectionIncrementInDegrees": float(abs(lat[0] - lat[1])),
    }
    missing = 9999.0
    with open(path, "wb") as fh:
        for it, t in enumerate(times):
            ymd = int(str(np.datetime64(t, "D")).replace("-", ""))
            for n in names:
                if n in INVARIANTS and it > 0:
                    continue
                values = raw[n].values if n in INVARIANTS else raw[n].isel(time=it).values
                h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
                try:
                    eccodes.codes_set(h, "shortName", GRIB_SHORT_NAMES.get(n, n))
                    eccodes.codes_set_long(h, "dataDate", ymd)
                    eccodes.codes_set_long(h, "dataTime", 0)
                    for k, v in geometry.items():
                        eccodes.codes_set(h, k, v)
                    eccodes.codes_set_long(h, "bitsPerValue", 24)
                    eccodes.codes_set_long(h, "bitmapPresent", 1)
                    eccodes.codes_set_double(h, "missingValue", missing)
                    eccodes.codes_set_values(h, np.where(np.isnan(values), missing, values).astype("float64").ravel())
                    eccodes.codes_write(h, fh)
                finally:
                    eccodes.codes_release(h)
    return Path(path)


WRITERS = {"new_cds": write_era5land_new_cds, "old_cds": write_era5land_old_cds, "grib": write_era5land_grib}


def write_era5land_split(truth: xr.Dataset, folder: str | os.PathLike, *, by: str = "year", layout: str = "new_cds",
                         variables: Sequence[str] | None = None) -> list[Path]:
    """Write one file per year (``by="year"``) or per variable (``by="variable"``) in ``layout``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = WRITERS[layout]
    suffix = ".grib" if layout == "grib" else ".nc"
    dyn = [n for n in truth.data_vars if "time" in truth[n].dims and (variables is None or n in variables)]
    out = []
    if by == "year":
        for year, part in truth[dyn].groupby("time.year"):
            out.append(writer(part, folder / f"era5land_{year}{suffix}"))
    elif by == "variable":
        for n in dyn:
            out.append(writer(truth[[n]], folder / f"era5land_{n}{suffix}"))
    else:
        raise ValueError(f"by must be 'year' or 'variable', not {by!r}")
    return out


def write_era5land_invariants(truth: xr.Dataset, path: str | os.PathLike, *, layout: str = "new_cds") -> Path:
    """The invariant fields (lsm, z, slt) with one time step, in ``layout``."""
    return WRITERS[layout](truth, path, invariants_only=True)


# ---- CMIP5 ------------------------------------------------------------------------------------------
def _formula(name: str, lat: np.ndarray, lon_deg: np.ndarray, season: np.ndarray) -> np.ndarray:
    lo = np.deg2rad(lon_deg)
    if name == "t2m":
        return -4 + 14 * season - 0.4 * (lat - 60) + 2.0 * np.cos(lo)
    if name == "tp":
        return 45 + 15 * season + 0.5 * (lat - 60) + 5.0 * np.sin(lo)
    if name == "sd":
        return 0.15 - 0.1 * season + 0.002 * (lat - 60) + 0.01 * np.cos(lo)
    raise KeyError(name)


def cmip5_field(name: str, lat: np.ndarray, lon: np.ndarray, month_index: np.ndarray) -> np.ndarray:
    """Smooth, periodic-in-longitude canonical fields (°C, mm/month, m w.e.) → (time, lat, lon).

    Smooth so that bilinear regridding from a 2.5° grid is accurate to ~0.01 and area averages equal
    centre values to the same order.
    """
    la = np.asarray(lat, dtype="float64")[None, :, None]
    lo = np.asarray(lon, dtype="float64")[None, None, :]
    season = np.sin(2 * np.pi * (np.asarray(month_index)[:, None, None] - 3) / 12.0)
    return _formula(name, la, lo, season)


CMIP5_TO_CANONICAL = {"tas": "t2m", "pr": "tp", "snw": "sd"}


def _cftime_axis(start_year: int, months: int, calendar: str):
    import cftime

    mid, lo, hi = [], [], []
    for k in range(months):
        y, m = start_year + k // 12, k % 12 + 1
        a = cftime.datetime(y, m, 1, calendar=calendar)
        b = cftime.datetime(y + (m == 12), m % 12 + 1, 1, calendar=calendar)
        lo.append(a), hi.append(b), mid.append(a + (b - a) / 2)
    return mid, lo, hi


def write_cmip5_esgf(folder: str | os.PathLike, *, gcm: str = "SYN-ESM", scenario: str = "rcp85",
                     calendar: str = "noleap", start_year: int = 2006, months: int = 36,
                     variables: Sequence[str] = ("tas", "pr", "snw"), dlat: float = 2.0, dlon: float = 2.5,
                     split_at: int | None = None) -> list[Path]:
    """ESGF CMIP5 ``<var>_Amon_<gcm>_<scenario>_r1i1p1_<YYYYMM>-<YYYYMM>.nc``: global grid, lat ascending,
    lon 0…360, mid-month cftime axis in ``calendar``, native units (K, kg m-2 s-1, kg m-2).
    ``split_at`` (a month index) writes each variable as two files split in time."""
    import cftime

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lat = np.arange(-90 + dlat / 2, 90, dlat)
    lon = np.arange(0, 360, dlon)
    mid, lo, hi = _cftime_axis(start_year, months, calendar)
    units = "days since 1850-01-01 00:00:00"
    tnum = cftime.date2num(mid, units, calendar=calendar)
    bnds = np.stack([cftime.date2num(lo, units, calendar=calendar), cftime.date2num(hi, units, calendar=calendar)], -1)
    secs = (bnds[:, 1] - bnds[:, 0]) * 86400.0
    k = np.arange(months)
    out = []
    parts = [(0, months)] if split_at is None else [(0, split_at), (split_at, months)]
    for var in variables:
        canon = cmip5_field(CMIP5_TO_CANONICAL[var], lat, lon, k)
        if var == "tas":
            vals, unit = canon + 273.15, "K"
        elif var == "pr":
            vals, unit = canon / secs[:, None, None], "kg m-2 s-1"
        else:
            vals, unit = canon * 1000.0, "kg m-2"
        for a, b in parts:
            ds = xr.Dataset(
                {var: (("time", "lat", "lon"), vals[a:b].astype("float32"), {"units": unit, "_FillValue": np.float32(1e20)}),
                 "time_bnds": (("time", "bnds"), bnds[a:b])},
                coords={"time": ("time", tnum[a:b], {"units": units, "calendar": calendar, "bounds": "time_bnds"}),
                        "lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
                attrs={"model_id": gcm, "experiment_id": scenario, "frequency": "mon", "project_id": "CMIP5"},
            )
            if var == "tas":
                ds = ds.assign_coords(height=((), 2.0, {"units": "m"}))
            y0, m0 = start_year + a // 12, a % 12 + 1
            y1, m1 = start_year + (b - 1) // 12, (b - 1) % 12 + 1
            p = folder / f"{var}_Amon_{gcm}_{scenario}_r1i1p1_{y0:04d}{m0:02d}-{y1:04d}{m1:02d}.nc"
            ds.to_netcdf(p, engine="netcdf4", format="NETCDF4_CLASSIC")
            out.append(p)
    return out


def cmip5_expected(domain: Domain, *, calendar: str = "noleap", start_year: int = 2006, months: int = 36,
                   variables: Sequence[str] = ("t2m", "tp", "sd")) -> xr.Dataset:
    """The canonical values :func:`write_cmip5_esgf` / :func:`write_snap_geotiffs` data should regrid to."""
    time = pd.date_range(f"{start_year}-01", periods=months, freq="MS").values.astype("datetime64[ns]")
    k = np.arange(months)
    out = xr.Dataset(coords={"time": time, **domain.coords()})
    for v in variables:
        out[v] = (("time", "latitude", "longitude"),
                  cmip5_field(v, domain.latitude, domain.longitude, k).astype("float32"))
    return out


def write_snap_geotiffs(folder: str | os.PathLike, domain: Domain, *, gcm: str = "GFDL-CM3", scenario: str = "rcp85",
                        start_year: int = 2006, months: int = 36, variables: Sequence[str] = ("tas", "pr"),
                        pixel_m: float = 1000.0, margin_cells: int = 2) -> list[Path]:
    """SNAP-style monthly GeoTIFFs in EPSG:3338 (``tas_mean_C_AR5_…``, ``pr_total_mm_AR5_…``) covering
    ``domain`` plus a margin, nodata −9999 in one corner (like SNAP's ocean mask)."""
    import rasterio
    from affine import Affine
    from pyproj import Transformer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    r = domain.resolution * margin_cells
    edge_lon = np.linspace(domain.lon_min - r, domain.lon_max + r, 50)
    edge_lat = np.linspace(domain.lat_min - r, domain.lat_max + r, 50)
    ring_lon = np.r_[edge_lon, edge_lon, np.full(50, edge_lon[0]), np.full(50, edge_lon[-1])]
    ring_lat = np.r_[np.full(50, edge_lat[0]), np.full(50, edge_lat[-1]), edge_lat, edge_lat]
    fwd = Transformer.from_crs(4326, 3338, always_xy=True)
    x, y = fwd.transform(to_pm180(ring_lon), ring_lat)
    x0, x1 = np.floor(min(x) / pixel_m) * pixel_m, np.ceil(max(x) / pixel_m) * pixel_m
    y0, y1 = np.floor(min(y) / pixel_m) * pixel_m, np.ceil(max(y) / pixel_m) * pixel_m
    nx, ny = int((x1 - x0) / pixel_m), int((y1 - y0) / pixel_m)
    transform = Affine(pixel_m, 0, x0, 0, -pixel_m, y1)
    cx = x0 + (np.arange(nx) + 0.5) * pixel_m
    cy = y1 - (np.arange(ny) + 0.5) * pixel_m
    X, Y = np.meshgrid(cx, cy)
    lon, lat = Transformer.from_crs(3338, 4326, always_xy=True).transform(X, Y)
    lon = wrap_longitude(lon, domain.lon_min - 180.0)
    nodata = -9999.0
    out = []
    tags = {"tas": ("tas_mean_C", "t2m"), "pr": ("pr_total_mm", "tp")}
    for k in range(months):
        year, month = start_year + k // 12, k % 12 + 1
        for var in variables:
            prefix, canon = tags[var]
            grid = _formula(canon, lat, lon, np.sin(2 * np.pi * (k - 3) / 12.0)).astype("float32")
            grid[: ny // 8, : nx // 8] = nodata
            p = folder / f"{prefix}_AR5_{gcm}_{scenario}_{month:02d}_{year:04d}.tif"
            with rasterio.open(p, "w", driver="GTiff", width=nx, height=ny, count=1, dtype="float32", crs="EPSG:3338",
                               transform=transform, nodata=nodata) as dst:
                dst.write(grid, 1)
            out.append(p)
    return out
