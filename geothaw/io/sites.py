"""In-situ site records → monthly forcing and monthly soil temperature at the 4 ERA5-Land layers.

Two logger layouts are read:

* **UAF WERC CSV** (Goldstream Creek stations): a free-text header of ~34 lines (citation, ``Lat:``,
  ``Long:``, ``Elev:``, column descriptions, installation notes in a side column), then a row starting
  ``Date/Time``; hourly stamps ``m/d/YYYY H:MM`` in Alaska Standard Time (UTC−9, no daylight saving);
  ``6999`` = bad/missing and ``7777`` = not collected.
* **Campbell TOA5** (Arctic LTER loggers near Toolik): line 1 station/logger/table, line 2 column names,
  lines 3–4 units and processing; ``24:00:00`` stamps (= 00:00 of the next day), dead sensors ``-7999``
  (and ``7999``/``NAN``), occasional duplicated stamps and multi-week gaps.

Aggregation is sub-daily → daily → monthly, each step under a :class:`CoverageRule` (a mean from a few
samples would be a biased guess, so those periods become NaN). Soil sensors are mapped onto the ERA5-Land
layers by nearest-sensor weights *inside* each layer; a layer without a sensor is NaN with an
"insufficient coverage" flag — never extrapolated from a neighbouring layer.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputDataError

ERA5_LAYERS: tuple[tuple[float, float], ...] = ((0.0, 0.07), (0.07, 0.28), (0.28, 1.00), (1.00, 2.89))
LAYER_NAMES = ("stl1", "stl2", "stl3", "stl4")
WERC_FLAGS = (6999.0, 7777.0)
TOA5_FLAGS = (-7999.0, 7999.0)
AKST = "Etc/GMT+9"  # POSIX sign convention: GMT+9 is UTC−9 (AKST, no DST)
INSUFFICIENT = "insufficient coverage"
# physically impossible values that slip past the flags (e.g. a broken thermistor reading +186 °C)
PLAUSIBLE_SOIL = (-60.0, 40.0)
PLAUSIBLE_AIR = (-65.0, 45.0)
SITE_DATA_ENV = "GEOTHAW_SITE_DATA"


# ---- coverage --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoverageRule:
    """When a daily or monthly mean is trusted.

    A day needs ``min_sample_fraction`` of the samples its logging interval implies; a month needs
    ``min_valid_days`` valid days and no run of more than ``max_gap_days`` missing days (a WMO-style
    rule: a 10-day hole in a thaw month shifts the mean by degrees, not tenths).
    """

    min_sample_fraction: float = 0.75
    min_valid_days: int = 20
    max_gap_days: int = 5


DEFAULT_RULE = CoverageRule()


def _longest_nan_run(valid: np.ndarray) -> int:
    run = best = 0
    for ok in valid:
        run = 0 if ok else run + 1
        best = max(best, run)
    return best


def to_daily(df: pd.DataFrame, rule: CoverageRule = DEFAULT_RULE, *, how: str = "mean") -> pd.DataFrame:
    """Daily means (or sums, for precipitation) of a sub-daily table; days under coverage are NaN.

    The expected samples per day follow from the median sampling interval (hourly WERC, 1- or 3-hourly
    TOA5). A sum from a partly covered day is scaled up to the full day only when the day passes the rule.
    """
    if df.empty:
        return df.copy()
    idx = df.index
    step = pd.Series(idx).diff().median()
    per_day = max(1, int(round(pd.Timedelta(days=1) / step))) if pd.notna(step) and step > pd.Timedelta(0) else 1
    grouped = df.groupby(idx.floor("D"))
    count = grouped.count()
    agg = grouped.mean() if how == "mean" else grouped.mean() * per_day  # sum scaled to a full day
    agg = agg.where(count >= rule.min_sample_fraction * per_day)
    # reindex onto every calendar day so gaps are visible to the monthly rule
    full = pd.date_range(agg.index.min(), agg.index.max(), freq="D")
    return agg.reindex(full)


def to_monthly(daily: pd.DataFrame, rule: CoverageRule = DEFAULT_RULE, *, how: str = "mean") -> pd.DataFrame:
    """Monthly means (or totals) of a daily table under the coverage rule; index = naive month starts."""
    if daily.empty:
        return daily.copy()
    d = daily.copy()
    if d.index.tz is not None:  # months are counted in the logger's local standard time
        d.index = d.index.tz_localize(None)
    # pad to whole months so partial first/last months are judged against their full length
    start = d.index.min().to_period("M").to_timestamp()
    end = (d.index.max().to_period("M") + 1).to_timestamp() - pd.Timedelta(days=1)
    d = d.reindex(pd.date_range(start, end, freq="D"))
    out = {}
    for col in d.columns:
        s = d[col]
        g = s.groupby(s.index.to_period("M"))
        mean = g.mean()
        n_ok = g.count()
        gap = g.apply(lambda x: _longest_nan_run(x.notna().to_numpy()))
        ok = (n_ok >= rule.min_valid_days) & (gap <= rule.max_gap_days)
        vals = mean if how == "mean" else mean * g.size()  # total = mean daily rate × days in month
        out[col] = vals.where(ok)
    res = pd.DataFrame(out)
    res.index = res.index.to_timestamp()
    return res


# ---- readers ---------------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # the WERC exports are Windows-1252 in places (°, µ)
        return raw.decode("latin-1")


def _clean_flags(df: pd.DataFrame, flags: Iterable[float]) -> pd.DataFrame:
    out = df.apply(pd.to_numeric, errors="coerce")
    flags = tuple(flags)
    return out.mask(out.isin(flags) | ~np.isfinite(out))


@dataclass
class LoggerTable:
    """One logger file: sub-daily values (flags already NaN) plus what its header says."""

    data: pd.DataFrame
    meta: dict[str, object] = field(default_factory=dict)


def read_werc_csv(path: str | os.PathLike) -> LoggerTable:
    """Read a UAF WERC (Goldstream) CSV: header metadata, AKST time index, 6999/7777 → NaN."""
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.lstrip('"').startswith("Date/Time"))
    except StopIteration:
        raise InputDataError(f"{path.name}: no 'Date/Time' header row (not a UAF WERC CSV?)") from None
    meta: dict[str, object] = {"file": path.name}
    notes: list[str] = []
    for row in csv.reader(lines[:start]):
        if not row:
            continue
        first = row[0].strip()
        for key, name in (("Lat:", "latitude"), ("Long:", "longitude"), ("Elev:", "elevation")):
            if first.startswith(key):
                m = re.search(r"-?\d+(\.\d+)?", first[len(key):])
                if m:
                    meta[name] = float(m.group(0))
        if first and "title" not in meta and re.match(r"^GS[MS]\d", first):
            meta["title"] = first
        notes += [c.strip() for c in row[1:] if c.strip() and c.strip() != "Installation_Notes"]
    meta["notes"] = notes
    df = pd.read_csv(io.StringIO("\n".join(lines[start:])), dtype=str, skipinitialspace=True)
    df = df.loc[:, [c for c in df.columns if c and not c.startswith("Unnamed")]]
    df.columns = [c.strip() for c in df.columns]
    stamp = df.pop("Date/Time").str.strip()
    time = pd.to_datetime(stamp, format="%m/%d/%Y %H:%M", errors="coerce")
    keep = time.notna().to_numpy()
    if not keep.any():
        raise InputDataError(f"{path.name}: no parseable 'm/d/YYYY H:MM' time stamps")
    data = _clean_flags(df[keep], WERC_FLAGS)
    data.index = pd.DatetimeIndex(time[keep]).tz_localize(AKST)
    data = data[~data.index.duplicated(keep="first")].sort_index()
    return LoggerTable(data, meta)


def read_toa5(path: str | os.PathLike) -> LoggerTable:
    """Read a Campbell TOA5 file: ``24:00:00`` → next day 00:00, −7999/7999/NAN → NaN, duplicates dropped.

    Times stay naive (the logger's clock; the LTER loggers run on Alaska standard time)."""
    path = Path(path)
    text = _read_text(path)
    first = next(csv.reader([text.split("\n", 1)[0]]))
    if not first or first[0] != "TOA5":
        raise InputDataError(f"{path.name}: not a Campbell TOA5 file (first field {first[:1]})")
    df = pd.read_csv(io.StringIO(text), skiprows=[0, 2, 3], dtype=str)
    if "TIMESTAMP" not in df.columns:
        raise InputDataError(f"{path.name}: TOA5 file without a TIMESTAMP column")
    stamp = df.pop("TIMESTAMP").str.strip()
    midnight = stamp.str.endswith("24:00:00")  # Campbell writes end-of-day as 24:00 of the same date
    time = pd.to_datetime(stamp.str.replace("24:00:00", "00:00:00", regex=False), errors="coerce")
    time = time + pd.to_timedelta(midnight.astype(int), unit="D")
    keep = time.notna().to_numpy()
    df = df.drop(columns=[c for c in ("RECORD",) if c in df.columns])
    data = _clean_flags(df[keep], TOA5_FLAGS)
    data.index = pd.DatetimeIndex(time[keep])
    data = data[~data.index.duplicated(keep="first")].sort_index()
    meta = {"file": path.name, "station": first[1] if len(first) > 1 else "",
            "logger": first[2] if len(first) > 2 else "", "table": first[-1]}
    return LoggerTable(data, meta)


# ---- sensor depths and layer mapping -----------------------------------------------------------------
_DEPTH_CM = re.compile(r"(?<![A-Za-z])(\d+(?:\.\d+)?)\s*cm", re.IGNORECASE)
_SURFACE = re.compile(r"(^|[_\s])(sur|surface)([_\s]|$)", re.IGNORECASE)


def sensor_depth(name: str) -> float | None:
    """Depth (m) encoded in a column name: '... 20 cm bgs ...', 'CT1_10cm_Avg', 'LSH1_Sur_AVG' (0 m)."""
    m = _DEPTH_CM.search(name)
    if m:
        return float(m.group(1)) / 100.0
    if _SURFACE.search(name):
        return 0.0
    return None


def layer_weights(depths: Iterable[float], layers=ERA5_LAYERS) -> list[dict[float, float]]:
    """For each layer, {sensor depth: weight} with nearest-sensor weights *inside* the layer.

    Each sensor stands for the part of the layer closer to it than to any other sensor in the layer, so
    a sensor near the top of a 72 cm layer is not given the whole layer's weight when another sits deeper.
    Empty dict = no sensor in the layer (insufficient coverage).
    """
    ds = sorted(set(float(d) for d in depths))
    out: list[dict[float, float]] = []
    for top, bottom in layers:
        inside = [d for d in ds if top <= d < bottom or (d == bottom == layers[-1][1])]
        if not inside:
            out.append({})
            continue
        edges = [top, *[(a + b) / 2 for a, b in zip(inside[:-1], inside[1:])], bottom]
        w = {d: (edges[i + 1] - edges[i]) / (bottom - top) for i, d in enumerate(inside)}
        out.append(w)
    return out


def map_to_layers(profile: pd.DataFrame, depths: Mapping[str, float], *, include_surface: bool = False
                  ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Daily sensor table → daily layer means ``stl1..stl4`` plus a status per layer.

    Sensors at the same depth (replicate plots, two sensor types) are averaged first. Weights are
    recomputed each day from the sensors that reported, so one dead sensor does not blank its layer;
    a layer with no sensor at all is NaN and flagged ``insufficient coverage``. Surface (0 cm) sensors
    are left out by default: they sit at the moss/snow interface and read radiative extremes, whereas the
    layers are soil means.
    """
    cols = {c: d for c, d in depths.items() if c in profile.columns and (include_surface or d > 0.0)}
    by_depth = pd.DataFrame({d: profile[[c for c, dd in cols.items() if dd == d]].mean(axis=1)
                             for d in sorted(set(cols.values()))}, index=profile.index)
    out = pd.DataFrame(index=profile.index, columns=list(LAYER_NAMES), dtype="float64")
    status: dict[str, str] = {}
    for name, (top, bottom), w_all in zip(LAYER_NAMES, ERA5_LAYERS, layer_weights(by_depth.columns)):
        if not w_all:
            status[name] = f"{INSUFFICIENT}: no sensor in {top * 100:.0f}-{bottom * 100:.0f} cm"
            continue
        sub = by_depth[list(w_all)]
        avail = sub.notna()
        vals = np.full(len(sub), np.nan)
        # one weight set per availability pattern (few distinct patterns; avoids a per-day Python loop)
        a = avail.to_numpy()
        code = a @ (1 << np.arange(a.shape[1]))  # availability pattern as a bitmask
        for pattern in np.unique(code):
            present = [d for k, d in enumerate(sub.columns) if pattern >> k & 1]
            if not present:
                continue
            w = layer_weights(present, [(top, bottom)])[0]
            idx = np.flatnonzero(code == pattern)
            vals[idx] = sum(w[d] * sub[d].to_numpy()[idx] for d in present)
        out[name] = vals
        status[name] = "ok: sensors at " + ", ".join(f"{d * 100:g}" for d in w_all) + " cm"
    return out, status


def _plausible(df: pd.DataFrame, lo_hi: tuple[float, float]) -> pd.DataFrame:
    return df.where((df >= lo_hi[0]) & (df <= lo_hi[1]))


def snowfall_from_depth(daily_depth_m: pd.Series, *, threshold_m: float = 0.01, new_snow_density: float = 100.0
                        ) -> pd.Series:
    """Daily snowfall water equivalent (mm) from positive daily snow-depth increments above the sensor noise.

    A lower bound (settling hides part of each fall) used only where no precipitation gauge ran in winter.
    """
    inc = daily_depth_m.diff()
    return (inc.where(inc > threshold_m, 0.0) * new_snow_density).where(inc.notna())


# ---- sites ---------------------------------------------------------------------------------------------
@dataclass
class SiteData:
    """A validation site: description, monthly forcing and observed monthly layer temperatures.

    ``monthly`` (index = month starts, naive) holds ``t2m`` (°C), ``rain`` (mm month⁻¹ from a gauge, NaN
    where not measured), ``snowfall`` (mm w.e. month⁻¹ from snow-depth increments, NaN where no snow
    sensor), ``sde`` (m, NaN where not measured) and the observed ``stl1..stl4`` (°C, NaN = no data or
    insufficient coverage). ``layer_status`` says why a layer is empty.
    """

    name: str
    latitude: float
    longitude: float
    elevation: float
    soil_class: int
    monthly: pd.DataFrame
    layer_status: dict[str, str]
    description: str = ""
    snow_density: float | None = None  # kg m-3 measured on site (end-of-winter survey), if any
    forest: bool = False               # boreal forest shades summer ground (n-factor), as in the synthetic world
    physics_overrides: dict[str, float] = field(default_factory=dict)  # site-specific ground (organic, bedrock)
    annual_precip_fallback: float = 250.0  # mm/yr used where neither gauge nor snow sensor measured anything
    sources: list[str] = field(default_factory=list)

    @property
    def observed(self) -> pd.DataFrame:
        return self.monthly[list(LAYER_NAMES)]


def default_data_dir() -> Path:
    """``$GEOTHAW_SITE_DATA`` or ``<repo>/../shared/data`` (the layout of the project's checkout)."""
    env = os.environ.get(SITE_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _find(folder: Path, pattern: str) -> Path:
    hits = sorted(folder.glob(pattern))
    if not hits:
        raise InputDataError(f"site data file '{pattern}' not found in {folder} (set {SITE_DATA_ENV} or --data-dir)")
    return hits[0]


def _soil_monthly(table: LoggerTable, columns: Iterable[str], rule: CoverageRule) -> tuple[pd.DataFrame, dict[str, str]]:
    cols = [c for c in columns if c in table.data.columns]
    depths = {c: d for c in cols if (d := sensor_depth(c)) is not None}
    sub = _plausible(table.data[list(depths)], PLAUSIBLE_SOIL)
    daily = to_daily(sub, rule)
    layers, status = map_to_layers(daily, depths)
    monthly = to_monthly(layers, rule)
    for name in LAYER_NAMES:  # sensors exist but never produced a trusted month (dead, 7777 throughout)
        if status[name].startswith("ok") and monthly[name].isna().all():
            status[name] = f"{INSUFFICIENT}: {status[name][4:]} but no month passes the coverage rule"
    return monthly, status


_GOLDSTREAM = {
    # name: (met glob, soil glob, soil class, physics overrides from the installation notes)
    "gsm1": ("GSM1_*Met*.csv", "GSM1_*Soil*.csv", 4, {"organic_thickness": 0.30}),
    "gsm3": ("GSM3_*Met*.csv", "GSM3_*Soil*.csv", 3, {"organic_thickness": 0.15, "bedrock_depth": 1.10}),
    "gsm4": ("GSM4_*Met*.csv", "GSM4_*Soil*.csv", 3, {"organic_thickness": 0.05, "bedrock_depth": 0.65}),
}


def _goldstream_snow_density(folder: Path) -> float | None:
    """Mean end-of-winter snow density (kg m-3) of the Goldstream snow survey, flags dropped."""
    hits = sorted(folder.glob("End_of_Winter_Snow*.csv"))
    if not hits:
        return None
    lines = _read_text(hits[0]).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Site ID")), None)
    if start is None:
        return None
    df = pd.read_csv(io.StringIO("\n".join(lines[start:])))
    dens = _clean_flags(df[[c for c in df.columns if "Density" in c]], WERC_FLAGS).to_numpy().ravel()
    dens = dens[np.isfinite(dens)]
    return float(dens.mean()) if dens.size else None


def load_goldstream(name: str, data_dir: str | os.PathLike | None = None, rule: CoverageRule = DEFAULT_RULE) -> SiteData:
    """One Goldstream station (``gsm1``, ``gsm3``, ``gsm4``): met + soil files → :class:`SiteData`."""
    met_glob, soil_glob, soil_class, overrides = _GOLDSTREAM[name]
    folder = Path(data_dir or default_data_dir()) / "goldstream_fairbanks_AK"
    met, soil = read_werc_csv(_find(folder, met_glob)), read_werc_csv(_find(folder, soil_glob))
    md = met.data
    air = _plausible(md[["Air_Temperature_C_2m"]], PLAUSIBLE_AIR)
    monthly = to_monthly(to_daily(air, rule), rule).rename(columns={"Air_Temperature_C_2m": "t2m"})
    monthly["rain"] = _monthly_rain(md, rule)
    sources = [met.meta["file"], soil.meta["file"]]
    if monthly["rain"].isna().all():
        # no gauge on this tower (GSM1): the other Goldstream gauges, 5-15 km away in the same basin
        others = [read_werc_csv(_find(folder, g[0])) for k, g in _GOLDSTREAM.items() if k != name]
        others = [o for o in others if "Rainfall_mm" in o.data]
        if others:
            rain = pd.concat([_monthly_rain(o.data, rule) for o in others], axis=1).mean(axis=1)
            monthly["rain"] = rain.reindex(monthly.index)
            sources += [f"rain borrowed from {o.meta['file']}" for o in others]
    snow_daily = to_daily(md[["SnowDepth_cm"]] / 100.0, rule)["SnowDepth_cm"]
    monthly["sde"] = to_monthly(snow_daily.to_frame(), rule)["SnowDepth_cm"]
    monthly["snowfall"] = to_monthly(snowfall_from_depth(snow_daily).to_frame("sf"), rule, how="sum")["sf"]
    soil_cols = [c for c in soil.data.columns if c.startswith(("Soil Temperature", "Soil Surface Temperature"))]
    layers, status = _soil_monthly(soil, soil_cols, rule)
    monthly = monthly.join(layers, how="outer")
    return SiteData(
        name=name, latitude=float(soil.meta.get("latitude", met.meta.get("latitude"))),
        longitude=float(soil.meta.get("longitude", met.meta.get("longitude"))),
        elevation=float(soil.meta.get("elevation", met.meta.get("elevation", np.nan))), soil_class=soil_class,
        monthly=monthly, layer_status=status, description="; ".join(soil.meta.get("notes", [])),
        snow_density=_goldstream_snow_density(folder), forest=True, physics_overrides=dict(overrides),
        annual_precip_fallback=280.0, sources=sources,
    )


def _monthly_rain(met: pd.DataFrame, rule: CoverageRule) -> pd.Series:
    if "Rainfall_mm" not in met:
        return pd.Series(np.nan, index=to_monthly(to_daily(met.iloc[:, :1], rule), rule).index)
    return to_monthly(to_daily(met[["Rainfall_mm"]], rule, how="sum"), rule, how="sum")["Rainfall_mm"]


# Toolik (Arctic LTER): air temperature from the historic-plots CR1000 (3 m); soil from control plots only
# (fertilised, greenhouse and shade treatments are experiments, not the natural ground).
_TOOLIK = {
    "toolik_mat89": ("MAT89_Soil_Temp.dat", re.compile(r"^CT\d_\d+CM_AVG$")),
    "toolik_historic": ("CR1000_HistoricSoil_mean.dat", re.compile(r"^CT\d_\d+cm_Avg$")),
}
TOOLIK_LAT, TOOLIK_LON, TOOLIK_ELEV = 68.63, -149.60, 760.0


def load_toolik(name: str, data_dir: str | os.PathLike | None = None, rule: CoverageRule = DEFAULT_RULE) -> SiteData:
    """A Toolik LTER logger site (``toolik_mat89``, ``toolik_historic``) → :class:`SiteData`."""
    soil_file, pattern = _TOOLIK[name]
    folder = Path(data_dir or default_data_dir()) / "toolik_arc_lter_loggers"
    met = read_toa5(_find(folder, "CR1000_HistoricSoil_mean.dat"))
    soil = met if soil_file.startswith("CR1000") else read_toa5(_find(folder, soil_file))
    air = _plausible(met.data[["Air_3M_Avg"]], PLAUSIBLE_AIR)
    monthly = to_monthly(to_daily(air, rule), rule).rename(columns={"Air_3M_Avg": "t2m"})
    monthly["rain"] = np.nan
    daily_file = sorted(folder.glob("MAT89_Daily.dat"))
    if daily_file:  # unheated summer gauge: it logs 0 in winter, so only months above freezing count
        tab = read_toa5(daily_file[0])
        if "Rain_mm_TOT" in tab.data:
            rain = to_monthly(to_daily(tab.data[["Rain_mm_TOT"]], rule, how="sum"), rule, how="sum")["Rain_mm_TOT"]
            rain = rain.reindex(monthly.index)
            monthly["rain"] = rain.where(monthly["t2m"] > 0.0)
    monthly["sde"] = np.nan
    monthly["snowfall"] = np.nan
    layers, status = _soil_monthly(soil, [c for c in soil.data.columns if pattern.match(c)], rule)
    monthly = monthly.join(layers, how="outer")
    return SiteData(
        name=name, latitude=TOOLIK_LAT, longitude=TOOLIK_LON, elevation=TOOLIK_ELEV, soil_class=4,
        monthly=monthly, layer_status=status, description="moist acidic tundra, Arctic LTER control plots",
        forest=False, annual_precip_fallback=250.0,  # North Slope upper range (REFERENCE §3)
        sources=sorted({met.meta["file"], soil.meta["file"]}),
    )


SITE_LOADERS: dict[str, Callable[..., SiteData]] = {
    **{k: (lambda d=None, r=DEFAULT_RULE, _k=k: load_goldstream(_k, d, r)) for k in _GOLDSTREAM},
    **{k: (lambda d=None, r=DEFAULT_RULE, _k=k: load_toolik(_k, d, r)) for k in _TOOLIK},
}
GOLDSTREAM_SITES = tuple(_GOLDSTREAM)


def list_sites() -> list[str]:
    return list(SITE_LOADERS)


def load_site(name: str, data_dir: str | os.PathLike | None = None, rule: CoverageRule = DEFAULT_RULE) -> SiteData:
    """Load a named site from the reference-data folder (see :func:`default_data_dir`)."""
    if name not in SITE_LOADERS:
        raise InputDataError(f"unknown site '{name}' (known: {', '.join(SITE_LOADERS)})")
    folder = Path(data_dir or default_data_dir())
    if not folder.is_dir():
        raise InputDataError(f"site data folder not found: {folder} (set {SITE_DATA_ENV} or pass a data dir)")
    return SITE_LOADERS[name](folder, rule)
