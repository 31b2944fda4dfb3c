"""Quantile mapping of GCM forcing onto ERA5-Land with xsdba (additive for t2m, multiplicative for tp).

``BiasAdjustment.train(ref, hist)`` fits one xsdba adjustment per variable grouped by calendar month over the
historical overlap; ``.adjust(sim)`` applies it; ``.save(folder)``/``BiasAdjustment.load(folder)`` round-trip the
trained quantiles through NetCDF + a plain JSON parameter record (never a pickled object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
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


def _method_class(name: str):
    import xsdba

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


@dataclass
class BiasAdjustment:
    """Trained per-variable quantile maps (xsdba objects), plus how they were made."""

    method: str
    nquantiles: int
    adjustments: dict[str, Any] = field(default_factory=dict)

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
            obj.adjustments[var] = klass.train(_prepare(ref[var], var), _prepare(hist[var], var),
                                               nquantiles=nquantiles, kind=KIND[var], group="time.month")
        return obj

    def adjust(self, sim: xr.Dataset) -> xr.Dataset:
        """Bias-adjusted copy of ``sim`` (only the trained variables change; canonical units and attrs kept)."""
        out = sim.copy()
        for var, adj in self.adjustments.items():
            if var not in sim:
                raise InputDataError(f"bias correction: simulation lacks variable '{var}'")
            # xsdba interpolates the monthly factors linearly in time; month-start stamps would blend in half of
            # the previous month's map, so adjust on mid-month stamps and restore the canonical ones.
            prepared = _prepare(sim[var], var)
            prepared = prepared.assign_coords(time=prepared["time"] + np.timedelta64(14, "D"))
            adjusted = adj.adjust(prepared, interp="linear", extrapolation="constant")
            adjusted = adjusted.assign_coords(time=sim["time"])
            if var == "tp":
                adjusted = adjusted.where(adjusted > TP_FLOOR * 1.0001, 0.0)
            out[var] = adjusted.astype("float32").where(sim[var].notnull()).assign_attrs(
                {**sim[var].attrs, "bias_correction": f"xsdba {self.method} ({self.nquantiles} quantiles, kind {KIND[var]}, by month)"})
        return out

    # ---- persistence: NetCDF of the trained quantiles + JSON of the parameters -------------------------------
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        record = {"method": self.method, "nquantiles": self.nquantiles, "variables": {}}
        for var, adj in self.adjustments.items():
            params = {k: (v.name if k == "group" else v) for k, v in adj.parameters.items()}
            record["variables"][var] = params
            ds = adj.ds.copy()
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
            adj = klass(_trained=True, **params)
            with xr.open_dataset(folder / f"qm_{var}.nc") as ds:
                adj.set_dataset(ds.load())
            obj.adjustments[var] = adj
        return obj
