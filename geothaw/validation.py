"""Real-site validation: score trained models and the physics solver against in-situ soil temperatures.

For a :class:`~geothaw.io.sites.SiteData` the site's own monthly met drives

* every trained model, through a one-cell canonical dataset and the same ``make_inputs`` + ``predict`` path
  as projection (so snow is re-derived from ``t2m``/``tp`` exactly as in training), and
* the physics solver, with the site's measured snow depth where it exists and the ``snowpack`` model
  elsewhere,

and both are scored per ERA5-Land layer against the observed layer means: RMSE, bias, annual amplitude
and the months the layer thaws and refreezes. A cross-model check runs the solver on the GIPL Barrow
inputs and compares it with GIPL's own output (two models: a sanity check, not a score).

Substitutions (all recorded in the output's ``notes``):

* months without air temperature (before/after/gaps in the record) → the site's calendar-month mean;
* precipitation: gauge rain + snowfall from snow-depth increments where either was measured; otherwise the
  site's calendar-month mean of those; otherwise ``SiteData.annual_precip_fallback`` spread evenly;
* the ``warming_anomaly`` scenario signal needs its baseline years (1986–2005 by default): the years before the record are
  filled with the site climatology, so the signal is ≈ 0 (the record's own mean is taken as "baseline").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GeothawError, InputDataError
from .io.atomic import atomic_path, write_text_atomic
from .io.sites import LAYER_NAMES, SITE_DATA_ENV, SiteData, default_data_dir, list_sites, load_site

PHYSICS = "physics"
LAYER_LABELS = ("0-7 cm", "7-28 cm", "28-100 cm", "100-289 cm")
_BASELINE_START = 1981
_GIPL_DIR = "gipl_barrow_cmip5_permamodel"


# ---- forcing ---------------------------------------------------------------------------------------
def _calendar_fill(s: pd.Series, interpolate: bool = True) -> pd.Series:
    """Fill NaN with the calendar-month mean of the series; a calendar month that never has data is
    interpolated circularly (``interpolate``) or left NaN."""
    clim = s.groupby(s.index.month).mean().reindex(range(1, 13))
    if interpolate and clim.isna().any() and clim.notna().sum() >= 2:
        ext = pd.concat([clim, clim, clim]).reset_index(drop=True).interpolate()
        clim = pd.Series(ext.iloc[12:24].to_numpy(), index=range(1, 13))
    return s.fillna(pd.Series(clim.reindex(s.index.month).to_numpy(), index=s.index))


def site_forcing(site: SiteData, start_year: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Gap-free monthly ``t2m`` (°C), ``tp`` (mm/month), ``sde_obs`` (m, NaN where unmeasured) from January
    of ``start_year`` (default: the record's first year) to December of the record's last year."""
    m = site.monthly
    have = m["t2m"].notna() | m[list(LAYER_NAMES)].notna().any(axis=1)
    if not have.any():
        raise InputDataError(f"site '{site.name}' has no usable monthly data")
    first, last = m.index[have].min().year, m.index[have].max().year
    idx = pd.date_range(f"{start_year or first}-01-01", f"{last}-12-01", freq="MS")
    notes: list[str] = []
    t2m_obs = m["t2m"].reindex(idx)
    if t2m_obs.notna().sum() < 12:
        raise InputDataError(f"site '{site.name}': fewer than 12 months of air temperature")
    t2m = _calendar_fill(t2m_obs)
    notes.append(f"t2m: {int(t2m_obs.notna().sum())} measured months, {int(t2m_obs.isna().sum())} filled with the "
                 "site calendar-month mean")
    rain, snowf = m["rain"].reindex(idx), m["snowfall"].reindex(idx)
    meas = rain.notna() | snowf.notna()
    tp = (rain.fillna(0.0) + snowf.fillna(0.0)).where(meas)
    n_meas = int(meas.sum())
    if n_meas:  # no interpolation: winter snowfall says nothing about a never-gauged summer month
        tp = _calendar_fill(tp, interpolate=False)
    fallback = site.annual_precip_fallback / 12.0
    n_const = int(tp.isna().sum())
    tp = tp.fillna(fallback)
    notes.append(
        f"tp: {n_meas} months from gauge rain + snowfall from snow-depth increments (a lower bound), "
        f"{len(idx) - n_meas - n_const} from their calendar-month means, {n_const} set to "
        f"{site.annual_precip_fallback:.0f} mm/yr spread evenly; mean {tp.groupby(tp.index.year).sum().mean():.0f} mm/yr"
    )
    df = pd.DataFrame({"t2m": t2m, "tp": tp, "sde_obs": m["sde"].reindex(idx)}, index=idx)
    return df, notes


def _snow_for_physics(site: SiteData, f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    from .snow import snowpack

    days = f.index.days_in_month.to_numpy()
    _, depth, rho = snowpack(f["t2m"].to_numpy()[None], f["tp"].to_numpy()[None], days)
    depth, rho = depth[0].astype("float64"), rho[0].astype("float64")
    obs = f["sde_obs"].to_numpy()
    used = np.isfinite(obs)
    depth = np.where(used, obs, depth)
    if site.snow_density is not None:  # measured (end-of-winter survey) beats the model's compaction guess
        rho = np.full_like(rho, site.snow_density)
    how = (f"snow depth: {int(used.sum())} months measured, rest from snowpack(t2m, tp); density "
           + (f"{site.snow_density:.0f} kg m-3 (site survey)" if site.snow_density is not None else "from snowpack"))
    return depth, rho, how


def site_soil_properties(site: SiteData):
    """Solver properties from the site's ground class (as in the synthetic world) plus its field notes."""
    from .physics import SoilProperties
    from .synthetic.soil_classes import class_properties, peat_properties

    cp = {k: float(np.asarray(v).ravel()[0]) for k, v in class_properties(np.asarray([site.soil_class])).items()}
    cp.update(site.physics_overrides)
    return SoilProperties(
        k_thawed=cp["k_thawed"], k_frozen=cp["k_frozen"], c_thawed=cp["c_thawed"], c_frozen=cp["c_frozen"],
        water_content=cp["water_content"], unfrozen_a=cp["unfrozen_a"], unfrozen_b=cp["unfrozen_b"],
        organic_thickness=cp["organic_thickness"], bedrock_depth=cp["bedrock_depth"], geothermal_flux=0.055,
        n_factor_thaw=0.75 if site.forest else 1.0, **peat_properties(),
    )


def run_physics(site: SiteData, f: pd.DataFrame, *, spinup_years: int = 20, dt_days: float = 1.0
                ) -> tuple[pd.DataFrame, str]:
    """Monthly layer-mean temperatures from the solver for the forcing ``f`` (one column)."""
    from .physics import solve_columns

    depth, rho, how = _snow_for_physics(site, f)
    res = solve_columns(f["t2m"].to_numpy()[None], depth[None], rho[None], site_soil_properties(site),
                        dt_days=dt_days, spinup_years=spinup_years, month_lengths=f.index.days_in_month.to_numpy(),
                        start_month=int(f.index[0].month))
    return pd.DataFrame(res.layer_temperature[0], index=f.index, columns=list(LAYER_NAMES)), how


# ---- models ----------------------------------------------------------------------------------------
def site_dataset(site: SiteData, f: pd.DataFrame):
    """One-cell canonical dataset (time, latitude, longitude) with forcing and the statics models use."""
    import xarray as xr

    from .synthetic.soil_classes import class_properties, slt_codes

    theta = float(class_properties(np.asarray([site.soil_class]))["water_content"][0])
    coords = {"time": f.index.values.astype("datetime64[ns]"), "latitude": [site.latitude],
              "longitude": [site.longitude % 360.0]}

    def cell(v: float, units: str):
        return xr.DataArray(np.full((1, 1), v, "float32"), dims=("latitude", "longitude"), attrs={"units": units})

    ds = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), f["t2m"].to_numpy("float32")[:, None, None], {"units": "degC"}),
         "tp": (("time", "latitude", "longitude"), f["tp"].to_numpy("float32")[:, None, None], {"units": "mm month-1"})},
        coords=coords,
    )
    ds["elevation"] = cell(site.elevation, "m")
    ds["slt"] = cell(float(slt_codes(np.asarray([site.soil_class]))[0]), "~")
    ds["soil_class"] = cell(float(site.soil_class), "1")
    ds["cvh"] = cell(0.75 if site.forest else 0.04, "1")  # the synthetic world's forest / tundra cover
    for i in range(1, 5):  # class water content: the sites' probes cover only part of the column and summer
        ds[f"swvl{i}"] = cell(theta, "m3 m-3")
    return ds


def run_model(checkpoint: Path, site: SiteData, f: pd.DataFrame, years: Sequence[int]) -> tuple[str, pd.DataFrame]:
    """Monthly predictions (°C) of one checkpoint for ``years`` at the site."""
    from .features import make_inputs
    from .training import load_checkpoint, predict

    lm = load_checkpoint(checkpoint)
    ds = site_dataset(site, f)
    batch = make_inputs(ds, list(years), lm.features, cells=(np.array([0]), np.array([0])), normalize=True)
    if len(batch["year"]) == 0:
        raise InputDataError(f"{checkpoint.name}: no complete input windows at site '{site.name}'")
    y = predict(lm.model, lm.features, batch)  # [n_years, 12, 4]
    idx = pd.DatetimeIndex([pd.Timestamp(int(yr), mo, 1) for yr in batch["year"] for mo in range(1, 13)])
    return str(lm.meta.get("model", checkpoint.stem)), pd.DataFrame(y.reshape(-1, 4), index=idx, columns=list(LAYER_NAMES))


# ---- scores ----------------------------------------------------------------------------------------
def _crossings(cycle: pd.Series) -> tuple[float, float]:
    """Thaw and freeze month (1–12) of a mean seasonal cycle: first month > 0 °C after one ≤ 0 and the next ≤ 0.

    NaN when the layer never crosses 0 °C (stays frozen or thawed) or the cycle has gaps."""
    c = cycle.reindex(range(1, 13))
    if c.isna().any():
        return np.nan, np.nan
    start = int(c.idxmin())
    order = [(start - 1 + k) % 12 + 1 for k in range(12)]
    thaw = freeze = np.nan
    for a, b in zip(order[:-1], order[1:]):
        if np.isnan(thaw) and c[a] <= 0.0 < c[b]:
            thaw = float(b)
        elif not np.isnan(thaw) and c[a] > 0.0 >= c[b]:
            freeze = float(b)
            break
    if not np.isnan(thaw) and np.isnan(freeze) and c[order[-1]] > 0.0:
        freeze = float(start)  # refreezes in the coldest month's run-up
    return thaw, freeze


def score(obs: pd.Series, pred: pd.Series) -> dict[str, float]:
    """RMSE, bias, annual amplitude (half the range of the mean seasonal cycle) and 0 °C crossing months,
    on the months where both exist."""
    both = pd.concat({"o": obs, "p": pred}, axis=1).dropna()
    out: dict[str, float] = {"n_months": float(len(both))}
    if both.empty:
        return out | {k: np.nan for k in ("rmse", "bias", "amp_obs", "amp_pred", "thaw_obs", "thaw_pred",
                                          "freeze_obs", "freeze_pred")}
    d = both["p"] - both["o"]
    out["rmse"] = float(np.sqrt((d**2).mean()))
    out["bias"] = float(d.mean())
    cyc = both.groupby(both.index.month).mean()
    full = len(cyc) >= 10  # an amplitude from half a year of months would be meaningless
    out["amp_obs"] = float((cyc["o"].max() - cyc["o"].min()) / 2) if full else np.nan
    out["amp_pred"] = float((cyc["p"].max() - cyc["p"].min()) / 2) if full else np.nan
    out["thaw_obs"], out["freeze_obs"] = _crossings(cyc["o"])
    out["thaw_pred"], out["freeze_pred"] = _crossings(cyc["p"])
    return out


# ---- one site --------------------------------------------------------------------------------------
def validate_site(site: SiteData, checkpoints: Sequence[Path], *, out_dir: Path, physics: bool = True,
                  spinup_years: int = 20) -> pd.DataFrame:
    """Predict and score one site; writes ``<site>_scores.csv``, ``<site>_monthly.csv``, ``<site>.png``.

    Returns one row per (model, layer): ``site, model, layer, status, n_months, rmse, bias, amp_obs, amp_pred,
    thaw_obs, thaw_pred, freeze_obs, freeze_pred``. Layers without observations keep their status
    (``insufficient coverage: ...``) and NaN scores.
    """
    out_dir = Path(out_dir)
    obs = site.observed
    obs_years = sorted({int(y) for y in obs.dropna(how="all").index.year})
    if not obs_years:
        raise InputDataError(f"site '{site.name}' has no observed layer temperatures")
    start = min(_BASELINE_START, obs_years[0] - 2)
    f, notes = site_forcing(site, start_year=start)
    preds: dict[str, pd.DataFrame] = {}
    if physics:
        preds[PHYSICS], how = run_physics(site, f, spinup_years=spinup_years)
        notes.append(how)
    for ck in checkpoints:
        try:
            name, p = run_model(Path(ck), site, f, obs_years)
        except GeothawError as exc:  # one unusable checkpoint must not sink the other models' scores
            notes.append(f"{Path(ck).name}: skipped ({exc})")
            continue
        preds[name] = p
    rows = []
    for model, p in preds.items():
        for layer in LAYER_NAMES:
            s = score(obs[layer], p[layer].reindex(obs.index))
            rows.append({"site": site.name, "model": model, "layer": layer,
                         "status": site.layer_status.get(layer, ""), **s})
    scores = pd.DataFrame(rows)
    _write_csv(scores, out_dir / f"{site.name}_scores.csv")
    monthly = pd.concat({"obs": obs, **{m: p.reindex(obs.index) for m, p in preds.items()}}, axis=1)
    monthly.columns = [f"{a}_{b}" for a, b in monthly.columns]
    monthly.insert(0, "t2m_forcing", f["t2m"].reindex(obs.index))
    monthly.insert(1, "tp_forcing", f["tp"].reindex(obs.index))
    monthly.insert(2, "sde_obs", f["sde_obs"].reindex(obs.index))
    _write_csv(monthly.rename_axis("time").reset_index(), out_dir / f"{site.name}_monthly.csv")
    write_text_atomic(out_dir / f"{site.name}_notes.json", json.dumps(
        {"site": site.name, "latitude": site.latitude, "longitude": site.longitude, "elevation": site.elevation,
         "soil_class": site.soil_class, "sources": site.sources, "layer_status": site.layer_status,
         "notes": notes}, indent=2))
    plot_site(site, f, preds, out_dir / f"{site.name}.png")
    return scores


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4g")


def plot_site(site: SiteData, f: pd.DataFrame, preds: dict[str, pd.DataFrame], path: Path) -> Path:
    """Air temperature + snow, then one panel per layer: observed vs physics vs each model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    obs = site.observed
    t0, t1 = obs.dropna(how="all").index.min(), obs.dropna(how="all").index.max()
    win = slice(t0 - pd.DateOffset(months=1), t1 + pd.DateOffset(months=1))
    fig, axes = plt.subplots(5, 1, figsize=(10, 12), sharex=True, constrained_layout=True)
    ax = axes[0]
    ax.plot(f.loc[win].index, f.loc[win, "t2m"], color="0.3", lw=1.2, label="air T (forcing)")
    ax.axhline(0, color="0.7", lw=0.6)
    ax.set_ylabel("air T (°C)")
    ax2 = ax.twinx()
    ax2.bar(f.loc[win].index, f.loc[win, "sde_obs"].fillna(0) * 100, width=20, color="tab:cyan", alpha=0.5,
            label="snow depth (obs)")
    ax2.set_ylabel("snow depth (cm)")
    ax.set_title(f"{site.name} ({site.latitude:.2f} N, {site.longitude:.2f} E, {site.elevation:.0f} m) — forcing")
    palette = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 3]  # red is the physics
    for k, (layer, label) in enumerate(zip(LAYER_NAMES, LAYER_LABELS)):
        ax = axes[k + 1]
        ax.axhline(0, color="0.7", lw=0.6)
        o = obs[layer].loc[win]
        if o.notna().any():
            ax.plot(o.index, o, "k-o", ms=3, lw=2.0, label="observed")
        else:
            ax.text(0.5, 0.5, site.layer_status.get(layer, "no data"), transform=ax.transAxes, ha="center",
                    va="center", color="0.4")
        for i, (m, p) in enumerate(preds.items()):
            pp = p[layer].loc[win]
            style = dict(color="tab:red", lw=1.8) if m == PHYSICS else dict(color=palette[i % len(palette)], lw=1.0, alpha=0.8)
            ax.plot(pp.index, pp, label=m, **style)
        ax.set_ylabel(f"{layer} {label} (°C)")
        if k == 0:
            ax.legend(ncol=4, fontsize=8, loc="upper left")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


# ---- GIPL cross-model check --------------------------------------------------------------------------
def _read_series(path: Path) -> np.ndarray:
    lines = path.read_text().split("\n")
    n = int(lines[0].split()[0])
    return np.asarray([float(line.split()[1]) for line in lines[1:n + 1]])


def _sturm_density(k: np.ndarray) -> np.ndarray:
    """Invert Sturm (1997) k(ρ) on its upper branch (ρ ≥ 0.156 g cm-3) → density in kg m-3."""
    disc = np.clip(1.01**2 - 4 * 3.233 * (0.138 - np.asarray(k)), 0.0, None)
    return np.clip((1.01 + np.sqrt(disc)) / (2 * 3.233), 0.156, 0.6) * 1000.0


def read_gipl(folder: Path) -> dict[str, object]:
    """The GIPL Barrow inputs and reference output (monthly steps starting in September)."""
    inp = folder / "in"
    air, snow, ksnow = (_read_series(inp / n) for n in ("bound.txt", "snow.txt", "rsnow.txt"))
    geo = [list(map(float, line.split())) for line in (inp / "geo.txt").read_text().split("\n")[2:] if line.strip()]
    grid_lines = [line.strip() for line in (inp / "grid.txt").read_text().split("\n") if line.strip()]
    n_nodes = int(grid_lines[0])
    nodes = np.asarray(list(map(float, grid_lines[1:n_nodes + 1])))
    n_out = int(grid_lines[n_nodes + 1])
    out_idx = np.asarray(list(map(int, grid_lines[n_nodes + 2:n_nodes + 2 + n_out]))) - 1
    init = np.asarray([list(map(float, line.split())) for line in (inp / "initial.txt").read_text().split("\n")[2:]
                       if line.strip()])
    res = np.loadtxt(folder / "reference_output" / "result.txt")
    return {"air": air, "snow": snow, "k_snow": ksnow, "geo": np.asarray(geo), "depths": nodes[out_idx],
            "initial": init, "result": res[:, 4:4 + n_out]}


def gipl_properties(geo: np.ndarray):
    """Map GIPL's 6 layers (θ, a, b, C_th, C_fr, k_th, k_fr, thickness) onto organic + mineral + bedrock."""
    from .physics import SoilProperties

    org, mineral, rock = geo[0], geo[1:3], geo[3]
    h = mineral[:, 7]
    harm = lambda col: float(h.sum() / (h / mineral[:, col]).sum())  # noqa: E731 - series conduction
    arith = lambda col: float((h * mineral[:, col]).sum() / h.sum())  # noqa: E731
    return SoilProperties(
        k_thawed=harm(5), k_frozen=harm(6), c_thawed=arith(3), c_frozen=arith(4), water_content=arith(0),
        unfrozen_a=float(mineral[-1, 1]), unfrozen_b=float(mineral[-1, 2]),
        organic_thickness=float(org[7]), organic_k_thawed=float(org[5]), organic_k_frozen=float(org[6]),
        organic_c_thawed=float(org[3]), organic_c_frozen=float(org[4]), organic_water_content=float(org[0]),
        bedrock_depth=float(org[7] + h.sum()), bedrock_k=float(rock[6]), bedrock_c=float(rock[4]),
        bedrock_water_content=float(rock[0]),
    )


def gipl_crosscheck(data_dir: Path | None = None, out_dir: Path | None = None) -> pd.DataFrame:
    """Run the solver on GIPL's Barrow inputs; per GIPL output depth: bias, RMSE and correlation of
    ours − GIPL over the whole run and the mean of each over the first and last 30 years."""
    from .physics import NODE_DEPTHS, solve_columns_daily

    folder = Path(data_dir or default_data_dir()) / _GIPL_DIR
    if not folder.is_dir():
        raise InputDataError(f"GIPL Barrow folder not found: {folder} (set {SITE_DATA_ENV})")
    g = read_gipl(folder)
    n = len(g["air"])
    props = gipl_properties(g["geo"])
    init = np.interp(NODE_DEPTHS, g["initial"][:, 0], g["initial"][:, 1])[None]
    lengths = np.full(n, 365.0 / 12.0)  # GIPL steps are 2 628 000 s = 1/12 year
    days, rec, _ = solve_columns_daily(g["air"][None], g["snow"][None], _sturm_density(g["k_snow"])[None], props,
                                       dt_days=1.0, initial_state=init, month_lengths=lengths, start_month=9)
    month = np.minimum((np.asarray(days) - 0.5) // (365.0 / 12.0), n - 1).astype(int)
    node_month = pd.DataFrame(rec[0]).groupby(month).mean().to_numpy()  # (n_months, n_nodes)
    ours = np.stack([np.interp(d, NODE_DEPTHS, row) for row in node_month for d in g["depths"]]).reshape(n, -1)
    ref = g["result"]
    rows = []
    for i, d in enumerate(g["depths"]):
        diff = ours[:, i] - ref[:, i]
        rows.append({"depth_m": float(d), "bias": float(diff.mean()), "rmse": float(np.sqrt((diff**2).mean())),
                     "corr": float(np.corrcoef(ours[:, i], ref[:, i])[0, 1]),
                     "gipl_first30": float(ref[:360, i].mean()), "ours_first30": float(ours[:360, i].mean()),
                     "gipl_last30": float(ref[-360:, i].mean()), "ours_last30": float(ours[-360:, i].mean())})
    table = pd.DataFrame(rows)
    if out_dir is not None:
        out_dir = Path(out_dir)
        _write_csv(table, out_dir / "gipl_crosscheck.csv")
        _plot_gipl(g, ours, out_dir / "gipl_crosscheck.png")
    return table


def _plot_gipl(g: dict, ours: np.ndarray, path: Path) -> None:
    """Annual means of both models at three depths, then the monthly difference (a 135-year sawtooth is unreadable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depths = np.asarray(g["depths"])
    pick = sorted({int(np.abs(depths - d).argmin()) for d in (0.0, 0.5, 1.0)})
    n_years = len(g["air"]) // 12
    years = 1 + np.arange(n_years)
    annual = lambda a: a[: n_years * 12].reshape(n_years, 12, -1).mean(axis=1)  # noqa: E731
    ref_a, our_a = annual(g["result"]), annual(ours)
    fig, axes = plt.subplots(2, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    axes[0].plot(years, annual(np.asarray(g["air"])[:, None])[:, 0], color="0.5", lw=0.8, label="air T")
    for k, i in enumerate(pick):
        c = plt.get_cmap("tab10")(k)
        axes[0].plot(years, ref_a[:, i], color=c, lw=1.6, label=f"GIPL2 {depths[i]:.2f} m")
        axes[0].plot(years, our_a[:, i], color=c, lw=1.0, ls="--", label=f"geothaw {depths[i]:.2f} m")
        axes[1].plot(1 + np.arange(len(g["air"])) / 12.0, ours[:, i] - g["result"][:, i], color=c, lw=0.5,
                     label=f"{depths[i]:.2f} m")
    axes[0].set_ylabel("annual mean (°C)")
    axes[0].set_title("Barrow, CMIP5 forcing: geothaw physics vs GIPL2 (both models; a sanity check)")
    axes[0].legend(ncol=2, fontsize=8)
    axes[1].axhline(0, color="0.6", lw=0.6)
    axes[1].set_ylabel("monthly geothaw − GIPL2 (K)")
    axes[1].set_xlabel("model year")
    axes[1].legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


# ---- CLI entry ---------------------------------------------------------------------------------------
def find_checkpoints(run_dir: Path | None) -> list[Path]:
    if run_dir is None:
        return []
    return sorted(Path(run_dir).glob("checkpoints/*.pt"))


def validate_sites(sites: Iterable[str] | None, run_dir: Path | None, out_dir: Path, *,
                   data_dir: Path | None = None, physics: bool = True, gipl: bool = True,
                   require_checkpoints: bool = True) -> pd.DataFrame:
    """Validate the named sites (default: all) against every checkpoint in ``run_dir/checkpoints/*.pt``.

    ``data_dir`` defaults to ``$GEOTHAW_SITE_DATA`` or ``<repo>/../shared/data``. Writes per-site CSV/PNG and
    ``scores.csv`` (all sites) to ``out_dir`` (plus the GIPL cross-check with ``gipl``); returns the scores.
    Raises :class:`InputDataError` (one line) when the data folder or, with ``require_checkpoints``, the
    checkpoints are missing.
    """
    folder = Path(data_dir) if data_dir is not None else default_data_dir()
    if not folder.is_dir():
        raise InputDataError(f"site data folder not found: {folder} (set {SITE_DATA_ENV} or pass --data-dir)")
    cks = find_checkpoints(run_dir)
    if require_checkpoints and not cks:
        raise InputDataError(f"no checkpoints in {Path(run_dir or '.') / 'checkpoints'}/*.pt (train models first)")
    if not physics and not cks:
        raise InputDataError("nothing to validate: no checkpoints and physics disabled")
    names = list(sites) if sites else list_sites()
    out_dir = Path(out_dir)
    frames = [validate_site(load_site(n, folder), cks, out_dir=out_dir, physics=physics) for n in names]
    scores = pd.concat(frames, ignore_index=True)
    _write_csv(scores, out_dir / "scores.csv")
    if gipl and (folder / _GIPL_DIR).is_dir():
        gipl_crosscheck(folder, out_dir)
    return scores


def results_table(scores: pd.DataFrame) -> pd.DataFrame:
    """site × layer rows, ``<model> rmse`` / ``<model> bias`` columns (physics first)."""
    ok = scores.dropna(subset=["rmse"])
    piv = ok.pivot_table(index=["site", "layer"], columns="model", values=["rmse", "bias"])
    models = [PHYSICS] + sorted(m for m in ok["model"].unique() if m != PHYSICS)
    cols = [(v, m) for m in models for v in ("rmse", "bias") if (v, m) in piv.columns]
    out = piv[cols]
    out.columns = [f"{m} {v}" for v, m in cols]
    return out.reset_index()


__all__ = ["gipl_crosscheck", "results_table", "run_model", "run_physics", "score", "site_dataset",
           "site_forcing", "validate_site", "validate_sites"]
