"""CMIP5 projections → the canonical dataset on the domain grid (``t2m`` °C, ``tp`` mm/month, ``sd`` m w.e.).

Two real layouts, one reader each, tried in a fixed order by :func:`open_cmip5`:

* ``esgf`` – ESGF NetCDF ``<var>_Amon_<GCM>_<experiment>_<ensemble>_<YYYYMM>-<YYYYMM>.nc``: any calendar
  (noleap, 360_day, …) decoded with cftime and kept as year-month; ``pr`` (kg m-2 s-1) is turned into a
  monthly total with the *file's* calendar month lengths; coarse global grid (lat ascending, lon 0…360)
  bilinearly interpolated on a periodic longitude axis, so a domain crossing 180° (or 0°) is seamless.
* ``snap`` – SNAP (UAF) downscaled monthly GeoTIFFs in EPSG:3338 ``tas_mean_C_AR5_<GCM>_<scen>_<MM>_<YYYY>.tif``
  and ``pr_total_mm_…`` (°C, mm/month), area-averaged (GDAL ``average``) onto the domain's lat/lon cells;
  the destination CRS carries ``+lon_wrap=180`` so longitudes beyond 180° are the domain's continuous axis.

No land masking here (coastal GCM cells keep their values); masking happens downstream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..domain import Domain, wrap_longitude
from .canonical import (
    DEG_C,
    LONG_NAMES,
    MM_MONTH,
    FormatReader,
    PathLike,
    Piece,
    _norm_units,
    check_months_unique,
    check_pieces_not_all_nan,
    combine_pieces,
    expand_paths,
    fail,
    finish,
    open_pieces,
)
from .era5land import reading

SUFFIXES = (".nc", ".nc4", ".tif", ".tiff")
CANONICAL = {"tas": "t2m", "pr": "tp", "snw": "sd"}
ESGF_NAME = re.compile(r"^(?P<var>[A-Za-z0-9]+)_(?P<table>[A-Za-z0-9]+)_(?P<gcm>.+?)_(?P<scenario>historical|rcp\d{2}|[a-z0-9]+)"
                       r"_(?P<ensemble>r\d+i\d+p\d+)(?:_(?P<range>[\d-]+))?\.nc4?$")
SNAP_NAME = re.compile(r"^(?P<var>[a-z]+)_(?P<stat>[a-z]+)_(?P<unit>[A-Za-z]+)_(?P<ar>AR\d)_(?P<gcm>.+)_"
                       r"(?P<scenario>historical|rcp\d{2})_(?P<month>\d{2})_(?P<year>\d{4})\.tiff?$")
# Destination CRS for warping: WGS84 lat/lon whose longitudes continue past 180 (the domain's axis).
LONLAT_CONTINUOUS = "+proj=longlat +datum=WGS84 +lon_wrap=180 +no_defs"


# ---- time and units ----------------------------------------------------------------------------------
def calendar_month_lengths(times: np.ndarray, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """Month-start datetime64[ns] and days in each month *in the file's calendar* (360_day → 30)."""
    import cftime

    starts, days = [], []
    for t in times:
        y, m = t.year, t.month
        a = cftime.datetime(y, m, 1, calendar=calendar)
        b = cftime.datetime(y + (m == 12), m % 12 + 1, 1, calendar=calendar)
        starts.append(f"{y:04d}-{m:02d}")
        days.append((b - a).days)
    return np.array(starts, dtype="datetime64[M]").astype("datetime64[ns]"), np.asarray(days, dtype="float64")


def _to_canonical(da: xr.DataArray, var: str, days: np.ndarray, source: str) -> xr.DataArray:
    if "units" not in da.attrs:
        raise fail(source, f"variable '{var}' has no units attribute")
    raw = da.attrs["units"]
    u = _norm_units(raw).replace("**", "").replace("^", "")
    per_month = xr.DataArray(days, dims="time", coords={"time": da["time"]})
    if var == "tas":
        if u in {"k", "kelvin"}:
            da, unit = da - 273.15, DEG_C
        elif u in {"degc", "c", "°c", "celsius"}:
            unit = DEG_C
        else:
            raise fail(source, f"variable 'tas' has unknown units '{raw}' (expected K)")
    elif var == "pr":
        if u in {"kg m-2 s-1", "kg/m2/s", "mm s-1", "mm/s"}:
            da, unit = da * per_month * 86400.0, MM_MONTH  # 1 kg m-2 of water = 1 mm
        elif u in {"mm day-1", "mm/day", "mm d-1"}:
            da, unit = da * per_month, MM_MONTH
        elif u in {"mm month-1", "mm/month", "mm"}:
            unit = MM_MONTH
        else:
            raise fail(source, f"variable 'pr' has unknown units '{raw}' (expected kg m-2 s-1)")
    elif var == "snw":
        if u in {"kg m-2", "kg/m2", "mm"}:
            da, unit = da / 1000.0, "m"  # kg m-2 of water → m water equivalent
        elif u == "m":
            unit = "m"
        else:
            raise fail(source, f"variable 'snw' has unknown units '{raw}' (expected kg m-2)")
    else:
        raise fail(source, f"variable '{var}' is not supported (tas, pr, snw)")
    name = CANONICAL[var]
    out = da.astype("float32")
    out.attrs = {"units": unit, "long_name": LONG_NAMES[name], "cmip5_name": var}
    return out.rename(name)


# ---- regridding --------------------------------------------------------------------------------------
def regrid_bilinear(ds: xr.Dataset, domain: Domain, source: str) -> xr.Dataset:
    """Bilinear interpolation of a coarse lat/lon grid onto the domain's cell centres.

    The source longitudes are put on a continuous axis starting after their widest gap and, for a global
    grid, padded one column each side (periodic), so 180° and 0°/360° are both interior points.
    """
    lon = np.round(wrap_longitude(ds["longitude"].values, 0.0), 6)
    ds = ds.assign_coords(longitude=lon).sortby("longitude").sortby("latitude")
    _, keep = np.unique(ds["longitude"].values, return_index=True)
    ds = ds.isel(longitude=np.sort(keep))
    lon = ds["longitude"].values
    if lon.size < 2 or ds.sizes["latitude"] < 2:
        raise fail(source, "grid has fewer than 2 points along latitude or longitude")
    gaps = np.diff(np.r_[lon, lon[0] + 360.0])
    step = float(np.median(gaps))
    is_global = gaps.max() <= 1.5 * step
    start = lon[0] if is_global else lon[(int(np.argmax(gaps)) + 1) % lon.size]
    ds = ds.assign_coords(longitude=wrap_longitude(lon, start)).sortby("longitude")
    if is_global:
        first, last = ds.isel(longitude=[0]), ds.isel(longitude=[-1])
        ds = xr.concat([last.assign_coords(longitude=last["longitude"] - 360.0), ds,
                        first.assign_coords(longitude=first["longitude"] + 360.0)], dim="longitude")
    target_lon = wrap_longitude(domain.longitude, start)
    out = ds.interp(latitude=domain.latitude, longitude=target_lon, method="linear")
    out = out.assign_coords(domain.coords())
    for name in out.data_vars:
        out[name].attrs = ds[name].attrs
    finite = np.isfinite(out.to_array().values).any(axis=(0, 1)) if out.data_vars else np.zeros(domain.shape, bool)
    if not finite.any():
        raise fail(source, f"no overlap with the domain ({domain.lat_min:g}…{domain.lat_max:g}°N, "
                           f"{domain.lon_min:g}…{domain.lon_max:g}°E)")
    return out


# ---- readers -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EsgfReader(FormatReader):
    """ESGF CMIP5 NetCDF (classic or NetCDF4), any CF calendar."""

    name: str = "esgf-netcdf"
    module: str = "netCDF4"
    magics: tuple[str, ...] = ("netcdf3", "netcdf4")
    suffixes: tuple[str, ...] = (".nc", ".nc4")
    variables: tuple[str, ...] = ("tas", "pr", "snw")

    def open(self, path: Path, *, domain: Domain | None) -> Piece:
        coder = xr.coders.CFDatetimeCoder(use_cftime=True)
        with reading(path):
            ds = xr.open_dataset(path, engine="netcdf4", decode_times=coder, decode_timedelta=False)
        try:
            with reading(path):
                return self._piece(ds, path, domain or Domain())
        finally:
            ds.close()  # everything is loaded: CMIP5 monthly fields on a coarse grid are small

    def _piece(self, ds: xr.Dataset, path: Path, domain: Domain) -> Piece:
        source = str(path)
        ds = ds.rename({k: v for k, v in {"lat": "latitude", "lon": "longitude"}.items() if k in ds.variables})
        found = [v for v in self.variables if v in ds.data_vars]
        m = ESGF_NAME.match(path.name)
        attrs = {"gcm": ds.attrs.get("model_id") or (m and m["gcm"]) or "unknown",
                 "scenario": ds.attrs.get("experiment_id") or (m and m["scenario"]) or "unknown", "_domain": domain}
        if not found and any(v in ds.data_vars for v in CANONICAL):
            return Piece(source=source, attrs=attrs)  # e.g. the snw file of a folder when only tas/pr are asked for
        if not found:
            present = ", ".join(n for n in ds.data_vars if not n.endswith("_bnds")) or "nothing"
            raise fail(source, f"holds none of the variables {', '.join(self.variables)} (found: {present})")
        if "time" not in ds.dims:
            raise fail(source, "has no time axis")
        calendar = ds["time"].encoding.get("calendar", "standard")
        values = ds["time"].values
        if np.issubdtype(np.asarray(values).dtype, np.datetime64):  # decoded as datetime64 despite cftime coder
            import cftime

            values = [cftime.datetime(int(str(t)[:4]), int(str(t)[5:7]), 1, calendar=calendar) for t in values]
        starts, days = calendar_month_lengths(values, calendar)
        check_months_unique(starts, source)
        ds = ds.assign_coords(time=starts)
        fields = []
        for v in found:
            da = ds[v]
            extra = [d for d in da.dims if d not in ("time", "latitude", "longitude")]
            if extra:
                raise fail(source, f"variable '{v}' has unexpected dimension '{extra[0]}'")
            fields.append(_to_canonical(da.load(), v, days, source))
        data = xr.Dataset({f.name: f for f in fields}).sortby("time")
        data = regrid_bilinear(data.transpose("time", "latitude", "longitude"), domain, source).astype("float32")
        for f in fields:
            data[f.name].attrs = f.attrs
        attrs["calendar"] = calendar
        return Piece(source=source, dynamic=data, attrs=attrs)


@dataclass(frozen=True)
class SnapReader(FormatReader):
    """SNAP monthly GeoTIFFs (one variable and month per file, units in the file name)."""

    name: str = "snap-geotiff"
    module: str = "rasterio"
    magics: tuple[str, ...] = ("tiff",)
    suffixes: tuple[str, ...] = (".tif", ".tiff")
    variables: tuple[str, ...] = ("tas", "pr")

    UNITS = {("tas", "C"): DEG_C, ("pr", "mm"): MM_MONTH}

    def open(self, path: Path, *, domain: Domain | None) -> Piece:
        import rasterio
        from rasterio.warp import Resampling, reproject

        source = str(path)
        domain = domain or Domain()
        m = SNAP_NAME.match(path.name)
        if m is None:
            raise fail(source, "not a SNAP file name (expected e.g. tas_mean_C_AR5_<GCM>_rcp85_<MM>_<YYYY>.tif)")
        var = m["var"]
        if var not in CANONICAL:
            raise fail(source, f"variable '{var}' is not supported (tas, pr)")
        unit = self.UNITS.get((var, m["unit"]))
        if unit is None:
            raise fail(source, f"unknown units '{m['unit']}' for '{var}' (expected "
                               f"{'C' if var == 'tas' else 'mm'})")
        with reading(path), rasterio.open(path) as src:
            if src.crs is None:
                raise fail(source, "GeoTIFF has no CRS (SNAP files are EPSG:3338)")
            band = src.read(1, masked=True).astype("float32").filled(np.nan)
            dst = np.full(domain.shape, np.nan, dtype="float32")
            reproject(band, dst, src_transform=src.transform, src_crs=src.crs, src_nodata=np.nan,
                      dst_transform=domain.transform, dst_crs=LONLAT_CONTINUOUS, dst_nodata=np.nan,
                      resampling=Resampling.average)
        if not np.isfinite(dst).any():
            if np.isfinite(band).any():
                raise fail(source, "no overlap with the domain")
            raise fail(source, f"variable '{var}' is all-NaN (only nodata)")
        name = CANONICAL[var]
        time = np.array([f"{m['year']}-{m['month']}"], dtype="datetime64[M]").astype("datetime64[ns]")
        da = xr.DataArray(dst[None], coords={"time": time, **domain.coords()}, dims=("time", "latitude", "longitude"),
                          attrs={"units": unit, "long_name": LONG_NAMES[name], "cmip5_name": var})
        attrs = {"gcm": m["gcm"], "scenario": m["scenario"], "_domain": domain}
        return Piece(source=source, dynamic=da.to_dataset(name=name), attrs=attrs)


READERS: tuple[FormatReader, ...] = (EsgfReader(), SnapReader())


def open_cmip5(
    paths: PathLike | Iterable[PathLike],
    domain: Domain | None = None,
    *,
    variables: Sequence[str] = ("tas", "pr", "snw"),
) -> xr.Dataset:
    """Open one GCM/scenario's monthly CMIP5 files (ESGF NetCDF or a SNAP GeoTIFF folder) on ``domain``.

    Returns the canonical dataset with ``t2m`` (°C), ``tp`` (mm/month) and ``sd`` (m w.e.) for the
    requested CMIP5 ``variables`` and attrs ``gcm``/``scenario``. SNAP provides only ``tas`` and ``pr``:
    pass ``variables=("tas", "pr")``. ``domain=None`` means the default Alaska domain.
    Raises :class:`~geothaw.errors.InputDataError` naming the file and the problem.
    """
    unknown = [v for v in variables if v not in CANONICAL]
    if unknown:
        raise ValueError(f"unknown CMIP5 variable {unknown[0]!r}; choose from {', '.join(CANONICAL)}")
    domain = domain or Domain()
    files = expand_paths(paths, SUFFIXES)
    readers = (EsgfReader(variables=tuple(variables)), SnapReader())
    pieces, domain = open_pieces(files, readers, domain)
    label = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} files)"
    check_pieces_not_all_nan(pieces, reading)
    for key in ("gcm", "scenario"):
        values = sorted({str(p.attrs[key]) for p in pieces})
        if len(values) > 1:
            raise fail(label, f"mixes several {key}s ({', '.join(values)}); open one GCM and scenario at a time")
    ds = combine_pieces(pieces)
    for v in variables:
        if CANONICAL[v] not in ds:
            hint = " (SNAP folders hold only tas and pr: pass variables=('tas', 'pr'))" \
                if v == "snw" and any(p.source.lower().endswith((".tif", ".tiff")) for p in pieces) else ""
            raise fail(label, f"missing variable '{v}'{hint}")
    ds = finish(ds, pieces, [])
    ds.attrs.update(gcm=str(pieces[0].attrs["gcm"]), scenario=str(pieces[0].attrs["scenario"]))
    cal = {p.attrs.get("calendar") for p in pieces} - {None}
    if cal:
        ds.attrs["calendar"] = ", ".join(sorted(cal))
    return ds
