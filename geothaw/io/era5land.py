"""ERA5-Land monthly means → the canonical dataset (see ``docs``/DESIGN "Canonical dataset").

One small reader per on-disk format, tried in a fixed order by :func:`open_era5land`:

* ``netcdf4`` – new CDS (late 2024 on): ``valid_time`` in seconds since 1970, scalar ``number``, string
  ``expver`` along time, float32 with NaN over sea, longitudes −180…180 (a box crossing 180 comes back as
  two blocks, 172…179.9 and −180…−129, possibly in ascending order).
* ``netcdf3`` – old CDS: ``time``, int16 packed with ``scale_factor``/``add_offset``, 0…360 longitudes,
  and for recent months an ``expver`` *dimension* (1 = ERA5, 5 = ERA5T) that is collapsed here.
* ``grib`` – via cfgrib (always ``engine="cfgrib"``; eccodes 2.42 pinned, REFERENCE §6), with no index
  file written next to the user's data.

Files split by year and/or by variable are joined; invariant files (lsm, z, slt) may carry one time step,
which is dropped. Data stay lazy (dask) until used; ``ds.close()`` releases every file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..domain import Domain
from ..errors import InputDataError
from .chunk_cache import NETCDF_CHUNK_CACHE_BYTES, netcdf_chunk_cache
from .canonical import (
    INVARIANTS,
    FormatReader,
    PathLike,
    Piece,
    check_months_unique,
    check_pieces_not_all_nan,
    combine_pieces,
    convert_units,
    expand_paths,
    fail,
    finish,
    infer_domain,
    month_starts,
    open_pieces,
    snap_to_domain,
)

SUFFIXES = (".nc", ".nc4", ".netcdf", ".grib", ".grb", ".grib2", ".grb2")
_SPATIAL = ("latitude", "longitude")
_RENAME = {"lat": "latitude", "lon": "longitude", "valid_time": "time"}
# cfgrib's names for a few parameters differ from the CDS NetCDF short names.
_GRIB_NAMES = {"2t": "t2m", "2d": "d2m"}


@contextlib.contextmanager
def reading(source: str | Path) -> Iterator[None]:
    """Turn any library error while reading ``source`` into a one-line InputDataError naming it."""
    try:
        yield
    except InputDataError:
        raise
    except Exception as exc:
        library = type(exc).__module__.split(".")[0] in ("gribapi", "eccodes", "cfgrib", "h5py", "netCDF4", "rasterio")
        if not (library or isinstance(exc, (OSError, ValueError, RuntimeError, KeyError, IndexError, EOFError))):
            raise  # a programming error, not a bad file
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise fail(source, f"cannot read file (truncated or corrupt?): {msg}") from exc


# ---- layout normalisation (shared by the NetCDF and GRIB readers) -------------------------------------
def _collapse_expver(ds: xr.Dataset) -> xr.Dataset:
    """Old-CDS 4-D quirk: ``expver`` 1 (ERA5) where present, else 5 (ERA5T), else any later version."""
    codes = [int(str(v).strip() or 0) for v in ds["expver"].values]
    order = np.argsort(codes)
    out = ds.isel(expver=int(order[0]))
    for i in order[1:]:
        out = out.combine_first(ds.isel(expver=int(i)))
    return out.drop_vars("expver", errors="ignore")


def normalise_layout(ds: xr.Dataset, source: str) -> xr.Dataset:
    """CDS old/new NetCDF and cfgrib output → dims (time, latitude, longitude) + plain data variables."""
    ds = ds.rename({k: v for k, v in _RENAME.items() if k in ds.variables and v not in ds.variables})
    if "valid_time" in ds.variables and "time" in ds.dims:  # cfgrib: time = month of the mean
        ds = ds.drop_vars("valid_time")
    if "expver" in ds.dims:
        ds = _collapse_expver(ds)
    for d in [d for d in ds.dims if d not in ("time", *_SPATIAL)]:
        if ds.sizes[d] != 1:
            raise fail(source, f"unexpected dimension '{d}' of size {ds.sizes[d]} (expected time, latitude, longitude)")
        ds = ds.isel({d: 0})
    if "time" in ds.coords and "time" not in ds.dims:  # a single message / step squeezed away
        ds = ds.expand_dims("time")
    for c in _SPATIAL:
        if c not in ds.coords:
            raise fail(source, f"no '{c}' coordinate; not a latitude/longitude grid")
    extra = [c for c in ds.coords if c not in ("time", *_SPATIAL)]
    ds = ds.drop_vars(extra)
    drop = [n for n, v in ds.data_vars.items() if not set(_SPATIAL) <= set(v.dims) or n.endswith("_bnds")]
    return ds.drop_vars(drop)


def to_piece(datasets: Sequence[xr.Dataset], domain: Domain | None, source: str) -> Piece:
    """Normalised datasets of one file → a :class:`Piece` in canonical units on the domain grid."""
    dyn: list[xr.Dataset] = []
    static: dict[str, xr.DataArray] = {}
    for ds in datasets:
        for name, da in ds.data_vars.items():
            name = _GRIB_NAMES.get(name, name)
            if name in INVARIANTS:
                static[name] = da.isel(time=0, drop=True) if "time" in da.dims else da
            else:
                if "time" not in da.dims:
                    raise fail(source, f"variable '{name}' has no time axis")
                dyn.append(da.to_dataset(name=name))
    if not dyn and not static:
        raise fail(source, "holds no gridded data variables")
    if domain is None:
        domain = infer_domain(datasets[0], source)
    piece = Piece(source=source, attrs={"_domain": domain})
    if dyn:
        ds = xr.merge(dyn, join="outer", compat="override", combine_attrs="override")
        times = month_starts(ds["time"].values)
        check_months_unique(times, source)
        ds = ds.assign_coords(time=times).sortby("time")
        ds = xr.Dataset({n: convert_units(ds[n], n, source) for n in ds.data_vars})
        piece.dynamic = snap_to_domain(ds.transpose("time", *_SPATIAL), domain, source)
    if static:
        st = xr.Dataset({n: convert_units(da, n, source) for n, da in static.items()})
        piece.static = snap_to_domain(st.transpose(*_SPATIAL), domain, source)
    return piece


# ---- readers ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _XarrayReader(FormatReader):
    engine: str = ""

    def _open(self, path: Path) -> list[xr.Dataset]:
        # Lazy (dask) so a 75-year domain never has to sit in RAM, but in chunks of whole multiples of the
        # file's own (often one month per chunk): a dask task per month cost more than the reads themselves.
        with netcdf_chunk_cache(NETCDF_CHUNK_CACHE_BYTES):
            return [xr.open_dataset(path, engine=self.engine, chunks="auto", decode_timedelta=False)]

    def open(self, path: Path, *, domain: Domain | None) -> Piece:
        with reading(path):
            datasets = self._open(path)
        try:
            with reading(path):
                norm = [normalise_layout(ds, str(path)) for ds in datasets]
                piece = to_piece(norm, domain, str(path))
        except BaseException:
            for ds in datasets:
                ds.close()
            raise

        def _close() -> None:
            for ds in datasets:
                ds.close()

        piece.close = _close
        return piece


@dataclass(frozen=True)
class NetCDF4Reader(_XarrayReader):
    """New-CDS NetCDF4/HDF5 (and any other NetCDF4 in ERA5 layout)."""

    name: str = "netcdf4"
    module: str = "netCDF4"
    magics: tuple[str, ...] = ("netcdf4",)
    suffixes: tuple[str, ...] = (".nc4",)
    engine: str = "netcdf4"  # ~10× faster to open than h5netcdf for many small variables


@dataclass(frozen=True)
class NetCDF3Reader(_XarrayReader):
    """Old-CDS classic NetCDF (int16 packed, 0…360 longitudes, optional expver dimension)."""

    name: str = "netcdf3"
    module: str = "netCDF4"
    magics: tuple[str, ...] = ("netcdf3",)
    suffixes: tuple[str, ...] = (".nc", ".netcdf")
    engine: str = "netcdf4"

    def _open(self, path: Path) -> list[xr.Dataset]:
        out = super()._open(path)
        # netCDF-C reads a cut-off classic file without complaint (zeros past the end), so compare the
        # size the header promises with the size on disk.
        need = sum(v.encoding.get("dtype", v.dtype).itemsize * v.size for v in out[0].variables.values())
        if path.stat().st_size < need:
            out[0].close()
            raise fail(path, f"file is truncated or corrupt: {path.stat().st_size} bytes on disk, "
                             f"the header describes at least {need}")
        return out


@dataclass(frozen=True)
class GribReader(_XarrayReader):
    """GRIB 1/2 through cfgrib: one hypercube per parameter, merged here."""

    name: str = "grib"
    module: str = "cfgrib"
    magics: tuple[str, ...] = ("grib",)
    suffixes: tuple[str, ...] = (".grib", ".grb", ".grib2", ".grb2")
    engine: str = "cfgrib"

    def _open(self, path: Path) -> list[xr.Dataset]:
        import tempfile

        import cfgrib
        from cfgrib.dataset import DatasetBuildError

        # The index goes to a private temp folder: nothing is written next to the user's data, and the
        # per-parameter re-opens of open_datasets reuse one index instead of re-scanning the file each time.
        with tempfile.TemporaryDirectory(prefix="geothaw-grib-") as tmp:
            # errors="raise": a message cut short by a broken download must fail, not be skipped quietly.
            bk = {"indexpath": os.path.join(tmp, "{short_hash}.idx"), "squeeze": False, "errors": "raise"}
            try:  # fast path: every parameter on one hypercube
                return [xr.open_dataset(path, engine="cfgrib", backend_kwargs=bk, chunks={}, decode_timedelta=False)]
            except DatasetBuildError:
                pass
            with warnings.catch_warnings():  # cfgrib's internal xr.merge warns about future defaults
                warnings.simplefilter("ignore", FutureWarning)
                out = cfgrib.open_datasets(str(path), backend_kwargs=bk, chunks={}, decode_timedelta=False)
        if not out:
            raise fail(path, "GRIB file holds no readable messages")
        return out


READERS: tuple[FormatReader, ...] = (NetCDF4Reader(), NetCDF3Reader(), GribReader())


# ---- public entry point ------------------------------------------------------------------------------
def open_era5land(
    paths: PathLike | Iterable[PathLike],
    domain: Domain | None = None,
    *,
    invariants: PathLike | Iterable[PathLike] | None = None,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """Open ERA5-Land monthly-means files (any CDS layout, NetCDF or GRIB) as the canonical dataset.

    ``paths`` and ``invariants`` may each be a file, glob, folder or list. With ``domain=None`` the grid of
    the first data file is used. ``variables`` (short names, e.g. ``("t2m", "tp", "stl1")``) selects and
    requires those dynamic variables. Invariant files must provide ``lsm`` and ``z``; ``elevation`` is derived.
    Raises :class:`~geothaw.errors.InputDataError` naming the file and the problem.
    """
    files = expand_paths(paths, SUFFIXES)
    inv_files = [] if invariants is None else expand_paths(invariants, SUFFIXES)
    pieces, domain = open_pieces([*files, *inv_files], READERS, domain)
    closers = [p.close for p in pieces if p.close]
    try:
        check_pieces_not_all_nan(pieces, reading)
        ds = combine_pieces(pieces)
        data_label = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} files)"
        dynamic = [n for n in ds.data_vars if "time" in ds[n].dims]
        if not dynamic:
            raise fail(data_label, "holds no time-varying ERA5-Land variables (only invariants?)")
        if variables is not None:
            missing = [v for v in variables if v not in ds]
            if missing:
                raise fail(data_label, f"missing variable '{missing[0]}' (found: {', '.join(sorted(dynamic))})")
            ds = ds.drop_vars([n for n in dynamic if n not in variables])
        if inv_files:
            inv_label = inv_files[0] if len(inv_files) == 1 else f"{inv_files[0]} (+{len(inv_files) - 1} files)"
            for need in ("lsm", "z"):
                if need not in ds:
                    raise fail(inv_label, f"missing variable '{need}' in the invariant files")
        return finish(ds, pieces, closers)
    except BaseException:
        for c in closers:
            c()
        raise
