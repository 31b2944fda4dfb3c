"""The canonical-dataset contract shared by every reader: names, units, time axis, grid snapping, checks.

Every reader turns one file into a *piece* (dynamic variables on a month-start ``time`` axis plus invariant
2-D variables), already in canonical units and on the domain grid. :func:`combine_pieces` then joins the
pieces of a multi-file set (split by year and/or by variable) and checks the time axis once for all.
Every problem is an :class:`~geothaw.errors.InputDataError` whose one-line message names the file.
"""

from __future__ import annotations

import glob as _glob
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..domain import Domain, wrap_longitude
from ..errors import InputDataError

PathLike = str | os.PathLike

# ---- names and units -------------------------------------------------------------------------------
# Canonical units are CF/udunits strings that pint (hence xsdba) parses.
DEG_C = "degC"
MM_MONTH = "mm month-1"
CANONICAL_UNITS: dict[str, str] = {
    "t2m": DEG_C, "skt": DEG_C, "d2m": DEG_C,
    "stl1": DEG_C, "stl2": DEG_C, "stl3": DEG_C, "stl4": DEG_C,
    "tp": MM_MONTH, "sf": MM_MONTH,
    "sd": "m", "sde": "m", "rsn": "kg m-3", "snowc": "%",
    "swvl1": "m3 m-3", "swvl2": "m3 m-3", "swvl3": "m3 m-3", "swvl4": "m3 m-3",
    "lsm": "1", "z": "m2 s-2", "elevation": "m", "slt": "1", "cvh": "1", "cvl": "1",
}
LONG_NAMES: dict[str, str] = {
    "t2m": "2 metre temperature", "skt": "skin temperature", "d2m": "2 metre dewpoint temperature",
    "tp": "total precipitation (monthly total)", "sf": "snowfall (monthly total, water equivalent)",
    "sd": "snow depth water equivalent", "sde": "snow depth", "rsn": "snow density", "snowc": "snow cover",
    "lsm": "land-sea mask (land fraction)", "z": "surface geopotential", "elevation": "surface elevation (z / g)",
    "slt": "soil type code (1 coarse … 7 tropical organic)",
    **{f"stl{i}": f"soil temperature level {i}" for i in range(1, 5)},
    **{f"swvl{i}": f"volumetric soil water layer {i}" for i in range(1, 5)},
}
TEMPERATURES = frozenset({"t2m", "skt", "d2m", "stl1", "stl2", "stl3", "stl4"})
# ERA5(-Land) monthly means of accumulations are "per day" (REFERENCE §1): monthly total = value × days.
DAILY_ACCUMULATIONS = frozenset({"tp", "sf", "e", "ro", "sro", "ssro", "pev", "smlt", "es"})
INVARIANTS = frozenset({"lsm", "z", "slt", "cvh", "cvl", "tvh", "tvl", "sdor", "slor", "isor", "anor", "dl", "cl"})
GRAVITY = 9.80665  # m s-2, WMO standard gravity: elevation = z / g

_KELVIN = {"k", "kelvin", "degk"}
_CELSIUS = {"degc", "°c", "c", "celsius", "deg_c", "degree_celsius", "degrees_celsius"}
_DIMENSIONLESS = {"1", "(0 - 1)", "(0-1)", "0-1", "~", "", "fraction", "dimensionless", "proportion"}
# Accepted spellings per canonical unit (after :func:`_norm_units`).
_SAME_AS: dict[str, set[str]] = {
    "m": {"m", "m of water equivalent", "m w.e.", "m of water", "metres", "meters"},
    "kg m-3": {"kg m-3", "kg m**-3", "kg/m3", "kg/m^3"},
    "m3 m-3": {"m3 m-3", "m**3 m**-3", "m^3 m^-3", "m3/m3", "1"},
    "m2 s-2": {"m2 s-2", "m**2 s**-2", "m^2 s^-2", "m2/s2"},
    "%": {"%", "percent"},
    "1": _DIMENSIONLESS,
}


def _norm_units(units: object) -> str:
    return " ".join(str(units).strip().lower().split())


def fail(path: PathLike | str, problem: str) -> InputDataError:
    """The one-line error every reader raises: ``<file>: <problem>``."""
    return InputDataError(f"{path}: {problem}")


# ---- paths ------------------------------------------------------------------------------------------
def expand_paths(paths: PathLike | Iterable[PathLike], suffixes: Sequence[str]) -> list[Path]:
    """A path, glob, folder or list of those → sorted existing, non-empty files (folders keep ``suffixes``)."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise InputDataError("no input files given")
    out: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in _glob.glob(text))
            if not matches:
                raise fail(text, "no file matches this pattern")
            out.extend(m for m in matches if m.is_file())
            continue
        p = Path(text)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.lower().endswith(tuple(suffixes)))
            if not found:
                raise fail(p, f"folder holds no input files ({', '.join(suffixes)})")
            out.extend(found)
        else:
            out.append(p)
    for p in out:
        check_file(p)
    return list(dict.fromkeys(out))  # keep order, drop repeats


def check_file(path: Path) -> None:
    if not path.exists():
        raise fail(path, "file not found")
    if path.stat().st_size == 0:
        raise fail(path, "file is empty (0 bytes); the download probably failed")


# ---- format sniffing and dispatch ------------------------------------------------------------------
MAGIC = {
    "netcdf3": (b"CDF\x01", b"CDF\x02", b"CDF\x05"),
    "netcdf4": (b"\x89HDF\r\n\x1a\n",),
    "grib": (b"GRIB",),
    "tiff": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
}


def sniff(path: Path) -> str | None:
    """The format named by the file's magic bytes, or None."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    for name, magics in MAGIC.items():
        if head.startswith(magics):
            return name
    return None


@dataclass(frozen=True)
class FormatReader:
    """Base of the per-format readers: magic bytes first, file suffix second."""

    name: str = ""
    module: str = ""          # the package the reader needs; checked when the reader is looked up
    magics: tuple[str, ...] = ()  # keys of MAGIC
    suffixes: tuple[str, ...] = ()

    def sniffs(self, path: Path) -> bool:
        return sniff(path) in self.magics

    def can_open(self, path: Path) -> bool:
        return self.sniffs(path) or path.name.lower().endswith(self.suffixes)


def pick_reader(path: Path, readers: Sequence[FormatReader]) -> FormatReader:
    """First reader whose magic bytes match, else first whose suffix matches; the error lists all tried."""
    import importlib.util

    with open(path, "rb") as fh:
        if fh.read(4) == b"PK\x03\x04":  # CDS's download_format "zip"
            raise fail(path, "is a zip archive; unzip it first (or request download_format 'unarchived')")
    chosen = next((r for r in readers if r.sniffs(path)), None)
    if chosen is None:
        chosen = next((r for r in readers if r.can_open(path)), None)
    if chosen is None:
        tried = ", ".join(r.name for r in readers)
        raise fail(path, f"no reader matched (tried: {tried}); not NetCDF, GRIB or GeoTIFF, or the file is corrupt")
    if importlib.util.find_spec(chosen.module) is None:
        raise fail(path, f"reading {chosen.name} files needs the '{chosen.module}' package; install it")
    return chosen


# ---- time ---------------------------------------------------------------------------------------------
def month_starts(values: np.ndarray) -> np.ndarray:
    """Month-start ``datetime64[ns]`` from datetime64 or cftime values (any calendar keeps year and month)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[M]").astype("datetime64[ns]")
    return np.array([f"{v.year:04d}-{v.month:02d}" for v in values], dtype="datetime64[M]").astype("datetime64[ns]")


def days_in_month(time: xr.DataArray) -> xr.DataArray:
    """Days in each month of a (month-start, proleptic Gregorian) time axis."""
    t = time.values.astype("datetime64[M]")
    days = ((t + 1).astype("datetime64[D]") - t.astype("datetime64[D]")).astype("int64")
    return xr.DataArray(days.astype("float64"), coords={"time": time.values}, dims="time")


def _fmt_month(t: np.datetime64) -> str:
    return str(np.datetime64(t, "M"))


def check_months_unique(times: np.ndarray, source: str) -> None:
    months, counts = np.unique(times, return_counts=True)
    dup = months[counts > 1]
    if dup.size:
        raise fail(source, f"duplicate month {_fmt_month(dup[0])} ({dup.size} duplicated); monthly data expected")


def check_months_contiguous(times: np.ndarray, source: str) -> None:
    m = np.sort(times.astype("datetime64[M]"))
    steps = np.diff(m).astype("int64")
    if np.any(steps == 0):
        raise fail(source, f"duplicate month {_fmt_month(m[1:][steps == 0][0])}")
    gaps = np.flatnonzero(steps > 1)
    if gaps.size:
        first = m[gaps[0]] + 1
        missing = int(np.sum(steps[gaps] - 1))
        raise fail(source, f"gap in months: {_fmt_month(first)} missing ({missing} month(s) missing in all)")


# ---- units --------------------------------------------------------------------------------------------
def convert_units(da: xr.DataArray, name: str, source: str) -> xr.DataArray:
    """``da`` in canonical units for ``name``; unknown or missing units raise (never a silent guess)."""
    if "units" not in da.attrs:
        raise fail(source, f"variable '{name}' has no units attribute")
    raw = da.attrs["units"]
    u = _norm_units(raw)
    target = CANONICAL_UNITS.get(name)
    attrs = {k: v for k, v in da.attrs.items() if not k.startswith("GRIB_")}
    if name in TEMPERATURES or (target is None and u in _KELVIN):
        if u in _KELVIN:
            da = da - 273.15
        elif u not in _CELSIUS:
            raise fail(source, f"variable '{name}' has unknown temperature units '{raw}' (expected K or degC)")
        target = DEG_C
    elif name in DAILY_ACCUMULATIONS:
        if u in {"m", "m day-1", "m d-1", "m/day", "m of water equivalent"}:
            da = da * days_in_month(da["time"]) * 1000.0
        elif u in {"mm day-1", "mm d-1", "mm/day"}:
            da = da * days_in_month(da["time"])
        elif u not in {"mm month-1", "mm/month", "mm"}:
            raise fail(source, f"variable '{name}' has unknown units '{raw}' (expected m of water per day)")
        target = MM_MONTH
    elif target is not None:
        code_table = name == "slt" and u.startswith("(code table")  # cfgrib's units for soil type
        if u not in _SAME_AS.get(target, {target}) and not code_table:
            raise fail(source, f"variable '{name}' has unknown units '{raw}' (expected {target})")
    else:  # passed-through variable: only tidy the spelling
        target = str(raw).replace("**", "")
    out = da.astype("float32")
    out.attrs = {**attrs, "units": target}
    if name in LONG_NAMES:
        out.attrs["long_name"] = LONG_NAMES[name]
    out.attrs.pop("_FillValue", None)
    return out


# ---- grid ---------------------------------------------------------------------------------------------
def _spacing(values: np.ndarray, axis: str, source: str) -> float:
    v = np.unique(np.round(np.asarray(values, dtype="float64"), 6))
    if v.size < 2:
        raise fail(source, f"{axis} axis has fewer than 2 points; cannot determine the grid")
    d = np.diff(v)
    step = float(np.median(d))
    if np.any(np.abs(d - step) > 1e-3 * max(step, 1e-9)) and not (axis == "longitude" and _is_split_lon(d, step)):
        raise fail(source, f"{axis} axis is not a regular grid")
    return step


def _is_split_lon(d: np.ndarray, step: float) -> bool:
    """A regional request crossing 180 may come back as two blocks (e.g. −180…−129 and 172…179.9)."""
    odd = np.abs(d - step) > 1e-3 * step
    return int(odd.sum()) == 1


def infer_domain(ds: xr.Dataset, source: str) -> Domain:
    """The file's own grid as a :class:`Domain` (continuous longitudes starting after the widest gap)."""
    res_lat = _spacing(ds["latitude"].values, "latitude", source)
    res = round(_spacing(ds["longitude"].values, "longitude", source), 6)
    if abs(res_lat - res) > 1e-6:
        raise fail(source, f"grid spacing differs in latitude ({res_lat}) and longitude ({res})")
    lat = np.round(ds["latitude"].values.astype("float64") / res) * res
    lon = np.unique(np.round(wrap_longitude(ds["longitude"].values, 0.0) / res) * res % 360.0)
    gaps = np.diff(np.r_[lon, lon[0] + 360.0])
    start = lon[(int(np.argmax(gaps)) + 1) % lon.size]
    cont = np.sort(wrap_longitude(lon, start))
    return Domain(lat_min=float(lat.min()), lat_max=float(lat.max()), lon_min=float(cont[0]),
                  lon_max=float(cont[-1]), resolution=res)


def _grid_index(values: np.ndarray, origin: float, res: float) -> tuple[np.ndarray, np.ndarray]:
    pos = (np.asarray(values, dtype="float64") - origin) / res
    return np.round(pos), np.abs(pos - np.round(pos))


def snap_to_domain(ds: xr.Dataset, domain: Domain, source: str) -> xr.Dataset:
    """Put ``ds`` (any lat order, any longitude convention) exactly on the domain's cell centres.

    Longitudes are wrapped onto the domain's continuous axis, so a file whose Alaska block is split in two
    (172…179.9 and −180…−129) becomes one block. Cells inside the domain but outside the file are NaN, with
    a warning; a file on another grid or not overlapping at all is an error. A finer file whose spacing
    divides the domain's is block-averaged (cells on a block edge count half), e.g. 0.1° data on a 0.5° domain.
    """
    res = domain.resolution
    lon_file = wrap_longitude(ds["longitude"].values, domain.lon_min - res / 2)
    ds = ds.assign_coords(longitude=("longitude", lon_file))
    # Reorder only when needed: every sortby/isel/reindex adds a dask task per variable and file, and with
    # 75 yearly files × 13 variables that overhead dominated reading a grid already in the domain's layout.
    if not np.all(np.diff(ds["latitude"].values) < 0):
        ds = ds.sortby("latitude", ascending=False)
    if not np.all(np.diff(ds["longitude"].values) > 0):
        ds = ds.sortby("longitude")
        _, keep = np.unique(ds["longitude"].values, return_index=True)
        ds = ds.isel(longitude=np.sort(keep))  # a global file may hold both −180 and 180
    file_res = _spacing(ds["latitude"].values, "latitude", source)
    ratio = res / file_res
    k = int(round(ratio))
    if k < 1 or abs(ratio - k) > 1e-3 or abs(_spacing(ds["longitude"].values, "longitude", source) - file_res) > 1e-6:
        raise fail(source, f"file grid spacing {file_res:g}° does not fit the domain's {res:g}° grid")
    _, off_lat = _grid_index(ds["latitude"].values, domain.lat_min, file_res)
    _, off_lon = _grid_index(ds["longitude"].values, domain.lon_min, file_res)
    if off_lat.max() > 0.05 or off_lon.max() > 0.05:
        raise fail(source, f"cell centres are not on the domain's {file_res:g}° grid (offset by "
                           f"{max(off_lat.max(), off_lon.max()) * file_res:.3g}°)")
    lat_ok = (ds["latitude"].values >= domain.lat_min - res / 2) & (ds["latitude"].values <= domain.lat_max + res / 2)
    lon_ok = (ds["longitude"].values >= domain.lon_min - res / 2) & (ds["longitude"].values <= domain.lon_max + res / 2)
    if not lat_ok.any() or not lon_ok.any():
        lo, hi = float(ds["latitude"].min()), float(ds["latitude"].max())
        lonr = wrap_longitude(ds["longitude"].values, -180.0)
        raise fail(source, f"no overlap with the domain (file covers {lo:g}…{hi:g}°N, {lonr.min():g}…{lonr.max():g}°E; "
                           f"domain {domain.lat_min:g}…{domain.lat_max:g}°N, {domain.lon_min:g}…{domain.lon_max:g}°E)")
    same_grid = (ds.sizes["latitude"] == domain.latitude.size and ds.sizes["longitude"] == domain.longitude.size
                 and np.allclose(ds["latitude"].values, domain.latitude, atol=0.05 * res, rtol=0)
                 and np.allclose(ds["longitude"].values, domain.longitude, atol=0.05 * res, rtol=0))
    if k == 1 and same_grid:
        out = ds
    elif k == 1:
        out = ds.reindex(latitude=domain.latitude, longitude=domain.longitude, method="nearest", tolerance=0.05 * res)
    else:
        out = _block_mean(ds.isel(latitude=lat_ok, longitude=lon_ok), domain, file_res)
    out = out.assign_coords(domain.coords())
    covered = _coverage(ds, domain)
    if covered < 1.0:
        warnings.warn(f"{source}: covers only {covered:.0%} of the domain's cells; the rest are NaN", stacklevel=3)
    return out


def _coverage(ds: xr.Dataset, domain: Domain) -> float:
    h = domain.resolution / 2 + 1e-9
    la, lo = ds["latitude"].values, ds["longitude"].values
    n_lat = sum(bool(np.any(np.abs(la - c) <= h)) for c in domain.latitude)
    n_lon = sum(bool(np.any(np.abs(lo - c) <= h)) for c in domain.longitude)
    return n_lat * n_lon / domain.n_cells


def _block_weights(file_axis: np.ndarray, dom_axis: np.ndarray, res: float, file_res: float, dim: str) -> xr.DataArray:
    dist = np.abs(file_axis[:, None] - dom_axis[None, :])
    edge = np.isclose(dist, res / 2, atol=1e-3 * file_res)
    w = np.where(edge, 0.5, np.where(dist < res / 2, 1.0, 0.0))
    return xr.DataArray(w, dims=(dim, f"{dim}_out"))


def _block_mean(ds: xr.Dataset, domain: Domain, file_res: float) -> xr.Dataset:
    """Area-weighted block means of a finer grid (NaN cells ignored); lazy for dask-backed input."""
    wy = _block_weights(ds["latitude"].values, domain.latitude, domain.resolution, file_res, "latitude")
    wx = _block_weights(ds["longitude"].values, domain.longitude, domain.resolution, file_res, "longitude")
    out = {}
    for name, da in ds.data_vars.items():
        num = xr.dot(da.fillna(0.0), wy, wx, dim=["latitude", "longitude"])
        den = xr.dot(da.notnull().astype("float64"), wy, wx, dim=["latitude", "longitude"])
        res = (num / den.where(den > 0)).astype(da.dtype)
        res = res.rename({"latitude_out": "latitude", "longitude_out": "longitude"})
        res.attrs = da.attrs
        out[name] = res.transpose(*[d for d in da.dims])
    return xr.Dataset(out, attrs=ds.attrs)


# ---- pieces and how they combine --------------------------------------------------------------------
@dataclass
class Piece:
    """One file's contribution: dynamic variables on month-start times and/or invariant 2-D variables."""

    source: str
    dynamic: xr.Dataset | None = None
    static: xr.Dataset | None = None
    attrs: dict = field(default_factory=dict)
    close: Callable[[], None] | None = None


# A file whose data fit in this many bytes is read whole for the NaN check (one small dask graph per file);
# bigger files are reduced lazily, chunk by chunk, so memory stays bounded by the chunk size.
EAGER_CHECK_BYTES = 512 * 2**20


def _nan_checks(piece: Piece) -> dict[str, np.ndarray]:
    """Per variable: has a non-NaN value over the domain (per month for dynamic variables)."""
    checks: dict[str, np.ndarray] = {}
    for part, dims in ((piece.dynamic, ("latitude", "longitude")), (piece.static, None)):
        if part is None or not part.data_vars:
            continue
        if part.nbytes <= EAGER_CHECK_BYTES:
            part = part.compute(scheduler="synchronous")
        for n, da in part.data_vars.items():
            checks[n] = np.asarray(da.notnull().any(dim=dims).values)
    return checks


def _raise_if_all_nan(piece: Piece, done: dict) -> None:
    for n, ok in done.items():
        if not ok.all():
            if ok.ndim == 0:
                raise fail(piece.source, f"variable '{n}' is all-NaN over the domain")
            first = _fmt_month(piece.dynamic["time"].values[~ok][0])
            raise fail(piece.source, f"variable '{n}' is all-NaN over the domain in {first} "
                                     f"({int((~ok).sum())} of {ok.size} months)")


def check_not_all_nan(piece: Piece) -> None:
    """Each variable must have at least one finite value over the domain in every month (one read pass)."""
    _raise_if_all_nan(piece, _nan_checks(piece))


def check_pieces_not_all_nan(pieces: Sequence[Piece], reading: Callable[[str], AbstractContextManager]) -> None:
    """:func:`check_not_all_nan` for many files, file by file inside ``reading(source)`` (the reader's error
    translator) so a read error names the file. Reading each small file whole was 5x faster than one dask
    graph over all files' lazy reductions (thousands of tiny tasks)."""
    for p in pieces:
        with reading(p.source):
            done = _nan_checks(p)
        _raise_if_all_nan(p, done)


def combine_pieces(pieces: Sequence[Piece]) -> xr.Dataset:
    """Join per-file pieces: concat along time within each variable set, merge across sets, check months."""
    dynamic = [p for p in pieces if p.dynamic is not None and p.dynamic.data_vars]
    groups: dict[frozenset, list[Piece]] = {}
    for p in dynamic:
        groups.setdefault(frozenset(p.dynamic.data_vars), []).append(p)
    blocks: list[tuple[str, xr.Dataset]] = []
    for group in groups.values():
        group.sort(key=lambda p: p.dynamic["time"].values[0])
        seen: dict[np.datetime64, str] = {}
        for p in group:
            for t in p.dynamic["time"].values:
                if t in seen:
                    raise fail(p.source, f"duplicate month {_fmt_month(t)} (also in {seen[t]})")
                seen[t] = p.source
        ds = group[0].dynamic if len(group) == 1 else xr.concat(
            [p.dynamic for p in group], dim="time", data_vars="all", coords="minimal", compat="override", join="exact")
        label = group[0].source if len(group) == 1 else f"{group[0].source} (+{len(group) - 1} files)"
        check_months_contiguous(ds["time"].values, label)
        blocks.append((label, ds))
    out = xr.Dataset()
    if blocks:
        ref_label, ref = blocks[0]
        for label, ds in blocks[1:]:
            if not np.array_equal(ds["time"].values, ref["time"].values):
                raise fail(label, f"covers {_fmt_month(ds['time'].values[0])}…{_fmt_month(ds['time'].values[-1])} "
                                  f"but {ref_label} covers {_fmt_month(ref['time'].values[0])}…"
                                  f"{_fmt_month(ref['time'].values[-1])}; all variables need the same months")
        out = xr.merge([ds for _, ds in blocks], compat="override", join="exact", combine_attrs="override")
    statics = [p.static for p in pieces if p.static is not None and p.static.data_vars]
    for st in statics:
        for name, da in st.data_vars.items():
            if name not in out:  # first file that provides an invariant wins
                out[name] = da
    if "z" in out and "elevation" not in out:
        out["elevation"] = (out["z"] / GRAVITY).astype("float32")
        out["elevation"].attrs = {"units": "m", "long_name": LONG_NAMES["elevation"]}
    return out


def finish(ds: xr.Dataset, pieces: Sequence[Piece], closers: Sequence[Callable[[], None]]) -> xr.Dataset:
    """Coordinate attrs, ``source`` naming the files, and a close() that releases every file handle."""
    for c in ("latitude", "longitude"):
        ds[c].attrs = {"units": "degrees_north" if c == "latitude" else "degrees_east", "standard_name": c}
    if "time" in ds.coords:
        ds["time"].attrs = {"standard_name": "time", "long_name": "first day of the month"}
    names = [p.source for p in pieces if p.dynamic is not None or p.static is not None]
    # A SNAP folder is thousands of files: name the first and last rather than all of them.
    ds.attrs["source"] = ", ".join(names) if len(names) <= 12 else f"{len(names)} files: {names[0]} … {names[-1]}"

    def _close() -> None:
        for c in closers:
            c()

    ds.set_close(_close)
    return ds


def open_pieces(files: Sequence[Path], readers: Sequence[FormatReader],
                domain: Domain | None) -> tuple[list[Piece], Domain]:
    """Open every file with its reader, closing all handles if any file fails."""
    pieces: list[Piece] = []
    try:
        for path in files:
            reader = pick_reader(path, readers)
            piece = reader.open(path, domain=domain)
            pieces.append(piece)
            if domain is None:
                domain = piece.attrs.pop("_domain")
        return pieces, domain  # type: ignore[return-value]
    except BaseException:
        for p in pieces:
            if p.close:
                p.close()
        raise
