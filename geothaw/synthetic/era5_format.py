"""Write canonical fields as ERA5-Land files in the new-CDS NetCDF4 layout (what users download today).

Layout: dims ``valid_time, latitude, longitude``; ``valid_time`` int64 seconds since 1970-01-01; scalar
coord ``number`` = 0; ``expver`` strings along ``valid_time``; latitude descending; longitudes in
−180…180 in the west-to-east order of the request (so they jump from 179.9 to −180.0 across the
antimeridian, as a request crossing 180° returns them); float32, NaN over sea; internal zlib compression.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..domain import to_pm180
from ..io.atomic import atomic_path

GRIB_MISSING = 3.4028234663852886e38
# short name → (GRIB shortName, paramId, long name, ERA5 units)
ERA5_VARS: dict[str, tuple[str, int, str, str]] = {
    "t2m": ("2t", 167, "2 metre temperature", "K"),
    "tp": ("tp", 228, "Total precipitation", "m"),
    "sd": ("sd", 141, "Snow depth water equivalent", "m of water equivalent"),
    "sde": ("sde", 3066, "Snow depth", "m"),
    "rsn": ("rsn", 33, "Snow density", "kg m**-3"),
    "stl1": ("stl1", 139, "Soil temperature level 1", "K"),
    "stl2": ("stl2", 170, "Soil temperature level 2", "K"),
    "stl3": ("stl3", 183, "Soil temperature level 3", "K"),
    "stl4": ("stl4", 236, "Soil temperature level 4", "K"),
    "swvl1": ("swvl1", 39, "Volumetric soil water layer 1", "m**3 m**-3"),
    "swvl2": ("swvl2", 40, "Volumetric soil water layer 2", "m**3 m**-3"),
    "swvl3": ("swvl3", 41, "Volumetric soil water layer 3", "m**3 m**-3"),
    "swvl4": ("swvl4", 42, "Volumetric soil water layer 4", "m**3 m**-3"),
}
INVARIANTS: dict[str, tuple[str, int, str, str]] = {
    "lsm": ("lsm", 172, "Land-sea mask", "(0 - 1)"),
    "z": ("z", 129, "Geopotential", "m**2 s**-2"),
    "slt": ("slt", 43, "Soil type", "~"),
    "cvh": ("cvh", 28, "High vegetation cover", "(0 - 1)"),
}
ERA5_FIELDS = tuple(ERA5_VARS)
_GLOBAL = {
    "GRIB_centre": "ecmf", "GRIB_centreDescription": "European Centre for Medium-Range Weather Forecasts",
    "GRIB_subCentre": np.int64(0), "Conventions": "CF-1.7",
    "institution": "European Centre for Medium-Range Weather Forecasts",
    "history": "geothaw synthetic Alaska written in the new-CDS ERA5-Land monthly-means NetCDF layout",
}


def era5_filename(year: int) -> str:
    return f"era5land_monthly_{year}.nc"


def _var_attrs(short: str, table: dict, n_points: int, data_type: str = "an") -> dict:
    grib, pid, name, units = table[short]
    return {"GRIB_paramId": np.int64(pid), "GRIB_dataType": data_type, "GRIB_numberOfPoints": np.int64(n_points),
            "GRIB_typeOfLevel": "surface", "GRIB_stepUnits": np.int64(1), "GRIB_stepType": "avgua",
            "GRIB_gridType": "regular_ll", "GRIB_units": units, "GRIB_name": name, "GRIB_shortName": grib,
            "GRIB_missingValue": GRIB_MISSING, "long_name": name, "units": units, "standard_name": "unknown"}


def _frame(times: np.ndarray, lat: np.ndarray, lon_continuous: np.ndarray, expver: list[str]) -> xr.Dataset:
    lon = to_pm180(lon_continuous)
    lon = np.where(np.isclose(lon, -180.0) & (lon_continuous > 0), -180.0, lon)
    return xr.Dataset(coords={
        "number": ((), np.int64(0), {"long_name": "ensemble member numerical id", "units": "1", "standard_name": "realization"}),
        "valid_time": ("valid_time", times.astype("datetime64[ns]"), {"long_name": "time", "standard_name": "time"}),
        "latitude": ("latitude", lat.astype("float64"), {"units": "degrees_north", "standard_name": "latitude",
                                                          "long_name": "latitude", "stored_direction": "decreasing"}),
        "longitude": ("longitude", lon.astype("float64"), {"units": "degrees_east", "standard_name": "longitude",
                                                            "long_name": "longitude"}),
        "expver": ("valid_time", np.asarray(expver, dtype=object), {"long_name": "experiment version"}),
    })


def _encoding(ds: xr.Dataset) -> dict:
    enc: dict = {"valid_time": {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"},
                 "latitude": {"_FillValue": None}, "longitude": {"_FillValue": None}, "number": {"_FillValue": None}}
    for v in ds.data_vars:
        enc[v] = {"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True, "complevel": 1, "shuffle": True,
                  "chunksizes": (1, ds.sizes["latitude"], ds.sizes["longitude"])}
    return enc


def to_era5_units(name: str, values: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Canonical units (°C, mm month-1) → ERA5 units (K, m per day); ``days`` broadcast on axis 0."""
    if name == "t2m" or name.startswith("stl"):
        return values + np.float32(273.15)
    if name == "tp":
        return values / (1000.0 * days.reshape(-1, *([1] * (values.ndim - 1))))
    return values


def write_era5_year(path: Path, canonical: xr.Dataset, lon_continuous: np.ndarray) -> Path:
    """Write one year of canonical monthly fields (``time`` month starts, °C, mm month-1) as a CDS file."""
    times = canonical["time"].values
    days = canonical["time"].dt.days_in_month.values.astype("float64")
    lat = canonical["latitude"].values
    ds = _frame(times, lat, lon_continuous, ["0001"] * len(times))
    n_points = lat.size * lon_continuous.size
    for name in ERA5_FIELDS:
        if name not in canonical:
            continue
        vals = to_era5_units(name, canonical[name].values.astype("float32"), days).astype("float32")
        ds[name] = (("valid_time", "latitude", "longitude"), vals, _var_attrs(name, ERA5_VARS, n_points))
    ds.attrs = dict(_GLOBAL)
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))
    return path


def write_invariants(path: Path, statics: xr.Dataset) -> Path:
    """``lsm``, ``z``, ``slt`` and ``cvh`` with one ``valid_time``, defined everywhere (sea included), like ECMWF's file."""
    from .statics import GRAVITY

    lat, lon = statics["latitude"].values, statics["longitude"].values
    ds = _frame(np.array(["1950-01-01"], dtype="datetime64[ns]"), lat, lon, ["0001"])
    fields = {"lsm": statics["lsm"].values, "z": statics["elevation"].values * GRAVITY, "slt": statics["slt"].values,
              "cvh": statics["cvh"].values}
    for name, vals in fields.items():
        ds[name] = (("valid_time", "latitude", "longitude"), np.asarray(vals, dtype="float32")[None],
                    _var_attrs(name, INVARIANTS, lat.size * lon.size, "an"))
    ds.attrs = dict(_GLOBAL)
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=_encoding(ds))
    return path
