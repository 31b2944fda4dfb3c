"""Synthetic CMIP5 GCMs on coarse grids, written as ESGF-style NetCDF.

A GCM sees the same forced signal as the true climate (scaled by its own sensitivity), its own weather
(own patterns and series) and seasonally varying, spatially smooth biases. Its climatology is the area
mean of the fine-grid true climatology over each coarse cell (sea included, as GCMs are global).
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..domain import Domain
from ..io.atomic import atomic_path
from ..snow import snowpack
from . import climate as C
from .fields import albers_km, random_fourier_field
from .statics import build_statics

MAX_HELPER_RES = 0.25  # the fine helper grid tiles every GCM cell exactly, at ≤ this spacing
FILL = np.float32(1.0e20)


@dataclass(frozen=True)
class GcmSpec:
    name: str
    dlat: float
    dlon: float
    calendar: str             # "noleap" or "360_day"
    t_bias_mean: float        # °C
    t_bias_winter: float      # extra °C in January (negative of it in July)
    p_bias: float             # multiplicative precipitation bias
    sensitivity: float        # × the true forced signal
    variability_scale: float


KNOWN: dict[str, GcmSpec] = {
    "SYN-ESM-A": GcmSpec("SYN-ESM-A", 1.0, 1.25, "noleap", -1.4, -1.1, 1.25, 1.08, 1.1),
    "SYN-ESM-B": GcmSpec("SYN-ESM-B", 1.25, 1.875, "360_day", 1.1, 0.9, 0.82, 0.93, 0.9),
}


def gcm_spec(name: str) -> GcmSpec:
    """The spec of a named GCM; unknown names get a deterministic spec derived from the name."""
    if name in KNOWN:
        return KNOWN[name]
    h = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    sign = 1.0 if h % 2 else -1.0
    return GcmSpec(name, 1.0 if h % 3 else 1.25, 1.25 if h % 3 else 1.875, "noleap" if h % 2 else "360_day",
                   sign * (0.8 + (h % 7) * 0.2), sign * 0.8, 0.75 + (h % 11) * 0.06, 0.9 + (h % 5) * 0.05, 1.0)


def gcm_seed(seed: int, name: str) -> int:
    return (seed * 7919 + zlib.crc32(name.encode())) % (2**31)


def gcm_axes(spec: GcmSpec, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Ascending latitude and 0–360 longitude centres covering ``domain`` plus one cell of margin."""
    lat0 = np.floor((domain.lat_min - spec.dlat) / spec.dlat) * spec.dlat + spec.dlat / 2
    lat = np.arange(lat0, domain.lat_max + spec.dlat, spec.dlat)
    lon0 = np.floor((domain.lon_min - spec.dlon) / spec.dlon) * spec.dlon
    lon = np.arange(lon0, domain.lon_max + spec.dlon + 1e-9, spec.dlon)
    return np.round(lat, 6), np.round(lon % 360.0, 6)


def _coarse_climate(spec: GcmSpec, lat: np.ndarray, lon: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Area means of the fine climate over each GCM cell (cells flattened lat-major)."""
    sy = next(k for k in range(1, 200) if spec.dlat / k <= MAX_HELPER_RES + 1e-9
              and abs(spec.dlon * k / spec.dlat - round(spec.dlon * k / spec.dlat)) < 1e-6)
    res = spec.dlat / sy
    sx = int(round(spec.dlon / res))
    lon_c = np.unwrap(np.deg2rad(lon), period=2 * np.pi)
    lon_c = np.rad2deg(lon_c)
    helper = Domain(float(lat[0] - spec.dlat / 2 + res / 2), float(lat[-1] + spec.dlat / 2 - res / 2),
                    float(lon_c[0] - spec.dlon / 2 + res / 2), float(lon_c[-1] + spec.dlon / 2 - res / 2), res)
    if helper.shape != (lat.size * sy, lon.size * sx):
        raise RuntimeError(f"GCM helper grid {helper.shape} does not tile {lat.size}x{lon.size} cells")
    st = build_statics(helper, seed)
    flat = {k: st[k].values[::-1].reshape(-1) for k in ("elevation", "m_open", "m_ice", "lsm")}  # ascending lat
    lat2, lon2 = np.meshgrid(helper.latitude[::-1], helper.longitude, indexing="ij")
    params = C.climate_parameters(lat2.reshape(-1), lon2.reshape(-1), flat["elevation"], flat["m_open"], flat["m_ice"])
    t, p = C.climatology(params)
    ny, nx = lat.size, lon.size

    def block_mean(a: np.ndarray) -> np.ndarray:
        a = a.reshape(ny, sy, nx, sx, *a.shape[1:])
        return a.mean(axis=(1, 3)).reshape(ny * nx, *a.shape[4:])

    out = {k: block_mean(v) for k, v in params.items() if k in ("warm_amp", "sigma_t")}
    out["t_clim"], out["p_clim"], out["lsm"] = block_mean(t), block_mean(p), block_mean(flat["lsm"])
    return out


def _time_values(years: np.ndarray, months: np.ndarray, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    """(mid-month time, bounds) in days since 1850-01-01 for a noleap or 360_day calendar."""
    if calendar == "360_day":
        start = (years - 1850) * 360.0 + (months - 1) * 30.0
        length = np.full(years.shape, 30.0)
    else:
        cum = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365], dtype="float64")
        start = (years - 1850) * 365.0 + cum[months - 1]
        length = cum[months] - cum[months - 1]
    bnds = np.stack([start, start + length], axis=1)
    return bnds.mean(axis=1), bnds


def days_in_month(months: np.ndarray, calendar: str) -> np.ndarray:
    if calendar == "360_day":
        return np.full(months.shape, 30.0)
    return np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype="float64")[months - 1]


_VARS = {
    "tas": ("Amon", "air_temperature", "Near-Surface Air Temperature", "K", "atmos"),
    "pr": ("Amon", "precipitation_flux", "Precipitation", "kg m-2 s-1", "atmos"),
    "snw": ("LImon", "surface_snow_amount", "Surface Snow Amount", "kg m-2", "landIce land"),
}
_EXPERIMENT = {"historical": "historical", "rcp26": "RCP2.6", "rcp45": "RCP4.5", "rcp60": "RCP6.0", "rcp85": "RCP8.5"}


def cmip5_filename(var: str, gcm: str, exp: str, y0: int, y1: int) -> str:
    return f"{var}_{_VARS[var][0]}_{gcm}_{exp}_r1i1p1_{y0}01-{y1}12.nc"


def _write_cmip5(path: Path, var: str, data: np.ndarray, spec: GcmSpec, exp: str, lat: np.ndarray, lon: np.ndarray,
                 axis: C.MonthAxis, seed: int) -> None:
    table, std, long, units, realm = _VARS[var]
    tvals, tb = _time_values(axis.year, axis.month, spec.calendar)
    dlat, dlon = spec.dlat, spec.dlon
    ds = xr.Dataset(
        {
            var: (("time", "lat", "lon"), data, {
                "standard_name": std, "long_name": long, "units": units, "cell_methods": "time: mean",
                "cell_measures": "area: areacella", "missing_value": FILL, "original_name": var.upper()}),
            "time_bnds": (("time", "bnds"), tb),
            "lat_bnds": (("lat", "bnds"), np.stack([lat - dlat / 2, lat + dlat / 2], 1)),
            "lon_bnds": (("lon", "bnds"), np.stack([lon - dlon / 2, lon + dlon / 2], 1)),
        },
        coords={
            "time": ("time", tvals, {"bounds": "time_bnds", "units": "days since 1850-01-01 00:00:00",
                                     "calendar": spec.calendar, "axis": "T", "long_name": "time", "standard_name": "time"}),
            "lat": ("lat", lat, {"bounds": "lat_bnds", "units": "degrees_north", "axis": "Y", "long_name": "latitude",
                                 "standard_name": "latitude"}),
            "lon": ("lon", lon, {"bounds": "lon_bnds", "units": "degrees_east", "axis": "X", "long_name": "longitude",
                                 "standard_name": "longitude"}),
        },
    )
    if var == "tas":
        ds = ds.assign_coords(height=((), 2.0, {"units": "m", "axis": "Z", "positive": "up", "long_name": "height",
                                                "standard_name": "height"}))
        ds[var].attrs["coordinates"] = "height"
    rng_id = uuid.UUID(int=int(hashlib.sha256(f"{seed}{path.name}".encode()).hexdigest()[:32], 16))
    ds.attrs = {
        "institution": "geothaw synthetic climate model (not a real GCM)", "institute_id": "GEOTHAW",
        "experiment_id": exp, "experiment": _EXPERIMENT.get(exp, exp), "model_id": spec.name, "source": f"{spec.name} synthetic",
        "forcing": "GHG, SA, Oz, LU, Sl, Vl (via RCP total radiative forcing)",
        "parent_experiment_id": "piControl" if exp == "historical" else "historical", "parent_experiment_rip": "r1i1p1",
        "branch_time": 0.0, "contact": "geothaw", "initialization_method": np.int32(1), "physics_version": np.int32(1),
        "realization": np.int32(1), "frequency": "mon", "modeling_realm": realm, "product": "output",
        "project_id": "CMIP5", "table_id": f"Table {table} (synthetic)", "tracking_id": str(rng_id),
        "Conventions": "CF-1.4", "cmor_version": "2.8.0",
        "title": f"{spec.name} model output prepared for CMIP5 {_EXPERIMENT.get(exp, exp)}",
        "comment": "Synthetic GCM of the geothaw embedded world; biases and variability are by design.",
    }
    enc = {var: {"dtype": "float32", "_FillValue": FILL, "zlib": True, "complevel": 1},
           "time": {"dtype": "float64", "_FillValue": None}, "lat": {"_FillValue": None}, "lon": {"_FillValue": None},
           "time_bnds": {"_FillValue": None}, "lat_bnds": {"_FillValue": None}, "lon_bnds": {"_FillValue": None}}
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4_CLASSIC", encoding=enc, unlimited_dims=["time"])


def build_gcm(name: str, domain: Domain, seed: int, start_year: int, end_year: int, scenarios: list[str],
              out_dir: Path) -> dict[str, list[Path]]:
    """Write one GCM's historical (start_year–2005) and scenario (2006–end_year) files; returns paths by experiment."""
    spec = gcm_spec(name)
    gseed = gcm_seed(seed, name)
    lat, lon = gcm_axes(spec, domain)
    cc = _coarse_climate(spec, lat, lon, seed)
    lat2, lon2 = np.meshgrid(lat, lon, indexing="ij")
    x, y = albers_km(lon2.reshape(-1), lat2.reshape(-1))
    t_modes, p_modes = C.variability_patterns(x, y, gseed)
    t_ser, p_ser = C.variability_series(gseed, max(end_year, 2100))
    m = np.arange(1, 13)
    bias_field = random_fourier_field(x, y, 900.0, gseed + 5)
    bias_t = (spec.t_bias_mean + spec.t_bias_winter * np.cos(2 * np.pi * (m - 1) / 12))[None, :] + 0.7 * bias_field[:, None]
    bias_p = np.clip(spec.p_bias * np.exp(0.15 * random_fourier_field(x, y, 1200.0, gseed + 6)), 0.7, 1.4)[:, None].repeat(12, 1)
    params = {"warm_amp": cc["warm_amp"], "sigma_t": cc["sigma_t"]}
    full = C.MonthAxis(start_year, end_year)
    hist = C.MonthAxis(start_year, C.HIST_END)
    fut = C.MonthAxis(C.HIST_END + 1, end_year)
    ny, nx = lat.size, lon.size
    sea = cc["lsm"] < 0.5
    paths: dict[str, list[Path]] = {}
    gdir = out_dir / name
    for scen in scenarios:
        t, p = C.generate_forcing(params, full, C.global_warming_monthly(scen, full), t_modes, p_modes, t_ser, p_ser,
                                  bias_t=bias_t, bias_p=bias_p, sensitivity=spec.sensitivity,
                                  variability_scale=spec.variability_scale, clim=(cc["t_clim"], cc["p_clim"]))
        days = days_in_month(full.month, spec.calendar)
        swe, _, _ = snowpack(t, p, days)
        fields = {"tas": t + 273.15, "pr": p / (days * 86400.0), "snw": np.where(sea[:, None], FILL, swe * 1000.0)}
        parts = [("historical", hist)] if "historical" not in paths else []
        parts.append((scen, fut))
        for exp, ax in parts:
            sl = slice(ax.offset_in(full), ax.offset_in(full) + ax.n)
            files = []
            for var, arr in fields.items():
                data = arr[:, sl].T.reshape(ax.n, ny, nx).astype("float32")
                f = gdir / cmip5_filename(var, name, exp, ax.start_year, ax.end_year)
                _write_cmip5(f, var, data, spec, exp, lat, lon, ax, seed)
                files.append(f)
            paths[exp] = files
    sftlf = xr.Dataset({"sftlf": (("lat", "lon"), (100 * cc["lsm"].reshape(ny, nx)).astype("float32"),
                                  {"standard_name": "land_area_fraction", "units": "%", "long_name": "Land Area Fraction"})},
                       coords={"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})},
                       attrs={"model_id": name, "experiment_id": "historical", "project_id": "CMIP5", "frequency": "fx"})
    with atomic_path(gdir / f"sftlf_fx_{name}_historical_r0i0p0.nc", suffix=".nc") as tmp:
        sftlf.to_netcdf(tmp, engine="netcdf4")
    return paths
