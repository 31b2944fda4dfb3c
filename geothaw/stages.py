"""The pipeline's stages: each a plain function ``stage(ctx) -> dict summary`` over the run directory.

Stages read what earlier stages wrote (run directory, synthetic world) and never hold the domain × period cube
in memory: forcing stays lazy (dask) and is reduced chunk by chunk.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import RunConfig
from .cpus import available_cpus
from .domain import Domain
from .errors import ConfigError, InputDataError
from .io.atomic import atomic_path, write_text_atomic
from .scenarios import HISTORICAL_END as HIST_END

STATIC_VARS = ("elevation", "slt", "cvh", "cvl", "lsm", "z", "swvl1", "swvl2", "swvl3", "swvl4")


class LoggedProgress(Progress):
    """A progress display for consoles that are not terminals (a log file, a batch job, ``nohup``): rich draws
    nothing there until the stage ends, so each task also prints a plain line every ``every`` seconds and
    once when it finishes."""

    def __init__(self, *columns, every: float = 60.0, **kwargs):
        super().__init__(*columns, **kwargs)
        self.every = every
        self._logged: dict = {}

    def add_task(self, *args, **kwargs):
        task_id = super().add_task(*args, **kwargs)
        self._logged[task_id] = time.monotonic()
        return task_id

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._log(task_id)

    def advance(self, task_id, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._log(task_id)

    def _log(self, task_id) -> None:
        last = self._logged.get(task_id)
        task = next((t for t in self.tasks if t.id == task_id), None)
        if task is None or last is None or (not task.finished and time.monotonic() - last < self.every):
            return
        self._logged[task_id] = None if task.finished else time.monotonic()  # a finished task logs once
        line = f"  {task.description}: {task.completed:g}/{task.total:g}" if task.total else f"  {task.description}"
        if task.total:
            line += f" ({100 * task.completed / task.total:.0f} %), {_clock(task.elapsed)} elapsed"
            if not task.finished and task.time_remaining is not None:
                line += f", eta {_clock(task.time_remaining)}"
        self.console.print(line, highlight=False)


def _clock(seconds: float | None) -> str:
    s = int(seconds or 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def progress_bar(console: Console | None = None, *, every: float = 60.0) -> Progress:
    """One rich progress display per stage: description, bar, counts, elapsed and ETA (plain lines every
    ``every`` seconds instead when the console is not a terminal)."""
    columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    if console is not None and not console.is_terminal:
        return LoggedProgress(*columns, every=every, console=console, transient=False)
    return Progress(*columns, console=console, transient=False, disable=console is None)


@dataclass
class Context:
    """What every stage gets: the config, the run directory, a console, and the resolved input paths."""

    cfg: RunConfig
    run_dir: Path
    console: Console | None = None
    _cache: dict = field(default_factory=dict)

    # ---- inputs ---------------------------------------------------------------------------------------
    @property
    def synthetic(self) -> bool:
        return self.cfg.data.source == "synthetic"

    def domain(self) -> Domain:
        dom = Domain.from_config(self.cfg.domain)
        return dom.coarsen(self.cfg.data.synthetic.coarsen) if self.synthetic else dom

    def world_dir(self) -> Path:
        from .synthetic import world_hash

        return Path(self.cfg.data.synthetic.out_dir) / f"world-{world_hash(self.cfg)}"

    def world(self):
        from .synthetic import world_paths

        return world_paths(self.cfg, self.world_dir())

    def era5_paths(self) -> tuple[list[Path], list[Path]]:
        if self.synthetic:
            w = self.world()
            return list(w.era5land), [w.invariants]
        return list(self.cfg.data.era5land), list(self.cfg.data.invariants)

    def cmip5_paths(self) -> dict[str, dict[str, list[Path]]]:
        if self.synthetic:
            return self.world().cmip5
        if not self.cfg.data.cmip5:
            raise ConfigError("data.cmip5 lists no GCM files: projection needs at least one GCM")
        return self.cfg.data.cmip5

    def open_inputs(self) -> xr.Dataset:
        """The reanalysis record straight from the ERA5-Land files (lazy canonical dataset incl. invariants)."""
        from .io.era5land import open_era5land

        files, inv = self.era5_paths()
        ds = open_era5land(files, self.domain(), invariants=inv or None)
        p = self.cfg.period
        ds = ds.sel(time=slice(f"{p.start_year}-01-01", f"{p.end_year}-12-01"))
        if self.synthetic:
            ds = _add_world_statics(ds, self.world().statics, ["soil_class", *self.cfg.features.extra_static])
        return ds

    def record(self) -> xr.Dataset:
        """The reanalysis record from the run's input store (written once by the ``inputs`` stage): time in one
        chunk (windows and the snowpack run along it), space in blocks, so any cell subset reads only its blocks."""
        if "record" not in self._cache:
            path = self.run_dir / "inputs" / "record.zarr"
            if not path.exists():
                raise InputDataError(f"input store {path} is missing; run the 'inputs' stage first")
            self._cache["record"] = xr.open_zarr(path, consolidated=False)
        return self._cache["record"]

    def statics(self) -> xr.Dataset:
        """2-D static fields for projection: invariants plus the soil-water climatology of the record."""
        if "statics" not in self._cache:
            rec = self.record()
            names = [*STATIC_VARS, *self.cfg.features.extra_static]
            out = {v: rec[v] for v in names if v in rec and "time" not in rec[v].dims}
            p = self.cfg.period
            for v in ("swvl1", "swvl2", "swvl3", "swvl4"):
                if v in rec and "time" in rec[v].dims:
                    out[v] = rec[v].sel(time=slice(f"{max(p.start_year, p.end_year - 29)}-01-01", None)).mean("time")
            if "soil_class" in rec:
                out["soil_class"] = rec["soil_class"]
            self._cache["statics"] = xr.Dataset(out).compute()
        return self._cache["statics"]

    def path(self, *parts: str) -> Path:
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def _add_world_statics(ds: xr.Dataset, statics_path: Path, names: list[str]) -> xr.Dataset:
    """Fields of the synthetic world's statics that the invariant files do not carry (ground class, and
    hidden ground parameters asked for as diagnostics features)."""
    grid = ds["t2m"].isel(time=0, drop=True)
    with xr.open_dataset(statics_path) as st:
        for name in names:
            if name in st and name not in ds:
                ds = ds.assign({name: st[name].reindex_like(grid, method="nearest", tolerance=1e-6).load()})
    return ds


# ---- stages --------------------------------------------------------------------------------------------
def stage_world(ctx: Context) -> dict:
    """Build (or reuse) the physics-grounded synthetic Alaska in ERA5-Land and CMIP5 formats."""
    if not ctx.synthetic:  # the config already checked that the files exist
        return {"source": "files", "era5land_files": len(ctx.era5_paths()[0])}
    from .synthetic import build_world

    with progress_bar(ctx.console) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        summary = build_world(ctx.cfg, ctx.world_dir(), progress=report)
    return {"world": str(ctx.world_dir()), "land_cells": summary.get("land_cells"),
            "build_seconds": round(summary.get("timings", {}).get("total_s", 0.0), 1)}


def stage_inputs(ctx: Context) -> dict:
    """Read the ERA5-Land files once into a canonical zarr store chunked for per-cell access."""
    import shutil

    ds = ctx.open_inputs()
    n = 64
    ds = ds.chunk({"time": -1, "latitude": n, "longitude": n})
    for v in ds.variables.values():
        v.encoding.clear()
    final = ctx.path("inputs", "record.zarr")
    tmp = final.with_name(".record.zarr.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with progress_bar(ctx.console) as bar:
        task = bar.add_task("writing input store", total=1)
        ds.to_zarr(tmp, mode="w", consolidated=False)
        bar.advance(task)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # a directory store: rename makes it appear whole
    ctx._cache.pop("record", None)
    return {"variables": sorted(ds.data_vars), "months": int(ds.sizes["time"]),
            "grid": [int(ds.sizes["latitude"]), int(ds.sizes["longitude"])]}


def stage_train(ctx: Context) -> dict:
    """Train every configured architecture and baseline on the reanalysis record."""
    from .training import train_all

    with progress_bar(ctx.console) as bar:
        results = train_all(ctx.cfg, ctx.record(), ctx.run_dir, progress=bar)
    return {name: {"checkpoint": str(r.checkpoint.relative_to(ctx.run_dir)),
                   "val_rmse": round(float(np.mean(list(r.metrics.get("val_rmse_by_depth", {}).values()) or [np.nan])), 3)}
            for name, r in results.items()}


def best_model(run_dir: Path, cfg: RunConfig) -> str:
    """The trained sequence model with the lowest mean validation RMSE (baselines are not candidates)."""
    scores = {}
    for name in cfg.training.models:
        meta = run_dir / "checkpoints" / f"{name}.json"
        if meta.exists():
            m = json.loads(meta.read_text()).get("metrics", {}).get("val_rmse_by_depth", {})
            if m:
                scores[name] = float(np.mean(list(m.values())))
    if not scores:
        raise InputDataError(f"no trained sequence model found in {run_dir / 'checkpoints'}")
    return min(scores, key=scores.get)


def stage_evaluate(ctx: Context) -> dict:
    """Score every model on held-out years and held-out spatial blocks; pick the best; attribute it."""
    from .attribution import attribute_run
    from .evaluation import evaluate_run

    sets: dict = {}  # the hold-out samples, read once for the scores and the attribution
    table = evaluate_run(ctx.cfg, ctx.record(), ctx.run_dir, sets_cache=sets)
    best = best_model(ctx.run_dir, ctx.cfg)
    attribute_run(ctx.cfg, ctx.record(), ctx.run_dir, best, n_repeats=ctx.cfg.evaluation.attribution_repeats,
                  sets_cache=sets)
    write_text_atomic(ctx.path("best_model.json"), json.dumps({"model": best}, indent=2))
    sel = table[(table["band"] == "all") & (table["season"] == "annual")]
    rmse = sel.groupby(["model", "holdout"])["rmse"].mean().unstack().round(3)
    return {"best_model": best, "rmse_by_holdout": rmse.to_dict(orient="index")}


def stage_biascorrect(ctx: Context) -> dict:
    """Quantile-map each GCM's t2m and tp onto the reanalysis at ~1° over the historical overlap (xsdba, by month),
    and store the reanalysis monthly climatologies used to disaggregate the corrected change back onto the grid."""
    from .biascorrect import BiasAdjustment, coarse_factor, monthly_climatology, to_coarse
    from .io.writers import write_netcdf

    rec = ctx.record()
    y0 = ctx.cfg.period.start_year
    dom = ctx.domain()
    f = coarse_factor(dom.resolution)
    coarse = dom.coarsen(f)
    ref_f = rec[["t2m", "tp"]].sel(time=slice(f"{y0}-01-01", f"{HIST_END}-12-01"))
    ref_c = to_coarse(ref_f, f)
    land_c = ref_c["t2m"].isel(time=0, drop=True).notnull()
    write_netcdf(monthly_climatology(ref_c), ctx.path("biascorrect", "ref_climatology_coarse.nc"))
    write_netcdf(monthly_climatology(ref_f).compute(), ctx.path("biascorrect", "ref_climatology.nc"))
    out = {"coarse_grid_deg": coarse.resolution}
    gcms = list(ctx.cmip5_paths())
    with progress_bar(ctx.console) as bar:
        task = bar.add_task("quantile mapping", total=len(gcms))
        for gcm in gcms:
            hist = _gcm_experiment(ctx, gcm, "historical", coarse).sel(time=slice(f"{y0}-01-01", f"{HIST_END}-12-01"))
            if ref_c.sizes["time"] != hist.sizes["time"]:
                raise InputDataError(f"{gcm}: historical run and reanalysis overlap on {min(ref_c.sizes['time'], hist.sizes['time'])} "
                                     "months only; bias correction needs the same months in both")
            r, h = _stack_land(ref_c, land_c), _stack_land(hist[["t2m", "tp"]], land_c).load()
            qm = BiasAdjustment.train(r, h, nquantiles=50)
            qm.save(ctx.run_dir / "biascorrect" / gcm)
            adj = qm.adjust(h)
            out[gcm] = {"t2m_bias_before": round(float(h["t2m"].mean() - r["t2m"].mean()), 2),
                        "t2m_bias_after": round(float(adj["t2m"].mean() - r["t2m"].mean()), 3),
                        "tp_ratio_before": round(float(h["tp"].mean() / r["tp"].mean()), 3),
                        "tp_ratio_after": round(float(adj["tp"].mean() / r["tp"].mean()), 3)}
            bar.advance(task)
    return out


def _gcm_experiment(ctx: Context, gcm: str, exp: str, domain: Domain) -> xr.Dataset:
    from .io.cmip5 import open_cmip5

    files = ctx.cmip5_paths()[gcm].get(exp)
    if not files:
        raise ConfigError(f"data.cmip5.{gcm} has no '{exp}' files")
    return open_cmip5(files, domain, variables=("tas", "pr"))


def _stack_land(ds: xr.Dataset, land: xr.DataArray) -> xr.Dataset:
    """(time, lat, lon) → (time, cell) over land cells only: bias correction never touches sea cells."""
    rows, cols = np.nonzero(land.values)
    cell = xr.DataArray(np.arange(rows.size), dims="cell")
    out = ds.isel(latitude=xr.DataArray(rows, dims="cell"), longitude=xr.DataArray(cols, dims="cell"))
    return out.drop_vars(["latitude", "longitude"]).assign_coords(cell=cell)


def _unstack_land(ds: xr.Dataset, land: xr.DataArray) -> xr.Dataset:
    """Inverse of :func:`_stack_land`: scatter cells back onto the grid (sea stays NaN)."""
    rows, cols = np.nonzero(land.values)
    ny, nx = land.shape
    out = {}
    for name, da in ds.data_vars.items():
        grid = np.full((da.sizes["time"], ny, nx), np.nan, dtype="float32")
        grid[:, rows, cols] = da.transpose("time", "cell").values
        out[name] = (("time", "latitude", "longitude"), grid, da.attrs)
    return xr.Dataset(out, coords={"time": ds["time"], "latitude": land["latitude"], "longitude": land["longitude"]})


def _disaggregate_block(clim_block: xr.Dataset, adjusted_coarse: xr.Dataset, clim_coarse: xr.Dataset) -> xr.Dataset:
    from .biascorrect import disaggregate

    land = clim_block["t2m"].isel(month=0, drop=True).notnull()
    return disaggregate(adjusted_coarse, clim_coarse, clim_block, land)


def scenario_forcing(ctx: Context, gcm: str, scenario: str) -> xr.Dataset:
    """Bias-corrected historical + scenario forcing of one GCM on the run's grid, lazily (dask), with statics.

    The quantile mapping runs on the ~1° grid (small); the fine grid is assembled block by block inside dask,
    so memory stays bounded by the chunk size.
    """
    import dask.array as da

    from .biascorrect import BiasAdjustment, coarse_factor
    from .projection import block_chunks

    cfg = ctx.cfg
    dom = ctx.domain()
    coarse = dom.coarsen(coarse_factor(dom.resolution))
    hist = _gcm_experiment(ctx, gcm, "historical", coarse).sel(time=slice(f"{cfg.period.start_year}-01-01", f"{HIST_END}-12-01"))
    fut = _gcm_experiment(ctx, gcm, scenario, coarse).sel(
        time=slice(f"{HIST_END + 1}-01-01", f"{cfg.period.projection_end_year}-12-01"))
    sim = xr.concat([hist[["t2m", "tp"]], fut[["t2m", "tp"]]], dim="time")
    with xr.open_dataset(ctx.run_dir / "biascorrect" / "ref_climatology_coarse.nc") as c:
        clim_c = c.load()
    land_c = clim_c["t2m"].isel(month=0, drop=True).notnull()
    adjusted = _unstack_land(BiasAdjustment.load(ctx.run_dir / "biascorrect" / gcm).adjust(_stack_land(sim, land_c).load()),
                             land_c)
    ny, nx = dom.shape
    blocks = block_chunks((ny, nx), cfg.projection.chunk_cells)
    clim_f = xr.open_dataset(ctx.run_dir / "biascorrect" / "ref_climatology.nc", chunks={"month": -1, **blocks})
    template = xr.Dataset({v: (("time", "latitude", "longitude"),
                               da.zeros((adjusted.sizes["time"], ny, nx),
                                        chunks=(-1, blocks["latitude"], blocks["longitude"]), dtype="float32"))
                           for v in ("t2m", "tp")},
                          coords={"time": adjusted["time"], "latitude": clim_f["latitude"], "longitude": clim_f["longitude"]})
    fine = xr.map_blocks(_disaggregate_block, clim_f, kwargs={"adjusted_coarse": adjusted, "clim_coarse": clim_c},
                         template=template)
    fine["t2m"].attrs = {"units": "degC"}
    fine["tp"].attrs = {"units": "mm month-1"}
    statics = ctx.statics().chunk(blocks)
    return xr.merge([fine, statics], compat="override", join="left")


def stage_project(ctx: Context) -> dict:
    """Project the best model over the domain for every GCM × scenario (dask), writing yearly products.

    A GCM's scenarios are computed together, so the historical years they share are predicted once.
    """
    from .io.writers import write_scenario_products
    from .projection import dask_scheduler, project_scenarios

    cfg = ctx.cfg
    best = json.loads((ctx.run_dir / "best_model.json").read_text())["model"]
    ckpt = ctx.run_dir / "checkpoints" / f"{best}.pt"
    years = np.arange(cfg.projection.first_year, cfg.period.projection_end_year + 1)
    prov = {"model": best, "config_hash": cfg.hash(), "geothaw_version": _version()}
    out = {}
    gcms = list(ctx.cmip5_paths())
    scenarios = list(cfg.projection.scenarios)
    with progress_bar(ctx.console) as bar, dask_scheduler(cfg.projection.scheduler, workers=cfg.projection.workers):
        task = bar.add_task(f"projecting {best}", total=len(gcms))
        for i, gcm in enumerate(gcms):
            targets = {scen: ctx.path("products", f"{gcm}_{scen}.nc") for scen in scenarios}
            # all or none: a GCM's scenarios share their history, so they are always computed (and rewritten) together
            if not all(t.exists() for t in targets.values()):
                prod = project_scenarios({scen: scenario_forcing(ctx, gcm, scen) for scen in scenarios}, ckpt,
                                         years=years, chunk_cells=cfg.projection.chunk_cells,
                                         batch_size=cfg.projection.batch_size)
                # streamed: computed and written one longitude slab at a time, so memory follows the slab
                write_scenario_products(prod, targets, provenance={**prov, "gcm": gcm},
                                        on_slab=lambda done, total, i=i: bar.update(task, completed=i + done / total))
            out.update({f"{gcm}_{scen}": str(t.relative_to(ctx.run_dir)) for scen, t in targets.items()})
            bar.update(task, completed=i + 1)
        jobs = [{"member_paths": [ctx.run_dir / "products" / f"{g}_{scen}.nc" for g in gcms],
                 "target": ctx.path("products", f"ensemble_{scen}.nc"), "scenario": scen,
                 "provenance": {**prov, "gcms": ",".join(gcms), "ensemble": "mean of GCM members"}} for scen in scenarios]
        # on a cluster the members are read by its workers; locally, one process per scenario
        write_ensembles(jobs, workers=available_cpus() if cfg.projection.scheduler is None else 1)
        out.update({f"ensemble_{scen}": f"products/ensemble_{scen}.nc" for scen in scenarios})
    return out


ENSEMBLE_PROCESS_BYTES = 64 * 2**20  # members' bytes from which a scenario's ensemble gains from a process of its own


def write_ensembles(jobs: list[dict], *, workers: int) -> None:
    """:func:`write_ensemble` for each job (its keyword arguments), in up to ``workers`` spawned processes.

    An ensemble is HDF5 decompression and compression, which one process serialises (HDF5 is not thread-safe):
    the full default's two took 88.7 s one after the other and 58.7 s in two processes, the same bytes. Small
    members (the quick run's) are written here: starting a process costs a few seconds."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    big = all(sum(Path(p).stat().st_size for p in job["member_paths"]) >= ENSEMBLE_PROCESS_BYTES for job in jobs)
    if min(workers, len(jobs)) <= 1 or not big:
        for job in jobs:
            write_ensemble(**job)
        return
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        for future in [pool.submit(write_ensemble, **job) for job in jobs]:
            future.result()


def write_ensemble(member_paths: list[Path], target: Path, *, scenario: str, provenance: dict) -> Path:
    """Ensemble products of the GCM members' NetCDF files, computed lazily and written slab by slab: memory
    follows one (latitude block × HDF5-chunk-wide) piece of every member, never a whole member."""
    from .io.chunk_cache import NETCDF_CHUNK_CACHE_BYTES, netcdf_chunk_cache
    from .io.writers import HDF5_LON_CHUNK, write_products_netcdf

    chunks = {"year": -1, "depth": -1, "latitude": 64, "longitude": HDF5_LON_CHUNK}
    with netcdf_chunk_cache(NETCDF_CHUNK_CACHE_BYTES), warnings.catch_warnings():  # the default 64 MiB cache would hold whole members
        # Latitude blocks narrower than the stored HDF5 chunks are deliberate: they bound memory, at the cost of
        # decompressing a chunk once per block, which is what xarray's warning is about.
        warnings.filterwarnings("ignore", "The specified chunks separate the stored chunks", UserWarning)
        members = [xr.open_dataset(p, chunks=chunks) for p in member_paths]
    try:
        return write_products_netcdf(ensemble_products(members), target, scenario=scenario, provenance=provenance)
    finally:
        for m in members:
            m.close()


def ensemble_products(members: list[xr.Dataset]) -> xr.Dataset:
    """Ensemble mean of magt/tmin/tmax/alt across GCMs with flags recomputed from the mean, plus magt spread."""
    from .products import first_exceedance_year, flag_variable

    stack = xr.concat([m[["magt", "tmin", "tmax", "alt"]] for m in members], dim="member")
    mean = stack.mean("member", skipna=False)  # a cell is land in every member or in none
    nan = mean["magt"].isnull()

    def flag(cond, long_name):
        return flag_variable(cond, nan, long_name)

    out = mean.copy()
    for v in ("magt", "tmin", "tmax", "alt"):
        out[v].attrs = {**members[0][v].attrs, "cell_methods": "member: mean"}
    out["magt_spread"] = stack["magt"].std("member", skipna=False).astype("float32").assign_attrs(
        long_name="GCM ensemble standard deviation of mean annual ground temperature", units="degC")
    out["exceeds_zero"] = flag(mean["magt"] > 0, "ensemble-mean MAGT above 0 °C")
    out["thawed_year_round"] = flag(mean["tmin"] > 0, "ensemble-mean coldest month above 0 °C")
    out["thaws_in_summer"] = flag(mean["tmax"] > 0, "ensemble-mean warmest month above 0 °C")
    out["first_exceedance_year"] = first_exceedance_year(mean["magt"])
    drop = [c for c in out.coords if c not in ("year", "depth", "latitude", "longitude")]
    return out.drop_vars(drop)


def skill_inputs(ctx: Context) -> tuple[dict[str, xr.Dataset], dict[str, xr.Dataset], range]:
    """What the projection skill is scored on (synthetic world only): per scenario the bias-free forcing
    (historical record, then the scenario's) with the statics, the physics truth, both on the skill's lattice
    (every ``projection.skill_stride``-th row and column), and the years scored."""
    cfg = ctx.cfg
    w = ctx.world()
    s = cfg.projection.skill_stride
    lattice = {"latitude": slice(None, None, s), "longitude": slice(None, None, s)}
    rec = ctx.record().isel(lattice)
    statics = ctx.statics().isel(lattice)
    hist = rec[["t2m", "tp"]].sel(time=slice(None, f"{HIST_END}-12-01")).load()
    forcing, truth = {}, {}
    for scen in cfg.projection.scenarios:
        # without dask: zarr reads the strided lattice in one selection, 3× faster than a dask task per chunk
        tr = xr.open_zarr(w.truth[scen], consolidated=False, chunks=None).isel(lattice)
        tr = tr[["t2m", "tp", "stl1", "stl2", "stl3", "stl4"]].load()
        forcing[scen] = xr.merge([xr.concat([hist, tr[["t2m", "tp"]]], dim="time"), statics],
                                 compat="override", join="left")
        truth[scen] = tr[["stl1", "stl2", "stl3", "stl4"]]
    return forcing, truth, range(HIST_END + 1, cfg.period.projection_end_year + 1)


def stage_skill(ctx: Context) -> dict:
    """Projection skill on the synthetic world: best model on bias-free scenario forcing vs the physics truth."""
    if not ctx.synthetic:
        return {"skipped": "no physics truth for real data"}
    from .evaluation import projection_skill

    best = json.loads((ctx.run_dir / "best_model.json").read_text())["model"]
    forcing, truth, years = skill_inputs(ctx)
    table = projection_skill([ctx.run_dir / "checkpoints" / f"{best}.pt"], forcing, truth, years=years)
    table.to_csv(ctx.path("evaluation", "projection_skill.csv"), index=False)
    return {"rows": len(table), "model": best, "cells_stride": ctx.cfg.projection.skill_stride}


def _write_cog_then_trim(da: xr.DataArray, path: Path, **kwargs) -> Path:
    """A COG write leaves GDAL's and NumPy's freed memory in its thread's heap. Eight full-size COGs in a row
    (measured): 1.3–1.7 GiB held between writes without a trim, 1.0 GiB with one; peak 1.77 and 1.76 GiB."""
    from .io.writers import write_cog
    from .memory import trim_heap

    try:
        return write_cog(da, path, **kwargs)
    finally:
        trim_heap()


COG_WRITERS_MEMORY_MB = 2560  # what the COG writer threads may hold together
COG_WRITER_STACKS = 6  # copies of its band stack one COG write holds: the warp, the tiled source, GDAL's block cache


def cog_writer_threads(stack_mb: float) -> int:
    """COG writer threads for band stacks of ``stack_mb``: one per core, as many as the memory allows.

    Measured on the full default (120 years of the 0.1° domain at 5 km, a 205 MB stack): 1 writer 169.2 s at a
    stage peak of 2.28 GiB, 2 writers 136.8 s at 3.32 GiB (``docs/results.md`` §9o)."""
    return max(1, min(available_cpus(), int(COG_WRITERS_MEMORY_MB // (COG_WRITER_STACKS * max(stack_mb, 1e-3)))))


class _CogWriters:
    """Writes COGs on a few threads (GDAL's warp and compression release the GIL): the slice is read here, in
    the calling thread (netCDF reads are not thread-safe), and at most two slices per thread wait in memory.
    The cores no writer thread uses compress inside GDAL (one full-size COG: 4.8 s on 1 thread, 3.5 s on 2)."""

    def __init__(self, workers: int):
        from concurrent.futures import ThreadPoolExecutor

        workers = max(1, workers)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="cog")
        self.window = 2 * workers
        self.gdal_threads = max(1, available_cpus() // workers)
        self.pending: list = []
        self.written = 0

    def submit(self, da: xr.DataArray, path: Path, **kwargs) -> None:
        while len(self.pending) >= self.window:
            self.pending.pop(0).result()
        self.pending.append(self.pool.submit(_write_cog_then_trim, da.load(), path, threads=self.gdal_threads, **kwargs))
        self.written += 1

    def __enter__(self) -> "_CogWriters":
        return self

    def __exit__(self, *exc) -> None:
        try:
            for f in self.pending:
                if exc[0] is None:
                    f.result()  # a failed write stops the stage with its own error
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def stage_rasters(ctx: Context) -> dict:
    """COG GeoTIFFs per product × depth × scenario (bands = years) and per era, area CSV, exceedance GeoPackage."""
    import geopandas as gpd
    from rasterio.errors import NotGeoreferencedWarning

    from .io.writers import albers_grid, exceedance_polygons, write_exceedance_gpkg, write_netcdf
    from .products import area_exceeding_zero, era_summaries

    cfg = ctx.cfg
    dom = ctx.domain()
    tables, gpkgs = [], []
    cog_products = {"magt": ("degC", False), "tmin": ("degC", False), "tmax": ("degC", False),
                    "exceeds_zero": ("1", True), "thawed_year_round": ("1", True), "thaws_in_summer": ("1", True)}
    depth_names = ("0-7cm", "7-28cm", "28-100cm", "100-289cm")
    jobs = len(cfg.projection.scenarios)
    _, shape = albers_grid(dom, cfg.output.resolution_m) if cfg.output.crs == 3338 else (None, dom.shape)
    n_years = cfg.period.projection_end_year - cfg.projection.first_year + 1
    stack_mb = n_years * shape[0] * shape[1] * 4 / 2**20
    with progress_bar(ctx.console) as bar, warnings.catch_warnings(), _CogWriters(cog_writer_threads(stack_mb)) as cogs:
        # rasterio silences this warning while it wraps an array in a dataset, with warnings.catch_warnings(),
        # which is not thread-safe: two COG threads can let it through although the transform is then set.
        warnings.filterwarnings("ignore", "Dataset has no geotransform", NotGeoreferencedWarning)
        task = bar.add_task("rasters", total=jobs)
        for scen in cfg.projection.scenarios:
            # lazily indexed: each COG reads only its product × depth slice
            prod = xr.open_dataset(ctx.run_dir / "products" / f"ensemble_{scen}.nc")
            years = [str(y) for y in prod["year"].values]
            kw = dict(domain=dom, crs=cfg.output.crs, resolution_m=cfg.output.resolution_m)
            for name, (units, categorical) in cog_products.items():
                for i, dn in enumerate(depth_names):
                    da = prod[name].isel(depth=i).rename(year="band")
                    if categorical:
                        da = da.where(da >= 0)
                    cogs.submit(da, ctx.path("rasters", scen, f"{name}_{dn}_{scen}.tif"), band_descriptions=years,
                                units=units, categorical=categorical, **kw)
            cogs.submit(prod["alt"].rename(year="band"), ctx.path("rasters", scen, f"alt_{scen}.tif"),
                        band_descriptions=years, units="m", **kw)
            for i, dn in enumerate(depth_names):
                cogs.submit(prod["first_exceedance_year"].isel(depth=i),
                            ctx.path("rasters", scen, f"first_exceedance_year_{dn}_{scen}.tif"),
                            band_descriptions=["first year with lasting MAGT > 0 °C"], units="year", **kw)
            eras = era_summaries(prod).load()
            write_netcdf(eras, ctx.path("rasters", scen, f"eras_{scen}.nc"))
            for e in eras["era"].values:
                for i, dn in enumerate(depth_names):
                    cogs.submit(eras["magt"].sel(era=e).isel(depth=i), ctx.path("rasters", scen, "eras", f"magt_{dn}_{scen}_{e}.tif"),
                                band_descriptions=[f"era-mean MAGT {e}"], units="degC", **kw)
            tables.append(area_exceeding_zero(eras, dom.resolution, scen))
            gdf = exceedance_polygons(eras, domain=dom, scenario=scen, resolution_m=cfg.output.resolution_m)
            gpkgs.append(gdf)
            prod.close()
            bar.advance(task)
    area = pd.concat(tables, ignore_index=True)
    with atomic_path(ctx.path("area_above_0C.csv")) as tmp:
        area.to_csv(tmp, index=False)
    write_exceedance_gpkg(gpd.GeoDataFrame(pd.concat(gpkgs, ignore_index=True), crs="EPSG:3338"),
                          ctx.path("rasters", "exceedance_polygons.gpkg"))
    late = area[(area["era"] == "2071-2100")]
    return {"cog_files": cogs.written, "area_2071_2100_km2": {f"{r.scenario}@{r.depth_m}m": r.area_above_0C_km2 for r in late.itertuples()}}


def stage_maps(ctx: Context) -> dict:
    """Exceedance maps per depth × scenario × era, MAGT and first-exceedance maps, and the overview."""
    from .features import DEPTH_LABELS
    from .scenarios import scenario_label
    from .maps import plot_exceedance, plot_first_exceedance, plot_magt, plot_overview

    cfg = ctx.cfg
    eras = {}
    for scen in cfg.projection.scenarios:
        with xr.open_dataset(ctx.run_dir / "rasters" / scen / f"eras_{scen}.nc") as e:
            eras[scen] = e.load()
    best = json.loads((ctx.run_dir / "best_model.json").read_text())["model"]
    src = f"model {best} · {'synthetic Alaska' if ctx.synthetic else 'ERA5-Land'} · GCM ensemble mean"
    n = 0
    names = list(eras[cfg.projection.scenarios[0]]["era"].values)
    era_maps = names if cfg.output.era_maps else []
    total = len(cfg.projection.scenarios) * (len(era_maps) * 4 + 2) + 1
    with progress_bar(ctx.console) as bar:
        task = bar.add_task("maps", total=total)
        for scen, e in eras.items():
            for era in era_maps:
                for i, dl in enumerate(DEPTH_LABELS):
                    plot_exceedance(e["magt"].sel(era=era).isel(depth=i), ctx.path("maps", scen, f"exceedance_d{i + 1}_{era}.png"),
                                    title=f"MAGT > 0 °C at {dl}, {scenario_label(scen)}, {era}", source=src)
                    n += 1
                    bar.advance(task)
            plot_magt(e["magt"].sel(era=names[-1]).isel(depth=2), ctx.path("maps", scen, f"magt_d3_{names[-1]}.png"),
                      title=f"Mean annual ground temperature, 28–100 cm, {scenario_label(scen)}, {names[-1]}", source=src)
            with xr.open_dataset(ctx.run_dir / "products" / f"ensemble_{scen}.nc") as prod:
                fey = prod["first_exceedance_year"].isel(depth=2).load()
            plot_first_exceedance(fey, ctx.path("maps", scen, "first_exceedance_d3.png"),
                                  title=f"First lasting exceedance of 0 °C, 28–100 cm, {scenario_label(scen)}", source=src)
            n += 2
            bar.advance(task, 2)
        plot_overview(eras, ctx.path("maps", "overview.png"), source=src)
        bar.advance(task)
    return {"maps": n + 1}


def stage_report(ctx: Context) -> dict:
    from .report import write_report

    paths = write_report(ctx)
    return {"report": [str(p.relative_to(ctx.run_dir)) for p in paths]}


def _version() -> str:
    from . import __version__

    return __version__
