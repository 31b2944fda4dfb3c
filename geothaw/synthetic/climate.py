"""The synthetic Alaska's air temperature and precipitation: climatology, forced signal, variability.

"True climate" = climatology (a function of static fields, calibrated to Alaskan station normals of about
1986–2005) + forced signal (two-box energy-balance response to the shipped RCP radiative forcing, with
Arctic amplification strongest in winter) + inter-annual variability (smooth spatial patterns × AR(1)
series). Everything is evaluated for one block of cells at a time, vectorised over cells and months.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..scenarios import HISTORICAL_END as HIST_END  # last year of CMIP5 historical forcing
from ..scenarios import rcp_forcing
from .fields import random_fourier_field

SERIES_ORIGIN = 1950      # variability series always start here, so a shorter run shares the full run's weather
REF_PERIOD = (1986, 2005)  # climatology and warming baseline (REFERENCE §2)

# --- climatology coefficients: least-squares fit to 21 station normals (Barrow … Ketchikan, Whitehorse,
# Inuvik) of MAAT, half-range and annual precipitation against the static predictors; see benchmarks md.
T0 = 1.5                  # °C, sea-level MAAT at 60 N far from the sea
LAT_GRAD = -0.634         # °C per degree north
LAT_GRAD_NORTH = -0.82    # extra °C per degree north of 66 N (sea ice, polar night)
OPEN_WARMTH = 0.25        # °C for full open-ocean influence (cold Bering/Aleutian water) …
GULF_WARMTH = 8.6         # … and much more where it is the Alaska Current (east of ~170 W)
ICE_COLD = -1.24          # °C for full ice-ocean influence
LAPSE_MEAN = 5.5          # °C km-1 annual mean lapse rate …
LAPSE_SEASONAL = 1.3      # … weaker in winter (inversions), stronger in summer
AMP_CONT = 21.3           # °C half-range far inland; coasts: −22.7 √m_open + 6.8 m_open − 7.1 m_ice
P_LOG = (5.90, 1.69, -1.04, -0.77, 0.49, 3.07)  # log mm yr-1: 1, m_open, √m_open, north, orography, gulf
P_MAX = 6000.0            # mm yr-1 cap (wettest Gulf of Alaska ranges)
WARMING_AMPLIFICATION = 2.0  # Alaska annual warming per °C of global warming
WARMING_SEASONALITY = 0.5    # January factor 1.5, July 0.5
PRECIP_SCALING = 0.045       # fractional precipitation change per °C of local annual warming


@dataclass(frozen=True)
class MonthAxis:
    """Monthly time axis of whole years: ``year`` and ``month`` (1–12) per step and the real day count."""

    start_year: int
    end_year: int

    @property
    def n(self) -> int:
        return 12 * (self.end_year - self.start_year + 1)

    @property
    def year(self) -> np.ndarray:
        return np.repeat(np.arange(self.start_year, self.end_year + 1), 12)

    @property
    def month(self) -> np.ndarray:
        return np.tile(np.arange(1, 13), self.end_year - self.start_year + 1)

    @property
    def days(self) -> np.ndarray:
        y, m = self.year, self.month
        base = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[m - 1]
        leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
        return base + ((m == 2) & leap)

    def times(self) -> np.ndarray:
        """Month-start datetime64[ns] (the canonical time coordinate)."""
        start = np.datetime64(f"{self.start_year}-01", "M")
        return (start + np.arange(self.n)).astype("datetime64[ns]")

    def offset_in(self, other: "MonthAxis") -> int:
        """Index of this axis' first month inside ``other``."""
        return 12 * (self.start_year - other.start_year)


def _phase(month: np.ndarray) -> np.ndarray:
    """cos of the annual phase with the maximum in mid-January (1 in Jan, −1 in Jul)."""
    return np.cos(2.0 * np.pi * (np.asarray(month) - 1.0) / 12.0)


# ---- forced signal ----------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def global_warming(scenario: str, end_year: int = 2100) -> tuple[np.ndarray, np.ndarray]:
    """(years, global-mean warming °C relative to 1986–2005) from a two-box energy-balance model.

    Historical forcing (shared by all RCPs) to 2005, the scenario's afterwards; the slow deep-ocean box
    makes RCP8.5 lag its forcing more than RCP4.5, as in CMIP5.
    """
    hist = rcp_forcing("historical")
    scen = rcp_forcing("rcp45" if scenario == "historical" else scenario)
    years = np.arange(int(hist.index.min()), end_year + 1)
    f = np.where(years <= HIST_END, hist.reindex(years).values, scen.reindex(years).values)
    f = np.nan_to_num(f.astype("float64"), nan=float(np.nanmax(f)))
    lam, gamma, c_up, c_deep = 1.2, 0.7, 8.0, 100.0  # W m-2 K-1, W m-2 K-1, W yr m-2 K-1 (Held et al. 2010 style)
    t = td = 0.0
    f0 = f[0]
    out = np.empty(years.size)
    for i, fi in enumerate(f):  # yearly steps; 250 steps, negligible
        t, td = t + ((fi - f0) - lam * t - gamma * (t - td)) / c_up, td + gamma * (t - td) / c_deep
        out[i] = t
    ref = out[(years >= REF_PERIOD[0]) & (years <= REF_PERIOD[1])].mean()
    return years, out - ref


def global_warming_monthly(scenario: str, axis: MonthAxis) -> np.ndarray:
    """Global warming interpolated to mid-months (°C), shape ``(axis.n,)``."""
    end = max(axis.end_year + 1, 2101)
    years, g = global_warming(scenario, end)
    _, g_hist = global_warming("historical", end)
    t = axis.year + (axis.month - 0.5) / 12.0
    # months up to 2005 use the historical curve only, so every scenario shares the trunk bit for bit
    return np.where(axis.year <= HIST_END, np.interp(t, years + 0.5, g_hist), np.interp(t, years + 0.5, g))


# ---- climatology -----------------------------------------------------------------------------------
def climate_parameters(lat: np.ndarray, lon_e: np.ndarray, elev: np.ndarray, m_open: np.ndarray,
                       m_ice: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cell climate parameters from static fields (all arrays of the same shape)."""
    lat = np.asarray(lat, dtype="float64")
    ekm = np.asarray(elev, dtype="float64") / 1000.0
    mo, mi = np.asarray(m_open, dtype="float64"), np.asarray(m_ice, dtype="float64")
    gulf = mo * np.clip((np.asarray(lon_e, dtype="float64") - 190.0) / 35.0, 0.0, 1.0)
    tbar = (T0 + LAT_GRAD * (lat - 60.0) + LAT_GRAD_NORTH * np.clip(lat - 66.0, 0.0, None) + OPEN_WARMTH * mo
            + GULF_WARMTH * gulf + ICE_COLD * mi)
    amp = np.clip(AMP_CONT - 22.7 * np.sqrt(mo) + 6.8 * mo - 7.1 * mi, 4.0, None)
    north = np.clip((lat - 66.5) / 2.5, 0.0, 1.0)
    c = P_LOG
    p_ann = np.minimum(np.exp(c[0] + c[1] * mo + c[2] * np.sqrt(mo) + c[3] * north + c[4] * ekm * (0.25 + mo) + c[5] * gulf), P_MAX)
    return {
        "tbar": tbar, "elev_km": ekm, "amp": amp,
        "tmin_month": 1.0 + 0.5 * mo + 0.6 * mi,            # maritime and ice-bound coasts peak later
        "p_ann": p_ann,
        "p_seas": 0.6 - 0.25 * mo,                           # relative seasonal range of precipitation
        "p_peak": 7.6 + 2.2 * mo,                            # Jul–Aug inland, Sep–Oct on the Pacific coast
        "sigma_t": 0.45 + 0.75 * (1.0 - mo),                 # variability scale: continental winters swing most
        "warm_amp": WARMING_AMPLIFICATION * (1.0 + 0.2 * (lat - 62.0) / 8.0) * (1.0 - 0.3 * mo),
    }


def climatology(params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Monthly climatology (n, 12): t2m °C and precipitation mm per month (reference period)."""
    m = np.arange(1, 13, dtype="float64")
    cyc = np.cos(2.0 * np.pi * (m[None, :] - params["tmin_month"][:, None]) / 12.0)
    lapse = LAPSE_MEAN - LAPSE_SEASONAL * _phase(m)[None, :]
    t = params["tbar"][:, None] - params["amp"][:, None] * cyc - lapse * params["elev_km"][:, None]
    shape = 1.0 + params["p_seas"][:, None] * np.cos(2.0 * np.pi * (m[None, :] - params["p_peak"][:, None]) / 12.0)
    p = params["p_ann"][:, None] / 12.0 * shape
    return t, p


# ---- variability -----------------------------------------------------------------------------------
T_LENGTHS = (1600.0, 1400.0, 1100.0, 900.0, 750.0, 600.0, 450.0, 350.0, 260.0, 200.0)
T_WEIGHTS = np.array([0.45, 0.40, 0.36, 0.32, 0.30, 0.27, 0.24, 0.22, 0.2, 0.18])
P_LENGTHS = (1200.0, 900.0, 700.0, 500.0, 400.0, 300.0, 220.0, 160.0)
P_WEIGHTS = np.array([0.4, 0.4, 0.38, 0.36, 0.34, 0.32, 0.3, 0.28])
P_SIGMA = 0.38  # log-space monthly precipitation variability


def variability_patterns(x_km: np.ndarray, y_km: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Spatial patterns (n, K_T) and (n, K_P), unit variance and weighted so their sum has unit variance."""
    wt = T_WEIGHTS / np.sqrt((T_WEIGHTS**2).sum())
    wp = P_WEIGHTS / np.sqrt((P_WEIGHTS**2).sum())
    pt = np.stack([w * random_fourier_field(x_km, y_km, L, seed * 1000 + 100 + k) for k, (L, w) in enumerate(zip(T_LENGTHS, wt))], -1)
    pp = np.stack([w * random_fourier_field(x_km, y_km, L, seed * 1000 + 200 + k) for k, (L, w) in enumerate(zip(P_LENGTHS, wp))], -1)
    return pt, pp


def _ar1(rng: np.random.Generator, n: int, k: int, phi: float) -> np.ndarray:
    e = rng.standard_normal((k, n))
    out = np.empty((k, n))
    out[:, 0] = e[:, 0]
    s = np.sqrt(1.0 - phi * phi)
    for i in range(1, n):  # sequential by nature; k × n is tiny (≤ 20 × 1812)
        out[:, i] = phi * out[:, i - 1] + s * e[:, i]
    return out


def variability_series(seed: int, end_year: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance mode series from ``SERIES_ORIGIN`` to ``end_year``: temperature (K_T, n), precip (K_P, n).

    Temperature modes mix a monthly AR(1) (persistence ~2 months) with a yearly AR(1) (decadal swings
    like the Pacific Decadal Oscillation); precipitation is nearly white month to month.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    n = 12 * (end_year - SERIES_ORIGIN + 1)
    monthly = _ar1(rng, n, len(T_LENGTHS), 0.45)
    yearly = np.repeat(_ar1(rng, n // 12, len(T_LENGTHS), 0.55), 12, axis=1)
    t = np.sqrt(0.75) * monthly + np.sqrt(0.25) * yearly
    p = _ar1(rng, n, len(P_LENGTHS), 0.15)
    return t, p


def seasonal_sigma_t(params: dict[str, np.ndarray], month: np.ndarray) -> np.ndarray:
    """Monthly temperature anomaly std (°C), (n, n_months): ~5.5 °C interior January, ~1 °C coastal July."""
    winter = 0.5 * (1.0 + _phase(month))
    return params["sigma_t"][:, None] * (1.3 + 3.3 * winter)[None, :]


# ---- the record ------------------------------------------------------------------------------------
def generate_forcing(params: dict[str, np.ndarray], axis: MonthAxis, warming: np.ndarray,
                     t_modes: np.ndarray, p_modes: np.ndarray, t_series: np.ndarray, p_series: np.ndarray,
                     *, bias_t: np.ndarray | None = None, bias_p: np.ndarray | None = None,
                     sensitivity: float = 1.0, variability_scale: float = 1.0,
                     clim: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Monthly t2m (°C) and precipitation (mm month-1), float32 (n_cells, axis.n).

    ``warming`` is the global warming per month (:func:`global_warming_monthly`); the series are sliced
    to ``axis`` here. ``bias_t`` (n, 12) °C and ``bias_p`` (n, 12) factors, ``sensitivity`` and
    ``variability_scale`` turn the true climate into a GCM's view of it; ``clim`` overrides the
    climatology (a GCM's is the area mean of the fine-grid one).
    """
    t_clim, p_clim = climatology(params) if clim is None else clim
    mi = axis.month - 1
    i0 = 12 * (axis.start_year - SERIES_ORIGIN)
    ts = t_series[:, i0:i0 + axis.n]
    ps = p_series[:, i0:i0 + axis.n]
    seas = 1.0 + WARMING_SEASONALITY * _phase(axis.month)
    d_t = sensitivity * params["warm_amp"][:, None] * (warming * seas)[None, :]
    anom = variability_scale * seasonal_sigma_t(params, axis.month) * (t_modes @ ts)
    t = t_clim[:, mi] + d_t + anom
    if bias_t is not None:
        t += bias_t[:, mi]
    # precipitation: wetter with local annual warming; lognormal, mean-preserving anomalies
    d_ann = sensitivity * params["warm_amp"][:, None] * warming[None, :]
    z = variability_scale * (p_modes @ ps)
    p = p_clim[:, mi] * np.clip(1.0 + PRECIP_SCALING * d_ann, 0.5, None) * np.exp(P_SIGMA * z - 0.5 * P_SIGMA**2)
    if bias_p is not None:
        p *= bias_p[:, mi]
    return t.astype("float32"), p.astype("float32")
