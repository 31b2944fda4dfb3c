"""Evaluation: hold-out split, metrics, tables, plots and projection skill.

Hold-outs (both fixed by the config and seed, decided before any training):

* **time** — the last ``evaluation.holdout_years`` sample years; training never sees their targets
  (their input windows may reach into the preceding training year's forcing, as at projection time);
* **space** — spatial blocks of ``block_size_deg`` on a grid anchored at 0° (so a block means the same
  cells in every chunk); a seeded ``holdout_block_fraction`` of blocks that contain land is never trained on.

Scores: ``time`` = training-region cells × hold-out years; ``space`` = held-out cells × training years.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputDataError
from .features import TARGETS, FeatureSpec, make_inputs, predictions_to_dataset, prepare, sample_years, valid_cells
from .io.atomic import atomic_path, write_text_atomic

SEASONS = {"DJF": (12, 1, 2), "MAM": (3, 4, 5), "JJA": (6, 7, 8), "SON": (9, 10, 11)}
ERAS = {"2021-2040": (2021, 2040), "2041-2070": (2041, 2070), "2071-2100": (2071, 2100)}
METRIC_COLUMNS = ["model", "holdout", "depth", "band", "season", "n", "rmse", "mae", "bias", "r2"]


# ---- split -----------------------------------------------------------------------------------------
@dataclass
class Split:
    train_years: np.ndarray
    holdout_years: np.ndarray
    land: np.ndarray          # (lat, lon) bool
    holdout_mask: np.ndarray  # (lat, lon) bool: cells in held-out blocks
    n_blocks: int
    holdout_blocks: list[tuple[int, int]]
    block_size_deg: float

    def train_cells(self) -> tuple[np.ndarray, np.ndarray]:
        r, c = np.nonzero(self.land & ~self.holdout_mask)
        return r.astype("int64"), c.astype("int64")

    def holdout_cells(self) -> tuple[np.ndarray, np.ndarray]:
        r, c = np.nonzero(self.land & self.holdout_mask)
        return r.astype("int64"), c.astype("int64")

    def summary(self) -> dict:
        return {"train_years": [int(self.train_years.min()), int(self.train_years.max())],
                "holdout_years": [int(self.holdout_years.min()), int(self.holdout_years.max())],
                "n_blocks": self.n_blocks, "holdout_blocks": [list(b) for b in self.holdout_blocks],
                "block_size_deg": self.block_size_deg, "n_land_cells": int(self.land.sum()),
                "n_holdout_cells": int((self.land & self.holdout_mask).sum())}


def block_ids(lat: np.ndarray, lon: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Block (i, j) of every (lat, lon) grid cell, on a grid anchored at 0° (chunk-independent)."""
    bi = np.floor(np.asarray(lat) / size).astype("int64")
    bj = np.floor(np.asarray(lon) / size).astype("int64")
    return np.broadcast_arrays(bi[:, None], bj[None, :])


def make_split(cfg, ds: xr.Dataset) -> Split:
    """Deterministic (from ``cfg.seed``) time and space hold-outs for a canonical dataset."""
    years = sample_years(ds, cfg.features.window_months)
    n_hold = cfg.evaluation.holdout_years
    if years.size <= n_hold + 1:
        raise InputDataError(f"{years.size} sample years cannot leave {n_hold} hold-out years and still train")
    land = np.zeros((ds.sizes["latitude"], ds.sizes["longitude"]), bool)
    r, c = valid_cells(ds)
    land[r, c] = True
    size = cfg.evaluation.block_size_deg
    bi, bj = block_ids(ds["latitude"].values, ds["longitude"].values, size)
    blocks = sorted({(int(a), int(b)) for a, b in zip(bi[land], bj[land])})
    n_out = int(round(cfg.evaluation.holdout_block_fraction * len(blocks))) if len(blocks) > 1 else 0
    n_out = min(max(n_out, 1 if len(blocks) > 1 else 0), len(blocks) - 1)
    rng = np.random.default_rng(cfg.seed)
    chosen = [blocks[i] for i in sorted(rng.choice(len(blocks), n_out, replace=False))] if n_out else []
    hold = np.zeros_like(land)
    for a, b in chosen:  # loop over a handful of blocks, not cells
        hold |= (bi == a) & (bj == b)
    return Split(years[:-n_hold], years[-n_hold:], land, hold, len(blocks), chosen, size)


# ---- metrics ---------------------------------------------------------------------------------------
def regression_metrics(y: np.ndarray, y_hat: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, bias (mean of prediction − observation) and R² over all elements."""
    y = np.asarray(y, dtype="float64").ravel()
    p = np.asarray(y_hat, dtype="float64").ravel()
    if y.size == 0:
        return {"n": 0, "rmse": np.nan, "mae": np.nan, "bias": np.nan, "r2": np.nan}
    err = p - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"n": int(y.size), "rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err))),
            "bias": float(err.mean()), "r2": float(1 - np.sum(err ** 2) / ss_tot) if ss_tot > 0 else np.nan}


def exceedance_skill(obs_magt: np.ndarray, pred_magt: np.ndarray, threshold: float = 0.0) -> dict[str, float]:
    """Precision/recall/F1 of 'annual mean ground temperature > threshold' (positive = exceeds)."""
    o = np.asarray(obs_magt) > threshold
    p = np.asarray(pred_magt) > threshold
    tp, fp, fn = int(np.sum(o & p)), int(np.sum(~o & p)), int(np.sum(o & ~p))
    prec = tp / (tp + fp) if tp + fp else np.nan
    rec = tp / (tp + fn) if tp + fn else np.nan
    f1 = 2 * prec * rec / (prec + rec) if tp else (0.0 if (fp or fn) else np.nan)
    return {"n": int(o.size), "n_obs_exceed": int(o.sum()), "n_pred_exceed": int(p.sum()),
            "precision": prec, "recall": rec, "f1": f1}


def metrics_table(y: np.ndarray, y_hat: np.ndarray, band: np.ndarray, *, model: str, holdout: str,
                  band_labels: list[str]) -> pd.DataFrame:
    """Metrics per depth × latitude band (and ``all``) × season (and ``annual``) for [N, 12, 4] arrays."""
    rows = []
    month_idx = {s: [m - 1 for m in ms] for s, ms in SEASONS.items()}
    month_idx["annual"] = list(range(12))
    # each band's samples selected once (a boolean selection copies the whole [N, 12, 4] array)
    bands = [("all", y, y_hat)] + [(lab, y[band == i], y_hat[band == i]) for i, lab in enumerate(band_labels)]
    for d, depth in enumerate(TARGETS):
        for blab, yb, pb in bands:
            if not len(yb):
                continue
            for season, mi in month_idx.items():
                m = regression_metrics(yb[:, mi, d], pb[:, mi, d])
                rows.append({"model": model, "holdout": holdout, "depth": depth, "band": blab, "season": season, **m})
    return pd.DataFrame(rows, columns=METRIC_COLUMNS)


def exceedance_table(y: np.ndarray, y_hat: np.ndarray, *, model: str, holdout: str) -> pd.DataFrame:
    """Per-depth 0 °C exceedance skill of the yearly magt (mean of the 12 months)."""
    return pd.DataFrame([{"model": model, "holdout": holdout, "depth": depth,
                          **exceedance_skill(y[:, :, d].mean(1), y_hat[:, :, d].mean(1))}
                         for d, depth in enumerate(TARGETS)])


# ---- evaluating a run ------------------------------------------------------------------------------
def evaluation_sets(cfg, ds: xr.Dataset, split: Split, spec: FeatureSpec) -> dict[str, dict[str, np.ndarray]]:
    """Raw (un-normalised) ``time`` and ``space`` hold-out samples, cells capped at ``max_eval_cells``."""
    rng = np.random.default_rng(cfg.seed + 1)
    cap = cfg.evaluation.max_eval_cells

    def capped(cells: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        if cells[0].size <= cap:
            return cells
        keep = np.sort(rng.choice(cells[0].size, cap, replace=False))
        return cells[0][keep], cells[1][keep]

    out = {"time": make_inputs(ds, split.holdout_years, spec, cells=capped(split.train_cells()), with_target=True,
                               normalize=False)}
    hc = split.holdout_cells()
    if hc[0].size:
        out["space"] = make_inputs(ds, split.train_years, spec, cells=capped(hc), with_target=True, normalize=False)
    return out


def cached_evaluation_sets(cfg, ds: xr.Dataset, spec: FeatureSpec, cache: dict,
                           split: Split | None = None) -> dict[str, dict[str, np.ndarray]]:
    """:func:`evaluation_sets` for ``spec``, computed once per feature options (not per model) and kept in
    ``cache``: the samples depend on those options (e.g. the scenario signal), never on the weights."""
    key = json.dumps({k: v for k, v in spec.to_dict().items() if k != "norm"}, sort_keys=True)
    if key not in cache:
        cache[key] = evaluation_sets(cfg, ds, split if split is not None else make_split(cfg, ds), spec)
    return cache[key]


def evaluate_run(cfg, dataset: xr.Dataset, run_dir: str | Path, models: list[str] | None = None, *,
                 plots: bool = True, out_dir: str | Path | None = None, sets_cache: dict | None = None) -> pd.DataFrame:
    """Score every checkpoint in ``<run_dir>/checkpoints`` (or ``models``) on both hold-outs.

    Writes ``metrics.csv``, ``exceedance.csv``, ``metrics.md`` and (with ``plots``) ``rmse_by_depth.png`` and
    ``seasonal_cycle.png`` into ``out_dir`` (default ``<run_dir>/evaluation``). Returns the metrics table.
    ``sets_cache`` keeps the hold-out samples for a later caller (the attribution scores the same samples).
    """
    from .domain import Domain
    from .training import CHECKPOINT_DIR, load_checkpoint, predict

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "evaluation"
    ck_dir = run_dir / CHECKPOINT_DIR
    names = models if models is not None else sorted(p.stem for p in ck_dir.glob("*.pt"))
    if not names:
        raise InputDataError(f"no checkpoints in {ck_dir}; run training first")
    ds = prepare(dataset)
    split = make_split(cfg, ds)
    band_labels = Domain(band_edges=tuple(cfg.domain.band_edges)).band_labels()
    cache = sets_cache if sets_cache is not None else {}
    frames, exc, preds, trained = [], [], {}, {}
    for name in names:
        loaded = load_checkpoint(ck_dir / f"{name}.pt")
        trained[name] = loaded.meta.get("metrics", {})
        for holdout, raw in cached_evaluation_sets(cfg, ds, loaded.features, cache, split).items():
            y_hat = predict(loaded.model, loaded.features, loaded.features.normalize(raw))
            frames.append(metrics_table(raw["target"], y_hat, raw["band"], model=name, holdout=holdout,
                                        band_labels=band_labels))
            exc.append(exceedance_table(raw["target"], y_hat, model=name, holdout=holdout))
            preds[(name, holdout)] = (raw, y_hat)
    table = pd.concat(frames, ignore_index=True)
    ex = pd.concat(exc, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "metrics.csv", table.to_csv(index=False))
    write_text_atomic(out_dir / "exceedance.csv", ex.to_csv(index=False))
    write_text_atomic(out_dir / "metrics.md", metrics_markdown(table, ex, split, trained))
    if plots:
        plot_rmse_by_depth(table, out_dir / "rmse_by_depth.png", trained)
        plot_seasonal_cycle(preds, out_dir / "seasonal_cycle.png")
    return table


def metrics_markdown(table: pd.DataFrame, exceed: pd.DataFrame | None = None, split: Split | None = None,
                     trained: dict[str, dict] | None = None) -> str:
    """Markdown summary: RMSE per model × depth for each hold-out (all bands, annual), then skill scores.
    ``trained`` (model → checkpoint metrics) adds how long each network trained when a shortlist stopped some."""
    lines = ["# Evaluation", ""]
    if split is not None:
        s = split.summary()
        lines += [f"Training years {s['train_years'][0]}–{s['train_years'][1]}, hold-out years "
                  f"{s['holdout_years'][0]}–{s['holdout_years'][1]}; {len(s['holdout_blocks'])} of {s['n_blocks']} "
                  f"{s['block_size_deg']:g}° blocks ({s['n_holdout_cells']} cells) held out in space.", ""]
    lines += _shortlist_lines(trained or {})
    sub = table[(table["band"] == "all") & (table["season"] == "annual")]
    for holdout, g in sub.groupby("holdout", sort=False):
        lines += [f"## {holdout} hold-out: RMSE / bias / R² (°C), all bands, all months", ""]
        wide = g.pivot(index="model", columns="depth", values="rmse").sort_values("stl1")
        bias = g.pivot(index="model", columns="depth", values="bias")
        r2 = g.pivot(index="model", columns="depth", values="r2")
        lines.append("| model | " + " | ".join(f"{d} RMSE | {d} bias | {d} R²" for d in TARGETS) + " |")
        lines.append("|---|" + "---:|" * (3 * len(TARGETS)))
        for model in wide.index:
            cells = [f"{wide.loc[model, d]:.2f} | {bias.loc[model, d]:+.2f} | {r2.loc[model, d]:.3f}" for d in TARGETS]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    if exceed is not None and len(exceed):
        lines += ["## 0 °C exceedance of yearly magt: F1 (precision / recall)", ""]
        lines.append("| model | hold-out | " + " | ".join(TARGETS) + " |")
        lines.append("|---|---|" + "---:|" * len(TARGETS))
        for (model, holdout), g in exceed.groupby(["model", "holdout"], sort=False):
            g = g.set_index("depth")
            cells = [f"{g.loc[d, 'f1']:.2f} ({g.loc[d, 'precision']:.2f}/{g.loc[d, 'recall']:.2f})" for d in TARGETS]
            lines.append(f"| {model} | {holdout} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _shortlist_lines(trained: dict[str, dict]) -> list[str]:
    """Which networks the shortlist stopped early: their errors are those of a shorter training."""
    stopped = sorted(n for n, m in trained.items() if m.get("paused"))
    if not stopped:
        return []
    full = [f"{n} {m['epochs_run']} epochs (best {m['best_epoch']})" for n, m in sorted(trained.items())
            if "epochs_run" in m and not m.get("paused")]
    k = max(trained[n]["epochs_run"] for n in stopped)
    epochs = f"{k} epoch" + ("s" if k != 1 else "")
    return [f"Trained to the end: {', '.join(full)}. Stopped by the shortlist after {epochs} "
            f"(`training.shortlist_epochs`): {', '.join(stopped)}; their errors are those of {epochs}.", ""]


# ---- plots -----------------------------------------------------------------------------------------
def _save_fig(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def plot_rmse_by_depth(table: pd.DataFrame, path: str | Path, trained: dict[str, dict] | None = None) -> Path:
    """One panel per depth: grouped bars of each model's RMSE for each hold-out. A network the shortlist stopped
    (``trained``: model → checkpoint metrics) is labelled with its epochs, so its bar is not read as trained out."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sub = table[(table["band"] == "all") & (table["season"] == "annual")]
    models = list(sub.groupby("model")["rmse"].mean().sort_values().index)
    holdouts = list(dict.fromkeys(sub["holdout"]))
    fig, axes = plt.subplots(1, len(TARGETS), figsize=(3.2 * len(TARGETS), 3.6), sharey=True)
    width = 0.8 / max(len(holdouts), 1)
    x = np.arange(len(models))
    for ax, depth in zip(axes, TARGETS):
        for k, h in enumerate(holdouts):
            vals = sub[(sub["depth"] == depth) & (sub["holdout"] == h)].set_index("model")["rmse"].reindex(models)
            ax.bar(x + (k - (len(holdouts) - 1) / 2) * width, vals.values, width, label=f"{h} hold-out")
        ax.set_xticks(x, [_label(m, (trained or {}).get(m, {})) for m in models], rotation=45, ha="right")
        ax.set_title(depth)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("RMSE (°C)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("Monthly soil temperature RMSE on held-out data")
    fig.tight_layout()
    return _save_fig(fig, Path(path))


def _label(model: str, metrics: dict) -> str:
    return f"{model} ({metrics['epochs_run']} ep, shortlist)" if metrics.get("paused") else model


def plot_seasonal_cycle(preds: dict, path: str | Path, n_cells: int = 3, holdout: str = "time") -> Path:
    """Observed vs predicted mean seasonal cycle (over the hold-out years) at a few cells, stl1 and stl4."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    items = {m: v for (m, h), v in preds.items() if h == holdout} or {m: v for (m, _), v in preds.items()}
    first = next(iter(items.values()))[0]
    keys = np.unique(np.stack([first["row"], first["col"]], 1), axis=0)
    # Cells spread from coldest to warmest observed magt so the panels show contrasting regimes.
    cell_mean = {tuple(k): first["target"][(first["row"] == k[0]) & (first["col"] == k[1])].mean() for k in keys}
    ordered = sorted(cell_mean, key=cell_mean.get)
    pick = [ordered[i] for i in np.linspace(0, len(ordered) - 1, min(n_cells, len(ordered))).astype(int)]
    depths = [0, 3]
    fig, axes = plt.subplots(len(depths), len(pick), figsize=(3.6 * len(pick), 5.6), sharex=True, squeeze=False)
    months = np.arange(1, 13)
    for j, (r, c) in enumerate(pick):
        for i, d in enumerate(depths):
            ax = axes[i, j]
            for k, (model, (raw, y_hat)) in enumerate(items.items()):
                sel = (raw["row"] == r) & (raw["col"] == c)
                if k == 0:
                    ax.plot(months, raw["target"][sel, :, d].mean(0), "k-", lw=2.2, label="observed")
                ax.plot(months, y_hat[sel, :, d].mean(0), lw=1.2, alpha=0.85, label=model)
            ax.axhline(0, color="grey", lw=0.6, ls=":")
            lat, lon = first["coords"][(first["row"] == r) & (first["col"] == c)][0]
            ax.set_title(f"{TARGETS[d]} at {lat:.2f}N {lon:.2f}E", fontsize=9)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("°C")
            if i == len(depths) - 1:
                ax.set_xticks(months, list("JFMAMJJASOND"))
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Mean seasonal cycle over the {holdout} hold-out")
    fig.tight_layout()
    return _save_fig(fig, Path(path))


# ---- projection skill ------------------------------------------------------------------------------
def yearly_magt(ds: xr.Dataset) -> xr.Dataset:
    """Annual mean of ``stl1..stl4`` per calendar year.

    Whole January–December records (the usual case) are averaged 12 months at a time with ``coarsen``, one
    vectorised reduction; a ``groupby`` over years built a dask task and a concatenation per year (≈ 3 s of the
    quick run's skill stage). Other records fall back to ``groupby`` (partial years are averaged as they are).
    """
    ds = ds[list(TARGETS)]
    time = ds.indexes["time"]
    whole_years = (len(time) % 12 == 0 and len(time) > 0 and time[0].month == 1
                   and bool(np.all(np.diff(time.year * 12 + time.month) == 1)))
    if not whole_years:
        return ds.groupby("time.year").mean("time")
    years = time.year[::12].to_numpy()
    return ds.coarsen(time=12).mean().rename(time="year").assign_coords(year=years)


def score_projection(pred: dict[str, xr.Dataset], truth: dict[str, xr.Dataset], *,
                     eras: dict[str, tuple[int, int]] = ERAS, divergence_era: str = "2071-2100",
                     low: str = "rcp45", high: str = "rcp85") -> pd.DataFrame:
    """Yearly-magt RMSE per scenario × era × depth, plus the ``high − low`` divergence over ``divergence_era``.

    Eras without any common year are skipped (no rows), so short test records work.

    ``pred``/``truth`` map scenario names to datasets with ``stl1..stl4`` on (time, latitude, longitude).
    Per scenario × era × depth also the share of scored cells whose era-mean MAGT is above 0 °C, modelled and in
    the physics (``above0_share_pred``/``above0_share_truth``): what a bias does to a thaw map. Divergence rows:
    ``divergence_pred``/``divergence_truth`` (domain-mean °C) and ``divergence_error`` (cell RMSE of the
    predicted vs true divergence map).
    """
    rows = []
    mp = {s: yearly_magt(pred[s]) for s in pred}
    mt = {s: yearly_magt(truth[s]) for s in pred}
    for scen in pred:
        for era, (a, b) in eras.items():
            p, t = mp[scen].sel(year=slice(a, b)), mt[scen].sel(year=slice(a, b))
            p, t = xr.align(p, t, join="inner")
            if p.sizes["year"] == 0:
                continue
            for depth in TARGETS:
                ok = np.isfinite(p[depth].values) & np.isfinite(t[depth].values)
                m = regression_metrics(t[depth].values[ok], p[depth].values[ok])
                rows.append({"scenario": scen, "era": era, "depth": depth, "metric": "magt_rmse", "value": m["rmse"]})
                rows.append({"scenario": scen, "era": era, "depth": depth, "metric": "magt_bias", "value": m["bias"]})
                pe, te = p[depth].mean("year").values, t[depth].mean("year").values
                cells = np.isfinite(pe) & np.isfinite(te)
                if cells.any():
                    for name, era_mean in (("above0_share_pred", pe), ("above0_share_truth", te)):
                        rows.append({"scenario": scen, "era": era, "depth": depth, "metric": name,
                                     "value": float((era_mean[cells] > 0).mean())})
    a, b = eras.get(divergence_era, (2071, 2100))
    covered = all(((m[s]["year"] >= a) & (m[s]["year"] <= b)).any() for m in (mp, mt) for s in (low, high)
                  if s in m)
    if low in pred and high in pred and covered:
        for depth in TARGETS:
            dp = (mp[high][depth].sel(year=slice(a, b)).mean("year") - mp[low][depth].sel(year=slice(a, b)).mean("year"))
            dt = (mt[high][depth].sel(year=slice(a, b)).mean("year") - mt[low][depth].sel(year=slice(a, b)).mean("year"))
            ok = np.isfinite(dp.values) & np.isfinite(dt.values)
            base = {"scenario": f"{high}-{low}", "era": f"{a}-{b}", "depth": depth}
            rows += [{**base, "metric": "divergence_pred", "value": float(dp.values[ok].mean())},
                     {**base, "metric": "divergence_truth", "value": float(dt.values[ok].mean())},
                     {**base, "metric": "divergence_error",
                      "value": float(np.sqrt(np.mean((dp.values[ok] - dt.values[ok]) ** 2)))}]
    return pd.DataFrame(rows, columns=["scenario", "era", "depth", "metric", "value"])


def scenario_predictions(loaded, forcing: dict[str, xr.Dataset], years, *, batch_size: int = 4096,
                         rows_per_chunk: int = 16) -> dict[str, xr.Dataset]:
    """A loaded checkpoint's monthly ``stl1..stl4`` under each scenario's forcing (see ``projection_skill``),
    ``rows_per_chunk`` latitude rows at a time."""
    from .training import predict

    pred = {}
    for scen, fds in forcing.items():
        parts = []
        for i in range(0, fds.sizes["latitude"], rows_per_chunk):
            chunk = fds.isel(latitude=slice(i, i + rows_per_chunk))
            inputs = make_inputs(chunk, years, loaded.features, scenario=scen)
            y_hat = predict(loaded.model, loaded.features, inputs, batch_size)
            parts.append(predictions_to_dataset(y_hat, inputs, chunk, years))
        pred[scen] = xr.concat(parts, dim="latitude")
    return pred


def projection_skill(checkpoints: list[str | Path], forcing: dict[str, xr.Dataset], truth: dict[str, xr.Dataset],
                     years=range(2006, 2101), *, batch_size: int = 4096, rows_per_chunk: int = 16,
                     eras: dict[str, tuple[int, int]] = ERAS, divergence_era: str = "2071-2100") -> pd.DataFrame:
    """Run each checkpoint on bias-free scenario forcing and score it against physics truth.

    ``forcing[scenario]`` is a canonical dataset (t2m, tp, statics) that starts early enough for the window
    and, for ``warming_anomaly`` models, covers the anomaly baseline (i.e. historical + scenario forcing).
    ``truth[scenario]`` holds the physics ``stl1..stl4``. Passing one checkpoint per scenario-signal option
    gives the comparison of both options; the ``scenario_signal`` column tells them apart. Latitude rows are
    processed in chunks of ``rows_per_chunk`` to bound memory.
    """
    from .training import load_checkpoint

    frames = []
    for ck in checkpoints:
        loaded = load_checkpoint(ck)
        pred = scenario_predictions(loaded, forcing, years, batch_size=batch_size, rows_per_chunk=rows_per_chunk)
        df = score_projection(pred, truth, eras=eras, divergence_era=divergence_era)
        df.insert(0, "scenario_signal", loaded.features.scenario_signal)
        df.insert(0, "model", loaded.meta["model"])
        frames.append(df)
    return pd.concat(frames, ignore_index=True)
