"""Monthly snowpack from air temperature and precipitation (a degree-day model with compaction).

One function, shared by the synthetic world (to make snow) and by the features (to derive snow from
scenario forcing), so history and future are treated identically. The month-by-month accumulation, which
is inherently sequential, is a compiled kernel over all cells.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import xarray as xr

# Degree-day factor for monthly means (mm w.e. per °C per day). Monthly means hide sub-monthly thaw, so the
# rain/snow split is a smooth function of the monthly mean rather than a hard threshold.
DEGREE_DAY_FACTOR = 3.0
SNOW_RAIN_TEMP = 0.5   # °C, centre of the rain/snow transition for monthly means
SNOW_RAIN_WIDTH = 2.5  # °C, width of the transition
# Densities are effective values for the Sturm (1997) conductivity the solver uses: with the Goldstream
# survey's 217 kg m-3 and measured depths the solver's winter ground was 0.7-2 K too warm at all three
# stations, with ~300 kg m-3 unbiased (docs/results.md §7); these give ~310 kg m-3 in Jan-Mar in the interior.
NEW_SNOW_DENSITY = 250.0   # kg m-3
MAX_SNOW_DENSITY = 400.0   # kg m-3, settled seasonal snow (Sturm et al.: taiga ~250, tundra ~300-400)
COMPACTION_PER_MONTH = 0.25  # e-folding fraction towards MAX_SNOW_DENSITY per month
WATER_DENSITY = 1000.0
# Compaction over a dry and a melting month (exp computed once here, not per month and cell in the kernel)
_AGEING = np.exp(-COMPACTION_PER_MONTH * np.array([1.0, 2.0]))


def snowfall_fraction(t2m: np.ndarray) -> np.ndarray:
    """Fraction of monthly precipitation falling as snow, from the monthly mean air temperature (°C)."""
    return 1.0 / (1.0 + np.exp((np.asarray(t2m) - SNOW_RAIN_TEMP) / (SNOW_RAIN_WIDTH / 4.0)))


def snowpack(t2m: np.ndarray, tp: np.ndarray, days_in_month: np.ndarray, *, initial_swe: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Monthly-mean snow water equivalent (m), snow depth (m) and density (kg m-3).

    ``t2m`` (°C) and ``tp`` (mm month-1) have shape (..., n_months) with time last; ``days_in_month`` has
    shape (n_months,). Returns arrays of the same shape as ``t2m`` (float32). Values are the mean of the
    pack at the start and end of each month, which is what a monthly-means product reports.
    """
    # Time goes first so that each month's cells are contiguous in memory (time-last slices touch one value
    # per cache line; 2x slower on a projection block of 4,096 cells).
    t2m = np.moveaxis(np.asarray(t2m, dtype="float64"), -1, 0)
    tp = np.moveaxis(np.nan_to_num(np.asarray(tp, dtype="float64"), nan=0.0), -1, 0)
    days = np.asarray(days_in_month, dtype="float64").reshape((-1,) + (1,) * (t2m.ndim - 1))
    cells = t2m.shape[1:]
    swe = np.zeros(cells) if initial_swe is None else np.broadcast_to(np.asarray(initial_swe, dtype="float64"), cells)
    out_swe = np.empty(t2m.shape, dtype="float32")
    out_rho = np.empty(t2m.shape, dtype="float32")
    snow_in = np.ascontiguousarray(snowfall_fraction(t2m) * tp).reshape(t2m.shape[0], -1)
    melt_pot = np.ascontiguousarray(DEGREE_DAY_FACTOR * np.clip(t2m, 0.0, None) * days).reshape(t2m.shape[0], -1)
    _accumulate(snow_in, melt_pot, np.array(swe, dtype="float64").reshape(-1), _AGEING,
                out_swe.reshape(t2m.shape[0], -1), out_rho.reshape(t2m.shape[0], -1))
    depth = out_swe * WATER_DENSITY / out_rho
    return (np.moveaxis(out_swe, 0, -1), np.moveaxis(depth.astype("float32"), 0, -1), np.moveaxis(out_rho, 0, -1))


@nb.njit(nogil=True, cache=True, error_model="numpy")
def _accumulate(snow_in, melt_pot, swe, ageing, out_swe, out_rho):  # pragma: no cover - compiled
    """The month-by-month snowpack: ``snow_in``, ``melt_pot`` (mm) of shape (months, cells); ``swe`` (mm) the
    starting pack, updated in place; writes ``out_swe`` (m, mean of the month's start and end) and ``out_rho``.

    Compiled without the interpreter lock: as a NumPy loop of ~15 small array operations per month it held the
    lock for most of its time, and the projection's other worker thread, which runs the model as hundreds of
    short torch calls, waited for it at every call. Same arithmetic, operation for operation, as that loop
    (NaN propagates the same way; no fast-math, so no reassociation or fused multiply-adds).
    """
    n_months, n_cells = snow_in.shape
    rho = np.full(n_cells, NEW_SNOW_DENSITY)
    for m in range(n_months):  # months outside, cells inside: each month's cells are contiguous
        for c in range(n_cells):
            start = swe[c]
            snowfall = snow_in[m, c]
            supply = start + snowfall
            pot = melt_pot[m, c]
            melt = np.nan if (pot != pot or supply != supply) else min(pot, supply)  # np.minimum: NaN wins
            end = start + snowfall - melt
            # Density: old snow compacts towards the settled density; new snow mixes in at low density; wet
            # (melting) snow densifies faster.
            aged = MAX_SNOW_DENSITY - (MAX_SNOW_DENSITY - rho[c]) * ageing[1 if melt > 0 else 0]
            kept = start - melt
            kept_old = kept if (kept != kept or kept > 0.0) else 0.0  # np.clip(x, 0, None) keeps NaN
            total = kept_old + snowfall
            rho[c] = (aged * kept_old + NEW_SNOW_DENSITY * snowfall) / total if total > 0 else NEW_SNOW_DENSITY
            out_swe[m, c] = 0.5 * (start + end) / WATER_DENSITY
            out_rho[m, c] = rho[c]
            swe[c] = end


def derive_snow(ds: xr.Dataset) -> xr.Dataset:
    """Add ``sd`` (m w.e.), ``sde`` (m) and ``rsn`` (kg m-3) derived from ``t2m`` and ``tp`` (canonical units)."""
    days = ds["time"].dt.days_in_month.values
    t2m, tp = ds["t2m"], ds["tp"]
    if t2m.chunks is not None:  # the snowpack is sequential in time: one chunk along time, any in space
        t2m, tp = t2m.chunk({"time": -1}), tp.chunk({"time": -1})
    swe, depth, rho = xr.apply_ufunc(
        snowpack, t2m, tp, kwargs={"days_in_month": days},
        input_core_dims=[["time"], ["time"]], output_core_dims=[["time"], ["time"], ["time"]],
        dask="parallelized", output_dtypes=["float32"] * 3,
    )
    mask = ds["t2m"].notnull()
    out = ds.copy()
    out["sd"] = swe.where(mask).transpose(*ds["t2m"].dims).assign_attrs(units="m", long_name="snow depth water equivalent (derived)")
    out["sde"] = depth.where(mask).transpose(*ds["t2m"].dims).assign_attrs(units="m", long_name="snow depth (derived)")
    out["rsn"] = rho.where(mask).transpose(*ds["t2m"].dims).assign_attrs(units="kg m-3", long_name="snow density (derived)")
    return out
