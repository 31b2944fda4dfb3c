"""Quantile mapping of GCM forcing onto ERA5-Land with xsdba (additive for t2m, multiplicative for tp).

``BiasAdjustment.train(ref, hist)`` fits one xsdba adjustment per variable and calendar month over the
historical overlap; ``.adjust(sim)`` applies it; ``.save(folder)``/``BiasAdjustment.load(folder)`` round-trip the
trained quantiles through NetCDF + a plain JSON parameter record (never a pickled object).

Why one adjustment per calendar month instead of xsdba's ``group="time.month"``: with monthly grouping xsdba
interpolates the maps in 2-D (quantile × time of year) with a Delaunay triangulation per grid cell, which took
minutes for a few hundred cells, and blends in the neighbouring month's map for month-start time stamps.
Twelve ``group="time"`` adjustments use 1-D interpolation per cell and keep each month's map to itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputDataError
from .io.atomic import write_text_atomic
from .io.writers import write_netcdf

KIND = {"t2m": "+", "tp": "*"}
# xsdba needs units it can parse; the canonical units are mapped to pint-friendly spellings for training only.
XSDBA_UNITS = {"t2m": "degC", "tp": "mm"}
METHODS = ("EmpiricalQuantileMapping", "DetrendedQuantileMapping", "QuantileDeltaMapping")
TP_FLOOR = 1e-3  # mm/month: multiplicative mapping cannot move a zero; dry months are floored


@lru_cache(maxsize=1)
def _cache_xsdba_kernels() -> None:
    """Switch on numba's disk cache for xsdba's jitted helpers that ship without it.

    xsdba's row-wise quantile wrapper is ``@njit`` without ``cache=True``, so every process compiled it again
    before training a quantile map: 10–30 s here, longer than the quick run's whole bias correction. With the
    cache on, the first run compiles and stores it and later processes load it in ≈ 0.03 s. Where numba finds
    no writable cache folder it keeps compiling in memory, as before.
    """
    from numba.core.dispatcher import Dispatcher
    from xsdba import nbutils

    for obj in vars(nbutils).values():
        if isinstance(obj, Dispatcher):
            try:
                obj.enable_caching()
            except RuntimeError:  # no writable cache location
                pass


def warm_kernels(method: str = "EmpiricalQuantileMapping", nquantiles: int = 50) -> None:
    """Compile (or load from numba's disk cache) the kernels a quantile mapping uses, on a toy problem.

    Shaped like the bias-correction stage's data (float32, ``(time, cell)``), so the same specialisations are
    compiled. ``python -m geothaw.warmup`` runs it in a child process on a fresh clone (``geothaw.warmup``).
    """
    import pandas as pd

    rng = np.random.default_rng(0)
    time = pd.date_range("1981-01-01", periods=120, freq="MS")

    def toy(shift: float) -> xr.Dataset:
        dims = ("time", "cell")
        return xr.Dataset({"t2m": (dims, rng.normal(shift, 3.0, (120, 2)).astype("float32"), {"units": "degC"}),
                           "tp": (dims, rng.gamma(2.0, 15.0, (120, 2)).astype("float32"), {"units": "mm month-1"})},
                          coords={"time": time, "cell": np.arange(2)})

    hist = toy(-2.0)
    BiasAdjustment.train(toy(0.0), hist, method=method, nquantiles=nquantiles).adjust(hist)


def _method_class(name: str):
    import xsdba

    _cache_xsdba_kernels()
    if name not in METHODS:
        raise InputDataError(f"unknown bias-correction method '{name}' (known: {', '.join(METHODS)})")
    return getattr(xsdba, name)


def _prepare(da: xr.DataArray, var: str) -> xr.DataArray:
    da = da.astype("float64")
    if var == "tp":
        da = da.clip(min=TP_FLOOR)
    da = da.chunk({"time": -1}) if da.chunks else da
    return da.assign_attrs(units=XSDBA_UNITS[var])


def _check_overlap(ref: xr.Dataset, hist: xr.Dataset) -> None:
    if ref.sizes["time"] != hist.sizes["time"] or not np.array_equal(ref["time"].values, hist["time"].values):
        raise InputDataError("bias correction needs ref and hist on the same months (the historical overlap); "
                             f"got {ref.sizes['time']} and {hist.sizes['time']} months")
    if ref.sizes["time"] < 12 * 10:
        raise InputDataError(f"bias correction needs at least 10 years of overlap, got {ref.sizes['time'] // 12}")


MONTHS = range(1, 13)


def _month(da: xr.DataArray, m: int) -> xr.DataArray:
    return da.isel(time=np.flatnonzero(da["time"].dt.month.values == m))


@dataclass
class BiasAdjustment:
    """Trained quantile maps (xsdba objects) per variable and calendar month, plus how they were made."""

    method: str
    nquantiles: int
    adjustments: dict[str, dict[int, Any]] = field(default_factory=dict)

    @classmethod
    def train(cls, ref: xr.Dataset, hist: xr.Dataset, *, variables: tuple[str, ...] = ("t2m", "tp"),
              method: str = "EmpiricalQuantileMapping", nquantiles: int = 50) -> "BiasAdjustment":
        _check_overlap(ref, hist)
        klass = _method_class(method)
        obj = cls(method=method, nquantiles=nquantiles)
        for var in variables:
            for name, ds in (("reference", ref), ("GCM historical", hist)):
                if var not in ds:
                    raise InputDataError(f"bias correction: {name} data lack variable '{var}'")
            r, h = _prepare(ref[var], var), _prepare(hist[var], var)
            obj.adjustments[var] = {m: klass.train(_month(r, m), _month(h, m), nquantiles=nquantiles,
                                                   kind=KIND[var], group="time") for m in MONTHS}
        return obj

    def adjust(self, sim: xr.Dataset) -> xr.Dataset:
        """Bias-adjusted copy of ``sim`` (only the trained variables change; canonical units and attrs kept)."""
        out = sim.copy()
        for var, by_month in self.adjustments.items():
            if var not in sim:
                raise InputDataError(f"bias correction: simulation lacks variable '{var}'")
            prepared = _prepare(sim[var], var)
            parts = [by_month[m].adjust(_month(prepared, m), interp="linear", extrapolation="constant")
                     for m in MONTHS if (prepared["time"].dt.month == m).any()]
            adjusted = xr.concat(parts, dim="time").sortby("time").transpose(*sim[var].dims)
            if var == "tp":
                adjusted = adjusted.where(adjusted > TP_FLOOR * 1.0001, 0.0)
            out[var] = adjusted.astype("float32").where(sim[var].notnull()).assign_attrs(
                {**sim[var].attrs, "bias_correction": f"xsdba {self.method} ({self.nquantiles} quantiles, kind {KIND[var]}, by month)"})
        return out

    # ---- persistence: NetCDF of the trained quantiles + JSON of the parameters -------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        record = {"method": self.method, "nquantiles": self.nquantiles, "variables": {}}
        for var, by_month in self.adjustments.items():
            adj = by_month[1]
            record["variables"][var] = {k: (v.name if k == "group" else v) for k, v in adj.parameters.items()}
            ds = xr.concat([by_month[m].ds for m in MONTHS], dim=xr.DataArray(list(MONTHS), dims="month", name="month"))
            ds.attrs = {k: v for k, v in ds.attrs.items() if k not in ("_xsdba_adjustment", "adj_params")}
            write_netcdf(ds, folder / f"qm_{var}.nc")
        write_text_atomic(folder / "bias_adjustment.json", json.dumps(record, indent=2, default=str))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "BiasAdjustment":
        from xsdba.base import Grouper

        folder = Path(folder)
        path = folder / "bias_adjustment.json"
        if not path.exists():
            raise InputDataError(f"no trained bias adjustment in {folder}")
        record = json.loads(path.read_text())
        klass = _method_class(record["method"])
        obj = cls(method=record["method"], nquantiles=int(record["nquantiles"]))
        for var, params in record["variables"].items():
            params = dict(params)
            params["group"] = Grouper(params["group"])
            obj.adjustments[var] = {}
            with xr.open_dataset(folder / f"qm_{var}.nc") as ds:
                ds = ds.load()
            for m in MONTHS:
                adj = klass(_trained=True, **params)
                adj.set_dataset(ds.sel(month=m, drop=True))
                obj.adjustments[var][m] = adj
        return obj


# ---- bias correction at the GCM scale + spatial disaggregation (BCSD) ----------------------------------------
# xsdba's per-cell interpolation costs ~0.5 ms per cell, month and variable, i.e. minutes per scenario on the
# 50,000-cell 0.1° domain. GCMs carry no information below their ~1° grid, so the quantile mapping is done on a
# 1° grid (ERA5-Land averaged up to it) and the corrected anomalies are interpolated back onto 0.1° around
# ERA5-Land's own monthly climatology (Wood et al. 2004, "BCSD"). Fine-scale detail (lapse rates, coasts)
# therefore comes from the reanalysis, and the GCM contributes its bias-corrected change and variability.
COARSE_RES_DEG = 1.0


def coarse_factor(resolution: float) -> int:
    return max(1, int(round(COARSE_RES_DEG / resolution)))


COARSE_SLAB_ROWS = 8  # coarse rows computed at once: memory follows a slab of the record, not the domain


def to_coarse(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Moving ``factor``×``factor`` cell mean (NaN-skipping), sampled at every ``factor``-th cell centre.

    Only the windows that are kept are averaged (a strided view, no copy), in slabs of rows read into memory
    with a halo of ``factor`` rows: the same values as a rolling mean taken everywhere and sampled after, bit
    for bit, for 1/factor² of the work (the full default's bias-correction stage: 65 s with dask's rolling
    graph, 13 s with this)."""
    if factor == 1:
        return ds
    ny = ds.sizes["latitude"]
    keep = np.arange(0, ny, factor)
    parts = []
    for k in range(0, keep.size, COARSE_SLAB_ROWS):
        rows = keep[k:k + COARSE_SLAB_ROWS]
        lo, hi = max(0, rows[0] - factor), min(ny, rows[-1] + factor + 1)  # the halo holds every kept window whole
        slab = ds.isel(latitude=slice(lo, hi)).load()
        parts.append(slab.map(_window_mean_at, factor=factor, rows=rows - lo))
    return xr.concat(parts, dim="latitude", data_vars="all", coords="minimal", compat="override")


def _window_mean_at(da: xr.DataArray, factor: int, rows: np.ndarray) -> xr.DataArray:
    """The centred window mean at ``rows`` and every ``factor``-th column of ``da``."""
    windows = da.rolling(latitude=factor, longitude=factor, center=True).construct(latitude="_wy", longitude="_wx")
    windows = windows.isel(latitude=rows, longitude=slice(None, None, factor))
    with np.errstate(invalid="ignore"):  # 0 / 0 = NaN where a window holds no value, as min_periods=1 gives
        return windows.sum(["_wy", "_wx"], skipna=True) / windows.count(["_wy", "_wx"]).astype(da.dtype)


def monthly_climatology(ds: xr.Dataset) -> xr.Dataset:
    return ds.groupby("time.month").mean("time")


def _fill_nearest(da: xr.DataArray) -> xr.DataArray:
    """Fill NaN cells with the nearest valid cell's value (per time step), so interpolation reaches the coast."""
    from scipy.ndimage import distance_transform_edt

    valid = np.isfinite(da.isel({d: 0 for d in da.dims if d not in ("latitude", "longitude")}).values)
    if valid.all() or not valid.any():
        return da
    _, (ri, ci) = distance_transform_edt(~valid, return_indices=True)
    arr = da.transpose(..., "latitude", "longitude").values
    return da.transpose(..., "latitude", "longitude").copy(data=arr[..., ri, ci])


def disaggregate(adjusted_coarse: xr.Dataset, ref_clim_coarse: xr.Dataset, ref_clim_fine: xr.Dataset,
                 land_fine: xr.DataArray) -> xr.Dataset:
    """Fine-grid forcing = fine reanalysis climatology + interpolated coarse change (t2m additive, tp ratio)."""
    month = adjusted_coarse["time"].dt.month
    out = {}
    for var in adjusted_coarse.data_vars:
        clim_c = ref_clim_coarse[var].sel(month=month)
        change = adjusted_coarse[var] - clim_c if KIND[var] == "+" else \
            adjusted_coarse[var] / np.maximum(clim_c, TP_FLOOR)
        change = _fill_nearest(change.drop_vars("month"))
        fine_change = change.interp(latitude=land_fine["latitude"], longitude=land_fine["longitude"],
                                    method="linear", kwargs={"fill_value": None})
        clim_f = ref_clim_fine[var].sel(month=month).drop_vars("month")
        fine = clim_f + fine_change if KIND[var] == "+" else clim_f * fine_change
        if var == "tp":
            fine = fine.clip(min=0.0)
        out[var] = fine.where(land_fine).astype("float32").transpose("time", "latitude", "longitude").assign_attrs(
            {**adjusted_coarse[var].attrs, "downscaling": f"BCSD: xsdba quantile mapping at {COARSE_RES_DEG:g}°, "
                                                          "change interpolated onto the reanalysis climatology"})
    return xr.Dataset(out)
