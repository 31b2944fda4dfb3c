"""Model inputs: 24-month windows ending each December, derived snow, scenario signal, statics, band index.

A *sample* is one (cell, year Y) pair. Its dynamic input is the ``window_months`` months that end in
December of Y (shape ``[T, F_dyn]``); its target is the 12 monthly soil temperatures of Y at the four
ERA5-Land layers (``[12, 4]``). Everything is vectorised over cells: a chunk of cells × months becomes
tensors with reshapes and a strided window view, never a Python loop over cells.

Typical use::

    spec = FeatureSpec.from_dataset(ds, cfg.features, band_edges=cfg.domain.band_edges, static_years=train_years)
    raw = make_inputs(ds, years, spec, cells=(rows, cols), with_target=True, normalize=False)
    spec.fit_normalization(raw)                 # training samples only
    batch = spec.normalize(raw)                 # or make_inputs(..., normalize=True)
    ...
    out = predictions_to_dataset(y_hat, batch, chunk_ds)   # back to (time, latitude, longitude) per depth

History and scenarios go through the same code: snow is always re-derived from ``t2m``/``tp`` with
:func:`geothaw.snow.derive_snow`, and both scenario signals depend only on the forcing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np
import xarray as xr
from numpy.lib.stride_tricks import sliding_window_view

from .errors import InputDataError
from .scenarios import HISTORICAL_END, rcp_forcing
from .snow import derive_snow

TARGETS = ("stl1", "stl2", "stl3", "stl4")
DEPTH_LABELS = ("0–7 cm", "7–28 cm", "28–100 cm", "100–289 cm")  # the ERA5-Land layers of TARGETS, for people
FORCING = ("t2m", "tp", "sd", "sde")
SWE_CAP_M = 1.0  # snow water equivalent (m) above which the snow inputs are capped (see ``prepare``)
DYNAMIC = (*FORCING, "month_sin", "month_cos", "scenario_signal")
SOIL_CLASSES = 7  # ERA5-Land slt codes 1..7
DEFAULT_ANOMALY_BASELINE = (1986, 2005)
# Features that are already O(1) and must not be rescaled (encodings, one-hots).
_UNSCALED = ("month_sin", "month_cos")
_MIN_BASELINE_YEARS = 5

SignalKind = Literal["rcp_forcing", "warming_anomaly"]


# ---- feature spec + normalisation -------------------------------------------------------------------
@dataclass
class FeatureSpec:
    """Everything needed to rebuild identical inputs later: feature names, options and normalisation.

    Saved as JSON next to every checkpoint, so projection never re-fits anything.
    """

    window_months: int = 24
    scenario_signal: SignalKind = "warming_anomaly"
    anomaly_years: int = 10
    anomaly_baseline: tuple[int, int] = DEFAULT_ANOMALY_BASELINE
    band_edges: tuple[float, ...] = (51.0, 56.0, 60.0, 64.0, 68.0, 72.0)
    dynamic: tuple[str, ...] = DYNAMIC
    static: tuple[str, ...] = ()
    soil_var: str | None = None
    static_years: tuple[int, int] | None = None  # years over which monthly swvl is averaged
    norm: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def n_dynamic(self) -> int:
        return len(self.dynamic)

    @property
    def n_static(self) -> int:
        return len(self.static)

    @property
    def n_bands(self) -> int:
        return len(self.band_edges) - 1

    @property
    def fitted(self) -> bool:
        return bool(self.norm)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, features_cfg, *, band_edges, static_years: tuple[int, int] | None = None
                     ) -> "FeatureSpec":
        """Decide the static feature list from what the (training) dataset provides."""
        static: list[str] = []
        if "elevation" in ds:
            static.append("elevation")
        static += [f"swvl{i}" for i in range(1, 5) if f"swvl{i}" in ds]
        static.append("latitude")
        if "cvh" in ds:  # forest cover: shades summer ground (n-factor)
            static.append("cvh")
        soil_var = "slt" if "slt" in ds else ("soil_class" if "soil_class" in ds else None)
        if soil_var:
            static += [f"soil_{k}" for k in range(1, SOIL_CLASSES + 1)]
        for name in features_cfg.extra_static:
            if name not in ds or set(ds[name].dims) != {"latitude", "longitude"}:
                raise InputDataError(f"features.extra_static: '{name}' is not a 2-D (latitude, longitude) variable "
                                     "of the input dataset")
            if bool(np.isinf(ds[name]).any()):  # NaN marks sea; ±inf would silently drop land cells
                raise InputDataError(f"features.extra_static: '{name}' has infinite values; give finite numbers")
            if name not in static:
                static.append(name)
        return cls(
            window_months=features_cfg.window_months, scenario_signal=features_cfg.scenario_signal,
            anomaly_years=features_cfg.anomaly_years, band_edges=tuple(float(b) for b in band_edges),
            anomaly_baseline=tuple(int(y) for y in features_cfg.anomaly_baseline),
            static=tuple(static), soil_var=soil_var, static_years=static_years,
        )

    # normalisation ------------------------------------------------------------------------------------
    def fit_normalization(self, raw: dict[str, np.ndarray]) -> "FeatureSpec":
        """Fit mean/std on *training* samples (raw, un-normalised ``make_inputs`` output)."""
        def stats(x: np.ndarray, axes: tuple[int, ...], names: tuple[str, ...]) -> dict[str, list[float]]:
            mean = np.nanmean(x, axis=axes, dtype="float64")
            std = np.nanstd(x, axis=axes, dtype="float64")
            for i, n in enumerate(names):
                # Encodings and one-hot soil classes keep their scale; a constant feature must not divide by 0.
                if n in _UNSCALED or n.startswith("soil_"):
                    mean[i], std[i] = 0.0, 1.0
                elif not np.isfinite(std[i]) or std[i] < 1e-6:
                    std[i] = 1.0
            return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}

        if "target" not in raw:
            raise InputDataError("normalisation must be fitted on training samples that include targets")
        self.norm = {
            "dynamic": stats(raw["dynamic"], (0, 1), self.dynamic),
            "static": stats(raw["static"], (0,), self.static),
            "target": stats(raw["target"], (0, 1), TARGETS),
        }
        return self

    def _ms(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        if not self.fitted:
            raise InputDataError("feature normalisation has not been fitted (fit on training samples first)")
        return (np.asarray(self.norm[key]["mean"], dtype="float32"), np.asarray(self.norm[key]["std"], dtype="float32"))

    def normalize(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(raw)
        for key in ("dynamic", "static", "target"):
            if key in raw:
                m, s = self._ms(key)
                out[key] = ((raw[key] - m) / s).astype("float32")
        return out

    def denormalize_target(self, y: np.ndarray) -> np.ndarray:
        m, s = self._ms("target")
        return (np.asarray(y, dtype="float32") * s + m).astype("float32")

    # persistence --------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        d = dict(d)
        for k in ("anomaly_baseline", "band_edges", "dynamic", "static", "static_years"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


# ---- helpers ---------------------------------------------------------------------------------------
def _years_of(ds: xr.Dataset) -> tuple[int, np.ndarray]:
    """First year of the dataset and the month offset of every time step; checks months are consecutive."""
    t = ds["time"].values.astype("datetime64[M]")
    if t.size == 0:
        raise InputDataError("dataset has no time steps")
    first = t[0].astype(object)
    if first.month != 1:
        raise InputDataError(f"dataset must start in January (starts {str(t[0])})")
    offs = (t - t[0]).astype(int)
    if not np.array_equal(offs, np.arange(t.size)):
        raise InputDataError("dataset time axis must be consecutive months without gaps")
    return first.year, offs


def sample_years(ds: xr.Dataset, window_months: int) -> np.ndarray:
    """Years Y whose window (ending December Y) lies entirely inside the dataset."""
    y0, offs = _years_of(ds)
    n_full = offs.size // 12
    first = int(np.ceil(window_months / 12.0)) - 1  # index of the first year with enough lead-in months
    return np.arange(y0 + first, y0 + n_full)


def _cell_matrices(ds: xr.Dataset, names: list[str], rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
    """(cells, time) float32 per variable for the selected cells; only those cells are loaded from lazy arrays,
    in one computation, so variables derived together (the snowpack behind ``sd``, ``sde`` and ``rsn``) are
    derived once, not once per variable."""
    sel = ds[names].isel(latitude=xr.DataArray(rows, dims="cell"), longitude=xr.DataArray(cols, dims="cell")).compute()
    return {n: np.asarray(sel[n].transpose("cell", ...).values, dtype="float32") for n in names}


def _cell_matrix(da: xr.DataArray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return _cell_matrices(da.to_dataset(name="_v"), ["_v"], rows, cols)["_v"]


def _static_vector(ds: xr.Dataset, name: str, rows: np.ndarray, cols: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    da = ds[name]
    if "time" in da.dims:  # monthly swvl → climatology over the training years (recorded in the spec)
        if spec.static_years is not None:
            da = da.sel(time=slice(f"{spec.static_years[0]}-01-01", f"{spec.static_years[1]}-12-31"))
        da = da.mean("time")
    return _cell_matrix(da, rows, cols)


def valid_cells(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of land cells: ``t2m`` finite at the first time step (sea cells are NaN in ERA5-Land)."""
    first = ds["t2m"].isel(time=0).transpose("latitude", "longitude").values
    rows, cols = np.nonzero(np.isfinite(first))
    return rows.astype("int64"), cols.astype("int64")


def scenario_signal(t2m: np.ndarray, year0: int, spec: FeatureSpec, scenario: str = "historical") -> np.ndarray:
    """Yearly scenario signal, shape (cells, n_years), for monthly air temperature ``t2m`` (cells, months).

    * ``rcp_forcing``: global total radiative forcing (W m-2) of the year from the shipped RCP table;
      historical years (≤ 2005) are shared by all RCPs, later years follow ``scenario``.
    * ``warming_anomaly``: trailing ``anomaly_years``-year mean of the cell's annual-mean air-temperature
      anomaly against the fixed ``anomaly_baseline`` period. Needs only ``t2m``, so a GCM's historical +
      RCP forcing gives it exactly like ERA5-Land does; the forcing must cover the baseline years.
    """
    n_years = t2m.shape[1] // 12
    years = np.arange(year0, year0 + n_years)
    if spec.scenario_signal == "rcp_forcing":
        name = "historical" if scenario in ("historical", "era5land", "reanalysis") else scenario
        hist = rcp_forcing("historical", years).to_numpy(dtype="float64")
        scen = rcp_forcing(name, years).to_numpy(dtype="float64") if name != "historical" else hist
        vals = np.where(years <= HISTORICAL_END, hist, scen)
        if np.isnan(vals).any():
            raise InputDataError(f"RCP forcing table does not cover years {years[np.isnan(vals)].tolist()}")
        return np.broadcast_to(vals.astype("float32"), (t2m.shape[0], n_years)).copy()
    annual = t2m[:, : n_years * 12].reshape(t2m.shape[0], n_years, 12).mean(axis=2, dtype="float64")
    b0, b1 = spec.anomaly_baseline
    in_base = (years >= b0) & (years <= b1)
    if in_base.sum() < _MIN_BASELINE_YEARS:
        raise InputDataError(
            f"warming_anomaly needs at least {_MIN_BASELINE_YEARS} forcing years inside the baseline {b0}–{b1}; "
            f"the data cover {years[0]}–{years[-1]} (pass historical + scenario forcing together)"
        )
    anom = annual - annual[:, in_base].mean(axis=1, keepdims=True)
    # Trailing running mean via a cumulative sum (min_periods = 1 at the start of the record).
    csum = np.cumsum(np.pad(anom, ((0, 0), (1, 0))), axis=1)
    k = spec.anomaly_years
    idx = np.arange(n_years)
    lo = np.maximum(idx + 1 - k, 0)
    run = (csum[:, idx + 1] - csum[:, lo]) / (idx + 1 - lo)
    return run.astype("float32")


# ---- the main entry: chunk of cells × months → model tensors ----------------------------------------
def latitude_bands(spec: FeatureSpec, latitude: np.ndarray) -> np.ndarray:
    """The latitude-band index of each latitude (the embedding's input), clipped to the configured bands."""
    return np.clip(np.searchsorted(np.asarray(spec.band_edges), latitude, side="right") - 1, 0, spec.n_bands - 1)


def make_inputs(chunk_ds: xr.Dataset, years, spec: FeatureSpec, *, scenario: str = "historical",
                cells: tuple[np.ndarray, np.ndarray] | None = None, with_target: bool = False,
                normalize: bool = True) -> dict[str, np.ndarray]:
    """Turn a chunk of cells × months into model inputs for the given sample years.

    ``chunk_ds`` is a canonical dataset (or a spatial chunk of one) that includes the statics; it must
    start in January and reach back ``window_months`` before the first requested December (and, for
    ``warming_anomaly``, cover the baseline years). ``cells`` selects (row, col) indices; default: all
    land cells. Cells with any missing input (or target, with ``with_target``) are dropped.

    Returns a dict of arrays (``N = cells × years``, cell-major): ``dynamic`` [N, T, F_dyn] float32,
    ``static`` [N, F_static], ``band`` [N] int64, ``coords`` [N, 2] (lat, lon), ``year`` [N],
    ``row``/``col`` [N] (indices into the chunk), and ``target`` [N, 12, 4] when asked.
    """
    ds = chunk_ds if "sd" in chunk_ds and chunk_ds.attrs.get("geothaw_snow") == "derived" else prepare(chunk_ds)
    y0, offs = _years_of(ds)
    years = np.atleast_1d(np.asarray(years, dtype="int64"))
    W = spec.window_months
    ends = (years - y0) * 12 + 11
    starts = ends - W + 1
    if years.size == 0:
        raise InputDataError("no sample years requested")
    if starts.min() < 0 or ends.max() >= offs.size:
        raise InputDataError(
            f"years {years.min()}–{years.max()} need forcing from {years.min() * 12 + 12 - W} months (Jan of year 0) "
            f"to December {years.max()}; the data cover {y0}-01 to {str(ds['time'].values[-1])[:7]}"
        )
    rows, cols = valid_cells(ds) if cells is None else (np.asarray(cells[0], "int64"), np.asarray(cells[1], "int64"))

    if with_target and (missing := [v for v in TARGETS if v not in ds]):
        raise InputDataError(f"targets {missing} missing from the dataset")
    cell_series = _cell_matrices(ds, [*FORCING, *(TARGETS if with_target else ())], rows, cols)
    forcing = {v: cell_series[v] for v in FORCING}
    t2m = forcing["t2m"]
    month = (offs % 12).astype("float32")
    n_cells, n_months = t2m.shape
    sig_year = scenario_signal(t2m, y0, spec, scenario)  # (cells, n_years)
    sig = np.repeat(sig_year, 12, axis=1)
    if sig.shape[1] < n_months:  # trailing partial year: carry the last value
        sig = np.pad(sig, ((0, 0), (0, n_months - sig.shape[1])), mode="edge")
    chans = {
        **forcing,
        "month_sin": np.broadcast_to(np.sin(2 * np.pi * month / 12), (n_cells, n_months)),
        "month_cos": np.broadcast_to(np.cos(2 * np.pi * month / 12), (n_cells, n_months)),
        "scenario_signal": sig,
    }
    dyn = np.stack([chans[n] for n in spec.dynamic], axis=-1).astype("float32")  # (cells, months, F)
    # A window is usable when all its months are finite: counted per month here, before the windows
    # repeat every month twice (24-month windows, one per year).
    bad_months = np.pad(np.cumsum(~np.isfinite(dyn).all(axis=2), axis=1), ((0, 0), (1, 0)))
    window_ok = (bad_months[:, ends + 1] - bad_months[:, starts] == 0).reshape(-1)  # cell-major, like the samples
    if normalize:  # elementwise, so normalising months before windowing gives the same values at half the cost
        m, s = spec._ms("dynamic")
        dyn -= m
        dyn /= s
    # Strided view: (cells, months-W+1, F, W) without copying; fancy-index the window starts only.
    win = sliding_window_view(dyn, W, axis=1)[:, starts]  # (cells, years, F, W)
    dynamic = np.ascontiguousarray(win.transpose(0, 1, 3, 2)).reshape(n_cells * years.size, W, len(spec.dynamic))

    static_cols = []
    lat_vals = ds["latitude"].values[rows].astype("float32")
    lon_vals = ds["longitude"].values[cols].astype("float32")
    soil = None
    if spec.soil_var:
        if spec.soil_var not in ds:
            raise InputDataError(f"static variable '{spec.soil_var}' (used in training) is missing")
        soil = _cell_matrix(ds[spec.soil_var], rows, cols)
    for name in spec.static:
        if name == "latitude":
            static_cols.append(lat_vals)
        elif name.startswith("soil_"):
            static_cols.append((np.rint(soil) == int(name.split("_")[1])).astype("float32"))
        else:
            if name not in ds:
                raise InputDataError(f"static variable '{name}' (used in training) is missing from the dataset")
            static_cols.append(_static_vector(ds, name, rows, cols, spec))
    static_c = np.stack(static_cols, axis=-1) if static_cols else np.zeros((n_cells, 0), "float32")
    band_c = latitude_bands(spec, lat_vals)

    rep = lambda a: np.repeat(a, years.size, axis=0)  # noqa: E731 - cell-major expansion to samples
    out = {
        "dynamic": dynamic,
        "static": rep(static_c).astype("float32"),
        "band": rep(band_c).astype("int64"),
        "coords": rep(np.stack([lat_vals, lon_vals], axis=-1)),
        "row": rep(rows),
        "col": rep(cols),
        "year": np.tile(years, n_cells),
    }
    ok = window_ok & np.isfinite(out["static"]).all(axis=1)
    if with_target:
        tgt = np.stack([cell_series[v] for v in TARGETS], axis=-1)  # (cells, months, 4)
        n_full = n_months // 12
        tgt = tgt[:, : n_full * 12].reshape(n_cells, n_full, 12, 4)[:, years - y0]
        out["target"] = tgt.reshape(n_cells * years.size, 12, 4)
        ok &= np.isfinite(out["target"]).all(axis=(1, 2))
    if not ok.all():
        out = {k: v[ok] for k, v in out.items()}
    if not normalize:
        return out
    scaled = spec.normalize({k: v for k, v in out.items() if k != "dynamic"})
    return {k: out[k] if k == "dynamic" else scaled[k] for k in out}


def prepare(ds: xr.Dataset) -> xr.Dataset:
    """Re-derive snow (``sd``, ``sde``, ``rsn``) from ``t2m``/``tp`` so history and scenarios are treated alike."""
    for v in ("t2m", "tp"):
        if v not in ds:
            raise InputDataError(f"dataset lacks '{v}' (canonical forcing: t2m in °C, tp in mm/month)")
    out = derive_snow(ds)
    # Where summers never melt the winter's snow (icefields of the Saint Elias, Chugach and Alaska Ranges) the
    # derived pack grows without bound: up to 241 m w.e. on the 0.5° world, on 3.6 % of its land cells. Such
    # values would set the snow features' normalisation and put those cells hundreds of standard deviations
    # out. Beyond ~1 m w.e. (~3 m of snow) the ground is decoupled from winter air anyway, so the model
    # inputs stop there (depth scaled alike); the physics world keeps its own snow.
    over = np.maximum(out["sd"] / SWE_CAP_M, 1.0)
    out["sd"] = (out["sd"] / over).assign_attrs(out["sd"].attrs)
    out["sde"] = (out["sde"] / over).assign_attrs(out["sde"].attrs)
    out.attrs["geothaw_snow"] = "derived"
    return out


def predictions_to_dataset(y_hat: np.ndarray, inputs: dict[str, np.ndarray], chunk_ds: xr.Dataset,
                           years=None) -> xr.Dataset:
    """Inverse of :func:`make_inputs`: map ``y_hat`` [N, 12, 4] (°C) back to ``stl1..stl4`` on
    (time, latitude, longitude) for ``years`` (default: the sample years present); cells without a sample
    (sea, missing input) stay NaN."""
    years = np.unique(inputs["year"]) if years is None else np.asarray(list(years), dtype="int64")
    ny, nx = chunk_ds.sizes["latitude"], chunk_ds.sizes["longitude"]
    cube = np.full((years.size * 12, ny, nx, 4), np.nan, dtype="float32")
    yi = np.searchsorted(years, inputs["year"])
    t_idx = (yi[:, None] * 12 + np.arange(12)[None, :])  # (N, 12)
    cube[t_idx, inputs["row"][:, None], inputs["col"][:, None]] = y_hat
    time = np.array([np.datetime64(f"{y:04d}-{m:02d}-01") for y in years for m in range(1, 13)], dtype="datetime64[ns]")
    coords = {"time": time, "latitude": chunk_ds["latitude"].values, "longitude": chunk_ds["longitude"].values}
    return xr.Dataset(
        {v: (("time", "latitude", "longitude"), cube[..., i], {"units": "degC", "long_name": f"predicted {v}"})
         for i, v in enumerate(TARGETS)},
        coords=coords,
    )
