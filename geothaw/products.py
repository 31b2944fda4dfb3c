"""Yearly thaw products from monthly soil temperature at the four ERA5-Land layers.

Input: a DataArray ``soil_temperature`` (°C) with dims (time, depth, latitude, longitude) — monthly, full
years — or (year, month, depth, latitude, longitude). Everything here is vectorised xarray arithmetic and works
lazily on dask chunks (spatial chunks, whole time axis).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .domain import cell_area_albers_km2

DEPTH_MID = np.array([0.035, 0.175, 0.64, 1.945])
DEPTH_BOUNDS = np.array([[0.0, 0.07], [0.07, 0.28], [0.28, 1.0], [1.0, 2.89]])
COLUMN_BOTTOM = 2.89
ERAS = {"1991-2020": (1991, 2020), "2021-2040": (2021, 2040), "2041-2070": (2041, 2070), "2071-2100": (2071, 2100)}
RUNNING_YEARS = 10


def depth_coord() -> dict[str, xr.DataArray]:
    """CF depth coordinate (layer mid-depths, positive down) with bounds."""
    depth = xr.DataArray(DEPTH_MID, dims="depth", attrs={
        "standard_name": "depth", "long_name": "soil layer mid-depth", "units": "m", "positive": "down",
        "axis": "Z", "bounds": "depth_bnds"})
    return {"depth": depth}


def to_year_month(monthly: xr.DataArray) -> xr.DataArray:
    """(time, …) monthly → (year, month, …), refusing partial years."""
    if "year" in monthly.dims:
        return monthly
    n = monthly.sizes["time"]
    if n % 12 or int(monthly["time"].dt.month[0]) != 1:
        raise ValueError(f"monthly soil temperature must cover whole calendar years (got {n} months)")
    years = monthly["time"].dt.year.values[::12]
    monthly = monthly.transpose("time", ...)
    data = monthly.data.reshape((n // 12, 12) + monthly.shape[1:])
    dims = ("year", "month") + monthly.dims[1:]
    coords = {k: v for k, v in monthly.coords.items() if "time" not in v.dims}
    return xr.DataArray(data, dims=dims, coords={**coords, "year": years, "month": np.arange(1, 13)},
                        attrs=monthly.attrs)


def active_layer_thickness(tmax: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Depth (m) of the 0 °C crossing of the yearly-maximum temperature profile, and a 'deeper than the column' flag.

    Linear interpolation between layer mid-depths, anchored by the top layer; 0 when even the top layer stays
    frozen; capped at the 2.89 m column with ``alt_capped`` set when the whole profile thaws.
    """
    t = tmax.transpose("depth", ...)
    vals = t.data
    z = DEPTH_MID.reshape((4,) + (1,) * (vals.ndim - 1))
    thawed = vals > 0
    # first layer (from the top) that is frozen at its maximum
    first_frozen = np.argmax(~thawed, axis=0)
    all_thawed = thawed.all(axis=0)
    none_thawed = ~thawed[0]
    k = np.clip(first_frozen, 1, 3)
    t_above = np.take_along_axis(vals, (k - 1)[None], 0)[0]
    t_below = np.take_along_axis(vals, k[None], 0)[0]
    z_above = DEPTH_MID[k - 1]
    z_below = DEPTH_MID[k]
    frac = np.where(t_above - t_below != 0, t_above / np.where(t_above - t_below == 0, 1, t_above - t_below), 0.5)
    alt = z_above + np.clip(frac, 0, 1) * (z_below - z_above)
    alt = np.where(none_thawed, 0.0, np.where(all_thawed, COLUMN_BOTTOM, alt))
    alt = np.where(np.isnan(vals).any(axis=0), np.nan, alt).astype("float32")
    template = t.isel(depth=0, drop=True)
    alt_da = template.copy(data=alt)
    alt_da.attrs = {"long_name": "active-layer thickness (from the yearly maximum temperature profile)", "units": "m",
                    "comment": f"capped at the {COLUMN_BOTTOM} m soil column; see alt_capped"}
    capped = template.copy(data=np.where(np.isnan(alt), 0, all_thawed).astype("int8"))
    capped.attrs = {"long_name": "active layer deeper than the 2.89 m column", "flag_values": [0, 1]}
    return alt_da, capped


def _first_exceedance(magt: np.ndarray, years: np.ndarray, window: int) -> np.ndarray:
    """numpy core of :func:`first_exceedance_year`; ``magt`` has year as its last axis.

    The running mean comes from cumulative sums (a window with any NaN year has no mean), so memory stays a
    few copies of ``magt`` whatever the window length.
    """
    n = magt.shape[-1]
    if n < window:
        return np.full(magt.shape[:-1], np.nan, dtype="float32")
    pad = np.zeros(magt.shape[:-1] + (1,))
    csum = np.concatenate([pad, np.nan_to_num(magt, nan=0.0).cumsum(-1, dtype="float64")], -1)
    gaps = np.concatenate([pad, np.isnan(magt).cumsum(-1, dtype="float64")], -1)
    total = csum[..., window:] - csum[..., :-window]  # windows ending at years[window-1:]
    complete = (gaps[..., window:] - gaps[..., :-window]) == 0
    above = complete & (total > 0)
    # "stays above": every later window is above too → reverse cumulative AND along year
    stays = np.flip(np.logical_and.accumulate(np.flip(above, -1), axis=-1), -1)
    ends = years[window - 1:]
    return np.where(stays.any(axis=-1), ends[np.argmax(stays, axis=-1)], np.nan).astype("float32")


def first_exceedance_year(magt: xr.DataArray, window: int = RUNNING_YEARS) -> xr.DataArray:
    """First year after which the ``window``-year running mean magt stays above 0 °C to the end (NaN if never).

    The year reported is the end year of the first such window. Works lazily on dask (year in one chunk).
    """
    out = xr.apply_ufunc(_first_exceedance, magt, kwargs={"years": magt["year"].values, "window": window},
                         input_core_dims=[["year"]], dask="parallelized", output_dtypes=["float32"])
    out = out.where(magt.notnull().any("year")).astype("float32")  # cells with no data at all stay NaN
    out = out.drop_vars([c for c in out.coords if "year" in out[c].dims or c == "year"], errors="ignore")
    out.attrs = {"long_name": f"first year after which the {window}-year running mean annual ground temperature stays > 0 °C",
                 "units": "year", "comment": "NaN: never within the projection"}
    return out


def flag_variable(cond: xr.DataArray, nodata: xr.DataArray, long_name: str) -> xr.DataArray:
    """A yes/no product as int8 (1 yes, 0 no, -1 where ``nodata``) with its CF flag attributes.

    The attributes are set, not added to: with xarray's keep_attrs a temperature's units would leak onto a flag.
    """
    return cond.astype("int8").where(~nodata, -1).astype("int8").drop_attrs(deep=False).assign_attrs(
        long_name=long_name, flag_values=[-1, 0, 1], flag_meanings="nodata no yes", _FillValue=-1)


def yearly_products(soil_temperature: xr.DataArray) -> xr.Dataset:
    """All per-year products from monthly soil temperature (dims time or year/month, depth, latitude, longitude)."""
    ym = to_year_month(soil_temperature)
    # skipna=False: a cell-year is either complete or absent (sea, no data), so NaN-skipping would only turn
    # a missing month into a biased mean (and warn "Mean of empty slice" over the sea)
    magt = ym.mean("month", skipna=False)
    tmin = ym.min("month", skipna=False)
    tmax = ym.max("month", skipna=False)
    nan = magt.isnull()

    def flag(cond, long_name):
        return flag_variable(cond, nan, long_name)

    # attributes are set, not added to: with xarray's keep_attrs the input's own would leak
    def temperature(da, long_name):
        return da.astype("float32").drop_attrs(deep=False).assign_attrs(
            standard_name="soil_temperature", long_name=long_name, units="degC")

    alt, alt_capped = active_layer_thickness(tmax)
    ds = xr.Dataset({
        "magt": temperature(magt, "mean annual ground temperature"),
        "tmin": temperature(tmin, "coldest monthly mean ground temperature"),
        "tmax": temperature(tmax, "warmest monthly mean ground temperature"),
        "exceeds_zero": flag(magt > 0, "mean annual ground temperature above 0 °C"),
        "thawed_year_round": flag(tmin > 0, "every monthly mean above 0 °C"),
        "thaws_in_summer": flag(tmax > 0, "warmest monthly mean above 0 °C"),
        "alt": alt,
        "alt_capped": alt_capped,
        "first_exceedance_year": first_exceedance_year(magt),
    })
    return ds.assign_coords(depth=("depth", DEPTH_MID, depth_coord()["depth"].attrs))


def era_summaries(products: xr.Dataset, eras: dict[str, tuple[int, int]] = ERAS) -> xr.Dataset:
    """Era means of the continuous products and era fraction of years for flags (eras with no years are skipped)."""
    out = []
    names = []
    years = products["year"].values
    for name, (y0, y1) in eras.items():
        if years.min() > y0 or years.max() < y1:
            continue
        sel = products.sel(year=slice(y0, y1))
        era = xr.Dataset({
            "magt": sel["magt"].mean("year"), "tmin": sel["tmin"].mean("year"), "tmax": sel["tmax"].mean("year"),
            "alt": sel["alt"].mean("year"),
            "exceeds_zero": (sel["magt"].mean("year") > 0).where(sel["magt"].mean("year").notnull()),
        })
        for v in ("magt", "tmin", "tmax", "alt"):
            era[v].attrs = {**products[v].attrs, "cell_methods": "year: mean"}
        era["exceeds_zero"].attrs = {"long_name": "era-mean MAGT above 0 °C", "units": "1"}
        out.append(era)
        names.append(name)
    if not out:
        raise ValueError("no complete era inside the years given")
    return xr.concat(out, dim=xr.DataArray(names, dims="era", name="era"))


def area_exceeding_zero(era: xr.Dataset, resolution: float, scenario: str) -> "pandas.DataFrame":  # noqa: F821
    """Area (km², EPSG:3338) where the era-mean MAGT exceeds 0 °C, per depth × era."""
    import pandas as pd

    area = cell_area_albers_km2(era["latitude"].values, era["longitude"].values, resolution)
    area_da = xr.DataArray(area, dims=("latitude", "longitude"), coords={"latitude": era["latitude"], "longitude": era["longitude"]})
    valid = era["magt"].notnull()
    above = (era["exceeds_zero"] == 1) & valid
    tot = (area_da.where(valid).sum(("latitude", "longitude")))
    exc = (area_da.where(above).sum(("latitude", "longitude")))
    rows = []
    for e in era["era"].values:
        for i, d in enumerate(era["depth"].values):
            a = float(exc.sel(era=e).isel(depth=i))
            t_ = float(tot.sel(era=e).isel(depth=i))
            rows.append({"scenario": scenario, "era": str(e), "depth_m": float(d), "area_above_0C_km2": round(a, 1),
                         "land_area_km2": round(t_, 1), "fraction": round(a / t_, 4) if t_ else np.nan})
    return pd.DataFrame(rows)
