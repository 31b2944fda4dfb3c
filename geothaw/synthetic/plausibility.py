"""Regional plausibility figures of a built synthetic world (what the Inputs issue asks to report).

Regions are coarse boxes on the continuous-longitude grid: the North Slope (≥ 69 N), the interior
(63–67 N, 200–219 E) and the maritime south-coast lowlands. Figures are over the last ``years`` of the
record and read lazily from the zarr store, so memory stays bounded for the full 0.1° world.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

LAYERS = ("stl1", "stl2", "stl3", "stl4")


def region_masks(statics: xr.Dataset) -> dict[str, np.ndarray]:
    """Boolean (lat, lon) masks of the three reporting regions (land cells only)."""
    shape = statics["land"].shape
    lat = statics["latitude"].values[:, None] * np.ones(shape)
    lon = statics["longitude"].values[None, :] * np.ones(shape)
    land = statics["land"].values == 1
    return {
        "north_slope": land & (lat >= 69) & (lon > 190) & (lon < 219),
        "interior": land & (lat >= 63) & (lat < 67) & (lon > 200) & (lon < 219),
        "south_coast": land & (lat < 61) & (lon > 205) & (statics["m_open"].values > 0.3)
        & (statics["elevation"].values < 500),
    }


def world_plausibility(world_dir: str | Path, years: int = 30) -> dict:
    """Permafrost extent, active-layer thickness and the damping of the annual wave, per region."""
    world_dir = Path(world_dir)
    with xr.open_dataset(world_dir / "statics.nc") as st:
        statics = st.load()
    rec = xr.open_zarr(world_dir / "truth" / "record.zarr", consolidated=False)
    last = int(rec["time.year"].max())
    rec = rec.sel(time=slice(f"{last - years + 1}-01-01", None))
    magt4 = rec["stl4"].mean("time").values
    alt = rec["thaw_depth"].groupby("time.year").max().mean("year").values
    clim = rec[["t2m", *LAYERS]].groupby("time.month").mean().compute()
    half_range = {v: ((clim[v].max("month") - clim[v].min("month")) / 2).values for v in clim.data_vars}
    out: dict = {"period": [last - years + 1, last], "regions": {}}
    for name, m in region_masks(statics).items():
        pf = m & (magt4 < 0)
        out["regions"][name] = {
            "land_cells": int(m.sum()),
            "permafrost_fraction": float(np.mean(magt4[m] < 0)) if m.any() else None,
            "magt4_median_c": float(np.median(magt4[m])) if m.any() else None,
            "alt_median_m_where_permafrost": float(np.median(alt[pf])) if pf.any() else None,
            "alt_p10_p90_m_where_permafrost": [float(np.percentile(alt[pf], 10)), float(np.percentile(alt[pf], 90))]
            if pf.any() else None,
            "annual_half_range_c": {v: float(np.nanmean(h[m])) for v, h in half_range.items()} if m.any() else None,
        }
    land = statics["land"].values == 1
    out["land_permafrost_fraction"] = float(np.mean(magt4[land] < 0))
    return out
