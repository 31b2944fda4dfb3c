"""Benchmark: the dask projection (geothaw.projection.project_products) on the 0.1° Alaska grid.

One command::

    .venv/bin/python benchmarks/projection.py [--sizes 1/16,1/4,1] [--model gru] [--checkpoint PATH]
                                              [--sample-cells 128] [--physics-cells 256] [--scheduler-size 1/16]
                                              [--out-dir DIR] [--quick]

Writes ``projection.json`` and ``projection.md`` into ``--out-dir`` (default: this folder). Measures

* projection throughput (land cell-years per second, years 1952–2100, both scenarios, one model) with the
  yearly-product reduction streamed to a temporary zarr store, like the real ``project`` stage;
* a per-cell Python loop over the same block function and model, and the physics solver
  (``geothaw.physics.solve_columns`` + snow + the same yearly products) on a spread sample of land cells,
  extrapolated to the domain, as ratios from the same run;
* the model's FLOPs per sample (``FlopCounterMode``) → achieved FLOP/s vs a measured ``torch.mm`` peak;
* wall time and peak RSS per domain size, each in a fresh subprocess;
* dask's threaded scheduler vs its processes scheduler vs a 2-worker ``distributed.LocalCluster``.

The forcing is synthetic but lazy (dask): t2m/tp are generated block by block from latitude, elevation,
maritime influence and month (seasonal cycle, scenario warming, spatially coherent weather), so memory is
bounded by the chunk size as in the real stage; statics come from the synthetic world on the real domain.
The default model is untrained (weights do not change the cost) and saved like ``geothaw.training`` saves.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import xarray as xr

from geothaw.scenarios import HISTORICAL_END
from geothaw.versions import cpu_model

HERE = Path(__file__).resolve().parent
SCENARIOS = ("rcp45", "rcp85")
FIRST_YEAR = 1952
TARGET_MINUTES, TARGET_VS_LOOP, TARGET_VS_PHYSICS, RSS_TOLERANCE = 5.0, 20.0, 10.0, 0.25
MATMUL_N = 2048
WEATHER_MODES = 6
FORCING_MONTHS_AT_ONCE = 120


# ---- synthetic, lazy forcing ---------------------------------------------------------------------------
def warming(years: np.ndarray, scenario: str) -> np.ndarray:
    """Regional warming (K) by year: a shared historical trend from 1970, then a scenario-specific slope."""
    slope = {"rcp45": 0.025, "rcp85": 0.06}.get(scenario, 0.04)
    hist = 0.02 * np.clip(np.minimum(years, HISTORICAL_END) - 1970, 0, None)
    return hist + slope * np.clip(years - HISTORICAL_END, 0, None)


def forcing_fields(lat: np.ndarray, lon: np.ndarray, elevation: np.ndarray, m_open: np.ndarray, land: np.ndarray,
                   years: np.ndarray, months: np.ndarray, scenario: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Monthly t2m (°C) and tp (mm/month), shape ``(n_months, *cells)``, NaN over sea.

    A pure function of the cell's coordinates and statics and the month, so any block (or single cell)
    gets the same values whatever the chunking — the per-cell baselines see exactly the projection's forcing.
    """
    cells = np.shape(land)
    lat, lon = np.asarray(lat, "float64").reshape(1, -1), np.asarray(lon, "float64").reshape(1, -1)
    elevation, m_open = np.asarray(elevation, "float64").reshape(1, -1), np.asarray(m_open, "float64").reshape(1, -1)
    mean = 3.0 - 0.8 * (lat - 55.0) - 6.5e-3 * elevation + 3.0 * m_open
    amp = (12.0 + 0.35 * (lat - 55.0)) * (1.0 - 0.5 * m_open)
    amplification = 1.0 + 0.03 * (lat - 55.0)  # Arctic amplification of the warming
    # Weather: a few seeded, spatially coherent modes (identical history in both scenarios).
    rng = np.random.default_rng(seed)
    coef = rng.normal(0.0, 1.0, (WEATHER_MODES, months.size))
    kx, ky = rng.uniform(0.05, 0.4, WEATHER_MODES), rng.uniform(0.1, 0.6, WEATHER_MODES)
    phase = rng.uniform(0, 2 * np.pi, WEATHER_MODES)
    pattern = np.cos(kx[:, None] * lon + ky[:, None] * lat + phase[:, None])  # (modes, cells)
    sea = np.asarray(land).reshape(1, -1) != 1
    warm = warming(years, scenario)
    t = np.empty((months.size, lat.size), dtype="float32")
    p = np.empty_like(t)
    # a span of months at a time: float64 temporaries of the whole block were ~10x the output it stands in for
    for m0 in range(0, months.size, FORCING_MONTHS_AT_ONCE):
        span = slice(m0, m0 + FORCING_MONTHS_AT_ONCE)
        ph = 2 * np.pi * months[span, None] / 12.0  # (time, 1), 0 = January
        noise = coef[:, span].T @ pattern  # (time, cells)
        tt = mean - amp * np.cos(ph) + warm[span, None] * amplification + 1.2 * noise
        pp = (25.0 + 70.0 * m_open) * (1.0 + 0.5 * np.sin(ph - 2 * np.pi * 4 / 12)) * np.exp(0.25 * noise)
        t[span] = np.where(sea, np.nan, tt)
        p[span] = np.where(sea, np.nan, pp)
    return t.reshape(months.size, *cells), p.reshape(months.size, *cells)
    return t, p


def _forcing_block(block: xr.Dataset, *, time: np.ndarray, scenario: str, seed: int) -> xr.Dataset:
    """One spatial block of lazy forcing (used by ``xr.map_blocks``)."""
    lat2, lon2 = np.meshgrid(block["latitude"].values, block["longitude"].values, indexing="ij")
    stamp = time.astype("datetime64[M]").astype(int)
    t, p = forcing_fields(lat2, lon2, block["elevation"].values, block["m_open"].values, block["land"].values,
                          1970 + stamp // 12, stamp % 12, scenario, seed)
    dims = ("time", "latitude", "longitude")
    coords = {"time": time, "latitude": block["latitude"], "longitude": block["longitude"]}
    return xr.Dataset({"t2m": (dims, t), "tp": (dims, p)}, coords=coords)


def month_axis(first_year: int, last_year: int) -> np.ndarray:
    return np.arange(f"{first_year}-01", f"{last_year + 1}-01", dtype="datetime64[M]").astype("datetime64[ns]")


def model_statics(statics: xr.Dataset) -> xr.Dataset:
    """The static fields a projection forcing carries (invariants + a soil-water climatology), NaN over sea."""
    land = statics["land"] == 1
    out = {v: statics[v] for v in ("elevation", "slt", "soil_class", "lsm")}
    # ERA5-Land swvl climatology stand-in: drying with depth from the world's ground-class water content.
    for k, f in enumerate((1.0, 0.95, 0.9, 0.85), start=1):
        out[f"swvl{k}"] = (statics["water_content"] * f).where(land).astype("float32")
    return xr.Dataset(out)


def lazy_forcing(statics: xr.Dataset, scenario: str, *, seed: int, first_year: int, last_year: int,
                 chunk_cells: int) -> xr.Dataset:
    """Canonical projection forcing (t2m, tp + statics) on ``statics``' grid, chunked in space only."""
    import dask.array as da

    from geothaw.projection import block_chunks

    ny, nx = statics.sizes["latitude"], statics.sizes["longitude"]
    blocks = block_chunks((ny, nx), chunk_cells)  # the projection's own block shape
    time = month_axis(first_year, last_year)
    base = statics[["elevation", "m_open", "land"]].chunk(blocks)
    template = xr.Dataset({v: (("time", "latitude", "longitude"),
                               da.zeros((time.size, ny, nx), chunks=(-1, blocks["latitude"], blocks["longitude"]),
                                        dtype="float32"))
                           for v in ("t2m", "tp")},
                          coords={"time": time, "latitude": statics["latitude"], "longitude": statics["longitude"]})
    fine = xr.map_blocks(_forcing_block, base, kwargs={"time": time, "scenario": scenario, "seed": seed}, template=template)
    fine["t2m"].attrs = {"units": "degC"}
    fine["tp"].attrs = {"units": "mm month-1"}
    return xr.merge([fine, model_statics(statics).chunk(blocks)], compat="override", join="left")


# ---- domain windows ------------------------------------------------------------------------------------
def parse_fraction(text: str) -> Fraction:
    f = Fraction(text.strip())
    if not 0 < f <= 1:
        raise argparse.ArgumentTypeError(f"domain fraction must be in (0, 1], got {text}")
    return f


def window(shape: tuple[int, int], fraction: Fraction) -> tuple[slice, slice]:
    """A centred latitude/longitude sub-window holding ``fraction`` of the grid (√f of the rows and columns)."""
    s = float(fraction) ** 0.5
    ny, nx = max(1, round(shape[0] * s)), max(1, round(shape[1] * s))
    r0, c0 = (shape[0] - ny) // 2, (shape[1] - nx) // 2
    return slice(r0, r0 + ny), slice(c0, c0 + nx)


def world(overrides: list[str] = ()):
    """Default config (plus ``--set`` overrides) and the synthetic statics on its real 0.1° domain (~5 s)."""
    from geothaw.config import load_config
    from geothaw.synthetic.statics import build_statics
    from geothaw.synthetic.world import world_domain

    cfg = load_config(None, list(overrides))
    return cfg, build_statics(world_domain(cfg), cfg.seed), cfg.seed


# ---- measurements helpers -----------------------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak RSS (MB). Linux: ``VmHWM``, because ``getrusage``'s ``ru_maxrss`` survives fork + exec
    and would report the (larger) parent's RSS for every subprocess; elsewhere ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


RSS_SAMPLE_S = 2.0


@contextlib.contextmanager
def rss_sampler():
    """This process's current RSS (MB), sampled every ``RSS_SAMPLE_S`` by a thread while the ``with`` body runs."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        status = Path("/proc/self/status")
        while status.exists() and not stop.wait(RSS_SAMPLE_S):  # Linux only; elsewhere no timeline
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    samples.append(round(int(line.split()[1]) / 1024.0))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _worker_report(checkpoint: str | None = None) -> dict:
    """pid, peak RSS (MB) and CPU seconds of a worker process; loads the model first when ``checkpoint`` is given.

    The pause makes a pool hand one call to each of its workers.
    """
    if checkpoint:
        _warm_model(checkpoint)
    time.sleep(0.5)
    return {"pid": os.getpid(), "rss_mb": peak_rss_mb(), "cpu_s": cpu_seconds()}


def _warm_model(checkpoint: str) -> None:
    """Load the checkpoint into this process's projection model cache (torch import + weights)."""
    from geothaw.projection import _model_for

    _model_for(checkpoint)


def matmul_peak(threads: int, repeats: int = 5) -> float:
    """Best GFLOP/s of a float32 ``torch.mm`` of two 2048² matrices with ``threads`` intra-op threads."""
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    torch.mm(a, b)  # warm-up (thread pool, allocator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(prev)
    return 2 * MATMUL_N**3 / best / 1e9


def central_block(cfg, statics: xr.Dataset, seed: int, side: int) -> xr.Dataset:
    """The benchmark forcing (rcp85) of a ``side`` × ``side`` block at the centre of the domain, in memory."""
    r0, c0 = (n // 2 - side // 2 for n in statics["land"].shape)
    small = statics.isel(latitude=slice(r0, r0 + side), longitude=slice(c0, c0 + side))
    return lazy_forcing(small, "rcp85", seed=seed, first_year=cfg.period.start_year,
                        last_year=cfg.period.projection_end_year, chunk_cells=side).compute()


def sample_batch(cfg, statics: xr.Dataset, spec, seed: int, years: np.ndarray, side: int = 12) -> dict[str, np.ndarray]:
    """Raw (un-normalised) inputs of a small central block of the benchmark forcing."""
    from geothaw.features import make_inputs

    return make_inputs(central_block(cfg, statics, seed, side), years, spec, scenario="rcp85", normalize=False)


def block_breakdown(cfg, statics: xr.Dataset, seed: int, checkpoint: Path, years: np.ndarray, batch_size: int,
                    side: int = 16) -> dict:
    """CPU seconds of each step of the projection's block function (``geothaw.projection.block_products``: snow
    per slab of rows, then per group of cells windows → model → yearly products) on one central block of one
    scenario, single-threaded like a worker: where a projection's CPU time goes."""
    from collections import defaultdict

    from geothaw.features import make_inputs, prepare, valid_cells
    from geothaw.products import yearly_products
    from geothaw.projection import CELLS_PER_GROUP, SLAB_CELLS, _group_monthly, _model_for, _monthly_time
    from geothaw.training import predict

    loaded = _model_for(str(checkpoint))  # one torch thread, as in the workers
    block = central_block(cfg, statics, seed, side)
    steps: dict[str, float] = defaultdict(float)

    def timed(name: str, fn):
        c0 = time.thread_time()
        out = fn()
        steps[name] += time.thread_time() - c0
        return out

    ny, nx = block.sizes["latitude"], block.sizes["longitude"]
    slab_rows, months, samples = max(1, SLAB_CELLS // nx), _monthly_time(years), 0
    for r0 in range(0, ny, slab_rows):
        ds = timed("snow", lambda: prepare(block.isel(latitude=slice(r0, r0 + slab_rows))))
        rows, cols = valid_cells(ds)
        for g in range(0, rows.size, CELLS_PER_GROUP):
            r, c = rows[g:g + CELLS_PER_GROUP], cols[g:g + CELLS_PER_GROUP]
            inputs = timed("windows_and_normalisation",
                           lambda: make_inputs(ds, years, loaded.features, scenario="rcp85", cells=(r, c)))
            y_hat = timed("model", lambda: predict(loaded.model, loaded.features, inputs, batch_size=batch_size))
            timed("yearly_products",
                  lambda: yearly_products(_group_monthly(y_hat, inputs, r * nx + c, nx, years, months)).load())
            samples += len(inputs["year"])
    total = sum(steps.values())
    return {"block_cells": side * side, "land_cells": int((block["t2m"].isel(time=0).notnull()).sum()),
            "samples": samples, "cpu_s": dict(steps), "share": {k: v / total for k, v in steps.items()},
            "cell_years_per_cpu_s": samples / total}


def build_checkpoint(cfg, statics: xr.Dataset, seed: int, model_name: str, path: Path) -> Path:
    """An untrained checkpoint whose normalisation is fitted on benchmark forcing, saved like training saves it."""
    import torch

    from geothaw.features import FeatureSpec
    from geothaw.models import ModelSpec, build_model
    from geothaw.training import load_checkpoint, save_checkpoint

    spec = FeatureSpec.from_dataset(model_statics(statics), cfg.features, band_edges=cfg.domain.band_edges,
                                    static_years=(cfg.period.start_year, cfg.period.end_year))
    raw = sample_batch(cfg, statics, spec, seed, np.arange(1981, 2011))
    # No soil targets exist here: a damped copy of the last 12 months of air temperature stands in for
    # them, so the target normalisation has realistic magnitudes.
    air = raw["dynamic"][:, -12:, spec.dynamic.index("t2m")]
    raw["target"] = np.stack([air * d + 1.0 for d in (0.8, 0.6, 0.35, 0.15)], axis=-1).astype("float32")
    spec.fit_normalization(raw)
    torch.manual_seed(cfg.seed)
    model = build_model(model_name, ModelSpec.from_config(cfg, spec))
    if model.kind == "baseline":
        model.fit(spec.normalize(raw))
    save_checkpoint(model, spec, path, cfg=cfg, metrics={"note": "untrained benchmark checkpoint"})
    load_checkpoint(path)  # must load with weights_only=True, like the real stage
    return path


def model_cost(cfg, statics: xr.Dataset, seed: int, checkpoint: Path, batch_size: int) -> dict:
    """FLOPs per sample (FlopCounterMode, one batch) and single-thread model-only samples/s."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from geothaw.training import BATCH_KEYS, load_checkpoint, to_tensors

    loaded = load_checkpoint(checkpoint)
    raw = sample_batch(cfg, statics, loaded.features, seed, np.arange(FIRST_YEAR, cfg.period.projection_end_year + 1))
    batch = loaded.features.normalize(raw)
    idx = np.resize(np.arange(len(batch["band"])), batch_size)  # exactly one projection batch
    tens = to_tensors({k: batch[k][idx] for k in BATCH_KEYS if k in batch})
    prev = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the projection workers
    # Counted on the plain aten path: in inference mode nn.TransformerEncoder takes a fused fast path, on CPU
    # nn.LSTM a oneDNN kernel and the GRU geothaw's own pass (models/gru_inference.py), none of which
    # FlopCounterMode sees. The arithmetic is the same (the GRU pass adds its biases inside the matmuls).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # oneDNN's TF32 notice when its flags are toggled
        with torch.backends.mkldnn.flags(enabled=False), torch.enable_grad(), FlopCounterMode(display=False) as counter:
            loaded.model(tens)
    flops = counter.get_total_flops() / batch_size
    with torch.inference_mode():
        loaded.model(tens)
        best = best_cpu = float("inf")
        for _ in range(5):
            t0, c0 = time.perf_counter(), time.thread_time()  # one intra-op thread: all work is on this thread
            loaded.model(tens)
            best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.thread_time() - c0)
    torch.set_num_threads(prev)
    by_op = {str(k): int(v) for k, v in counter.get_flop_counts().get("Global", {}).items()}
    return {"flops_per_sample": flops, "flops_by_op_one_batch": by_op, "batch_size": batch_size,
            "model_only_samples_per_s_1thread": batch_size / best,
            "model_only_samples_per_cpu_s": batch_size / best_cpu,  # what a free core would do
            "model_only_gflops_1thread": flops * batch_size / best / 1e9,
            "model_only_gflops_per_cpu_s": flops * batch_size / best_cpu / 1e9,
            "parameters": int(sum(p.numel() for p in loaded.model.parameters()))}


# ---- baselines on a sample of cells --------------------------------------------------------------------
def sample_cells(statics: xr.Dataset, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` land cells spread evenly over the whole domain (row-major order)."""
    ii, jj = np.nonzero(statics["land"].values == 1)
    pick = np.linspace(0, ii.size - 1, min(n, ii.size)).astype(int)
    return ii[pick], jj[pick]


def cell_forcing(cfg, statics: xr.Dataset, ii: np.ndarray, jj: np.ndarray, scenario: str, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(n_months, n_cells) t2m, tp of the sample cells — the same values the lazy forcing gives them."""
    time = month_axis(cfg.period.start_year, cfg.period.projection_end_year)
    stamp = time.astype("datetime64[M]").astype(int)
    st = {k: statics[k].values[ii, jj] for k in ("elevation", "m_open", "land")}
    return forcing_fields(statics["latitude"].values[ii], statics["longitude"].values[jj], st["elevation"], st["m_open"],
                          st["land"], 1970 + stamp // 12, stamp % 12, scenario, seed)


def per_cell_loop(cfg, statics: xr.Dataset, seed: int, checkpoint: Path, years: np.ndarray, n_cells: int,
                  batch_size: int) -> dict:
    """The naive alternative: for each cell, make its inputs, predict, reduce to yearly products; next cell.

    Runs the projection's own block function (``geothaw.projection._scenarios_block``: make_inputs → predict →
    yearly products per group of cells, both scenarios, their shared history predicted once) on one-cell blocks:
    the same code and model as the projection, minus the blocking. One torch thread, as the projection workers
    use (2 intra-op threads were far slower at these batch sizes on this shared machine).
    """
    import torch

    from geothaw.projection import _scenarios_block, combine_scenarios

    ii, jj = sample_cells(statics, n_cells)
    st = model_statics(statics)
    time_ = month_axis(cfg.period.start_year, cfg.period.projection_end_year)
    forcing = {scen: cell_forcing(cfg, statics, ii, jj, scen, seed) for scen in SCENARIOS}
    dims = ("time", "latitude", "longitude")
    cells: list[xr.Dataset] = []  # built outside the timing: the loop would read them from a store
    for k, (i, j) in enumerate(zip(ii, jj)):
        one = st.isel(latitude=slice(i, i + 1), longitude=slice(j, j + 1)).load()
        cells.append(combine_scenarios({
            s: one.assign(t2m=(dims, t[:, k].reshape(-1, 1, 1)), tp=(dims, p[:, k].reshape(-1, 1, 1))).assign_coords(time=time_)
            for s, (t, p) in forcing.items()}))
    args = (str(checkpoint), years, SCENARIOS, batch_size)
    _scenarios_block(cells[0], *args).load()  # warm-up: model load, imports
    t0, c0 = time.perf_counter(), cpu_seconds()
    for one in cells:
        _scenarios_block(one, *args).load()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    cell_years = len(cells) * len(SCENARIOS) * years.size
    return {"sample_cells": int(ii.size), "scenarios": list(SCENARIOS), "torch_threads": torch.get_num_threads(),
            "seconds": wall, "cpu_s": cpu, "seconds_per_cell": wall / len(cells),
            "cell_years_per_s": cell_years / wall, "cell_years_per_cpu_s": cell_years / cpu}


def physics_sample(cfg, statics: xr.Dataset, seed: int, years: np.ndarray, n_cells: int) -> dict:
    """The physics producing the same yearly outputs: snow → ``solve_columns`` (world dt, no spin-up) → products.

    Forcing generation is outside the timing (as for the loop); the solver runs all months from the forcing
    start (it has no 24-month-window shortcut), on numba's default threads.
    """
    import numba

    from geothaw.physics import solve_columns
    from geothaw.products import DEPTH_MID, yearly_products
    from geothaw.snow import snowpack
    from geothaw.synthetic.world import _props

    ii, jj = sample_cells(statics, n_cells)
    props_keys = ("k_thawed", "k_frozen", "c_thawed", "c_frozen", "water_content", "unfrozen_a", "unfrozen_b",
                  "organic_thickness", "geothermal_flux", "n_factor_thaw", "bedrock_depth")
    props = _props({k: statics[k].values[ii, jj].astype("float64") for k in props_keys})
    time_ = month_axis(cfg.period.start_year, cfg.period.projection_end_year)
    days = ((time_.astype("datetime64[M]") + 1).astype("datetime64[D]") - time_.astype("datetime64[D]")).astype("float64")
    dt_days = cfg.data.synthetic.dt_days
    forcing = {s: cell_forcing(cfg, statics, ii, jj, s, seed) for s in SCENARIOS}
    t, p = forcing[SCENARIOS[0]]
    _, d, r = snowpack(t.T[:, :12], p.T[:, :12], days[:12])
    solve_columns(t.T[:, :12], d, r, props, dt_days=dt_days, month_lengths=days[:12])  # warm-up: numba compile / cache load
    keep = np.isin(time_.astype("datetime64[Y]").astype(int) + 1970, years)
    # As the world does it (and the projection, by sharing predictions): the common history is solved once,
    # each scenario continues from its final state.
    trunk = time_.astype("datetime64[Y]").astype(int) + 1970 <= HISTORICAL_END
    t0, c0 = time.perf_counter(), cpu_seconds()
    history = None
    for scen in SCENARIOS:
        t, p = forcing[scen]
        _, depth, rho = snowpack(t.T, p.T, days)
        if history is None:
            history = solve_columns(t.T[:, trunk], depth[:, trunk], rho[:, trunk], props, dt_days=dt_days,
                                    spinup_years=0, month_lengths=days[trunk])
        branch = solve_columns(t.T[:, ~trunk], depth[:, ~trunk], rho[:, ~trunk], props, dt_days=dt_days,
                               initial_state=history.state, month_lengths=days[~trunk])
        layers = np.concatenate([history.layer_temperature, branch.layer_temperature], axis=1)
        soil = xr.DataArray(layers[:, keep].transpose(1, 2, 0)[:, :, None, :],
                            dims=("time", "depth", "latitude", "longitude"),
                            coords={"time": time_[keep], "depth": DEPTH_MID, "latitude": [0.0], "longitude": np.arange(ii.size)})
        yearly_products(soil).load()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    cell_years = ii.size * len(SCENARIOS) * years.size
    return {"sample_cells": int(ii.size), "scenarios": list(SCENARIOS), "dt_days": dt_days, "spinup_years": 0,
            "simulated_months_per_cell": int(trunk.sum() + len(SCENARIOS) * (~trunk).sum()),
            "numba_threads": numba.get_num_threads(),
            "seconds": wall, "cpu_s": cpu, "cell_years_per_s": cell_years / wall, "cell_years_per_cpu_s": cell_years / cpu}


def predicted_years(years: np.ndarray, n_scenarios: int, history_shared: bool) -> int:
    """Model samples per cell: every year of the first scenario, and only the years after the shared
    history of the others when the history was shared."""
    later = int((years > HISTORICAL_END).sum()) if history_shared else years.size
    return int(years.size + (n_scenarios - 1) * later)


# ---- one projection run (in a fresh subprocess) --------------------------------------------------------
def run_projection(job: dict) -> dict:
    """Project ``job['scenarios']`` over a domain window with the given scheduler; stream products to zarr."""
    import dask

    from geothaw.config import load_config
    from geothaw.projection import block_chunks, dask_scheduler, project_scenarios

    t_setup = time.perf_counter()
    cfg, seed, n, workers = load_config(None, job["overrides"]), job["seed"], job["chunk_cells"], job["workers"]
    # Statics come from the parent's store: building them here would set this process's RSS high-water mark.
    with xr.open_zarr(job["statics"], consolidated=False) as st:
        rows, cols = window((st.sizes["latitude"], st.sizes["longitude"]), Fraction(job["fraction"]))
        win = st.isel(latitude=rows, longitude=cols).load()
    land = win["land"].values == 1
    br, bc = block_chunks(land.shape, n).values()
    years = np.arange(job["first_year"], cfg.period.projection_end_year + 1)

    # Start the workers and load the model into each (a one-off for a long-lived pool/cluster; not timed).
    t0 = time.perf_counter()
    cluster = address = pool = None
    if job["scheduler"] == "localcluster":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)
        address = cluster.scheduler_address
        with Client(address) as client:
            before = {r["pid"]: r for r in client.run(_worker_report, job["checkpoint"]).values()}
    elif job["scheduler"] == "processes":
        import dask.multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from functools import partial

        # A persistent pool (dask would start one per compute) so that both scenarios share warm workers.
        os.environ.setdefault("PYTHONHASHSEED", "6640")  # as dask does for its own pools
        pool = ProcessPoolExecutor(workers, mp_context=dask.multiprocessing.get_context(),
                                   initializer=partial(dask.multiprocessing.initialize_worker_process, None))
        before = {r["pid"]: r for r in pool.map(_worker_report, [job["checkpoint"]] * workers)}
    else:
        _warm_model(job["checkpoint"])
        before = {}
    start_s = time.perf_counter() - t0

    out: dict = {
        "fraction": job["fraction"], "scheduler": job["scheduler"], "workers": workers,
        "window_rows": int(land.shape[0]), "window_cols": int(land.shape[1]), "grid_cells": int(land.size),
        "land_cells": int(land.sum()), "years": [int(years[0]), int(years[-1])], "chunk_cells": n,
        "batch_size": job["batch_size"], "setup_s": time.perf_counter() - t_setup, "start_s": start_s,
        "peak_rss_after_setup_mb": peak_rss_mb(), "scenarios": list(job["scenarios"]),
        # memory is set by the largest block: its land cells explain RSS differences between sizes
        "max_chunk_land_cells": int(max(land[r:r + br, c:c + bc].sum() for r in range(0, land.shape[0], br)
                                        for c in range(0, land.shape[1], bc))),
        "block_shape": [br, bc],
    }
    sink = Path(job["work_dir"]) / f"products_{job['tag']}"
    # dask's processes scheduler has no geothaw hook (dask_scheduler offers threads or a cluster address)
    sched = (dask.config.set(scheduler="processes", pool=pool) if pool is not None
             else dask_scheduler(address, workers=workers))
    cpu_driver = 0.0
    with sched as handle:
        forcings = {scen: lazy_forcing(win, scen, seed=seed, first_year=cfg.period.start_year,
                                       last_year=cfg.period.projection_end_year, chunk_cells=n)
                    for scen in job["scenarios"]}
        if job.get("forcing_only"):  # how much of the wall time is the synthetic forcing itself
            t0 = time.perf_counter()
            dask.compute(*[f[v].sum() for f in forcings.values() for v in ("t2m", "tp")])
            out["forcing_only_s"] = time.perf_counter() - t0
        # all scenarios in one computation, as the pipeline does: their shared history is predicted once
        prod = project_scenarios(forcings, job["checkpoint"], years=years, chunk_cells=n, batch_size=job["batch_size"])
        store = sink.with_name(f"{sink.name}.zarr")
        t0, c0 = time.perf_counter(), cpu_seconds()
        with rss_sampler() as timeline:
            prod.to_zarr(store, mode="w", consolidated=False)
        out["wall_s"] = time.perf_counter() - t0
        out["rss_timeline_mb"] = timeline  # every RSS_SAMPLE_S: creep over the run, or flat with block-sized swings
        cpu_driver += cpu_seconds() - c0
        out["chunks"] = len(prod.chunks["latitude"]) * len(prod.chunks["longitude"])
        with dask.config.set(scheduler="synchronous"), xr.open_zarr(store, consolidated=False) as z:
            # sanity checks: every land cell got products; the scenarios agree to 2005 and part after
            magt = z["magt"].isel(depth=0)
            out["cells_with_products"] = {s: int(np.isfinite(magt.sel(scenario=s).isel(year=-1).values).sum())
                                          for s in job["scenarios"]}
            if len(job["scenarios"]) > 1:
                hist = magt.sel(year=slice(None, HISTORICAL_END)).values
                out["history_identical_across_scenarios"] = bool(all(
                    np.array_equal(hist[0], hist[k], equal_nan=True) for k in range(1, hist.shape[0])))
        shutil.rmtree(store, ignore_errors=True)
        after = ({r["pid"]: r for r in handle.run(_worker_report).values()} if cluster is not None
                 else {r["pid"]: r for r in pool.map(_worker_report, [None] * workers)} if pool is not None else {})
    if pool is not None:
        pool.shutdown()
    if cluster is not None:
        cluster.close()
    out["cell_years"] = out["land_cells"] * years.size * len(job["scenarios"])
    out["samples_predicted"] = out["land_cells"] * predicted_years(years, len(job["scenarios"]),
                                                                   out.get("history_identical_across_scenarios", False))
    out["cell_years_per_s"] = out["cell_years"] / out["wall_s"]
    out["peak_rss_mb"] = peak_rss_mb()
    if after:
        out["worker_peak_rss_mb"] = sorted(r["rss_mb"] for r in after.values())
    # CPU the projection got (driver + workers, the forcing-only passes excluded) per wall second and worker:
    # below 1 means the workers waited (other jobs on the cores, scheduling, serial steps).
    out["cpu_s"] = cpu_driver + sum(r["cpu_s"] - before[p]["cpu_s"] for p, r in after.items() if p in before)
    out["cpu_utilisation"] = out["cpu_s"] / (out["wall_s"] * workers)
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def spawn(job: dict) -> dict:
    """Run one projection in a fresh interpreter so its peak RSS is its own."""
    result = Path(job["work_dir"]) / f"result_{job['tag']}.json"
    print(f"[projection] {job['tag']}: fraction {job['fraction']}, {job['scheduler']} …", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job), "--child-out", str(result)],
                   check=True)
    out = json.loads(result.read_text())
    print(f"[projection] {job['tag']}: {out['wall_s']:.1f} s projection, {time.perf_counter() - t0:.1f} s in all, "
          f"peak RSS {out['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return out


# ---- the run -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1/16,1/4,1", help="domain fractions (centred windows), each in its own process")
    ap.add_argument("--model", default="gru", help="architecture of the untrained benchmark checkpoint")
    ap.add_argument("--checkpoint", type=Path, default=None, help="use this (trained) checkpoint instead")
    ap.add_argument("--sample-cells", type=int, default=128, help="cells for the per-cell-loop baseline")
    ap.add_argument("--physics-cells", type=int, default=256, help="cells for the physics baseline (it vectorises over cells)")
    ap.add_argument("--scheduler-size", type=parse_fraction, default=Fraction(1, 16),
                    help="domain fraction of the scheduler comparison")
    ap.add_argument("--scheduler-scenarios", default="rcp85", help="scenarios of the scheduler comparison (comma-separated)")
    ap.add_argument("--chunk-cells", type=int, default=None, help="default: projection.chunk_cells of the config")
    ap.add_argument("--batch-size", type=int, default=None, help="default: projection.batch_size of the config")
    ap.add_argument("--workers", type=int, default=None, help="default: projection.workers of the config")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, as geothaw's --set (e.g. training.hidden_size=32); repeatable")
    ap.add_argument("--first-year", type=int, default=FIRST_YEAR)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--work-dir", type=Path, default=None, help="scratch for checkpoints and product stores (default: a temp dir)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: sizes 1/1024,1/256, scheduler size 1/1024, 16 sample cells each")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        Path(a.child_out).write_text(json.dumps(run_projection(json.loads(a.child))))
        return
    if a.quick:
        a.sizes, a.scheduler_size = "1/1024,1/256", Fraction(1, 1024)
        a.sample_cells, a.physics_cells = min(a.sample_cells, 16), min(a.physics_cells, 16)
    sizes = sorted({parse_fraction(s) for s in a.sizes.split(",")})

    import torch

    t_start = time.perf_counter()
    load0, torch_threads0 = os.getloadavg(), torch.get_num_threads()
    cfg, statics, seed = world(a.set)
    chunk = a.chunk_cells or cfg.projection.chunk_cells
    batch = a.batch_size or cfg.projection.batch_size
    workers = a.workers or cfg.projection.workers
    years = np.arange(a.first_year, cfg.period.projection_end_year + 1)
    land_full = int((statics["land"].values == 1).sum())
    work = Path(a.work_dir or tempfile.mkdtemp(prefix="geothaw_projection_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ckpt = a.checkpoint.resolve() if a.checkpoint else build_checkpoint(cfg, statics, seed, a.model, work / f"{a.model}.pt")
        from geothaw.training import load_checkpoint

        meta = load_checkpoint(ckpt).meta
        print("[projection] model cost, matmul peak …", file=sys.stderr, flush=True)
        cost = model_cost(cfg, statics, seed, ckpt, batch)
        breakdown = block_breakdown(cfg, statics, seed, ckpt, years, batch)
        peak = {"1": matmul_peak(1), "2": matmul_peak(2)}
        print("[projection] per-cell loop, physics …", file=sys.stderr, flush=True)
        loop = per_cell_loop(cfg, statics, seed, ckpt, years, a.sample_cells, batch)
        phys = physics_sample(cfg, statics, seed, years, a.physics_cells)
        statics_store = work / "statics.zarr"
        statics[["land", "elevation", "m_open", "slt", "soil_class", "lsm", "water_content"]].to_zarr(
            statics_store, mode="w", consolidated=False)
        base = {"checkpoint": str(ckpt), "statics": str(statics_store), "seed": seed, "first_year": int(years[0]),
                "chunk_cells": chunk, "batch_size": batch, "workers": workers, "work_dir": str(work), "overrides": a.set}
        scaling = [spawn({**base, "tag": f"size_{i}", "fraction": str(f), "scheduler": "threads",
                          "scenarios": list(SCENARIOS), "forcing_only": True}) for i, f in enumerate(sizes)]
        sched_scen = [s.strip() for s in a.scheduler_scenarios.split(",") if s.strip()]
        schedulers = [spawn({**base, "tag": f"sched_{s}", "fraction": str(a.scheduler_size), "scheduler": s,
                             "scenarios": sched_scen}) for s in ("threads", "processes", "localcluster")]
    finally:
        if a.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    full_cell_years = land_full * years.size * len(SCENARIOS)
    largest = scaling[-1]
    measured_full = Fraction(largest["fraction"]) == 1
    proj_s = largest["wall_s"] if measured_full else full_cell_years / largest["cell_years_per_s"]
    loop_s = full_cell_years / loop["cell_years_per_s"]
    phys_s = full_cell_years / phys["cell_years_per_s"]
    cell_years_per_s = full_cell_years / proj_s
    # the model runs fewer samples than cell-years: the scenarios' shared history is predicted once
    full_samples = land_full * predicted_years(years, len(SCENARIOS), largest.get("history_identical_across_scenarios", False))
    achieved = cost["flops_per_sample"] * full_samples / proj_s / 1e9
    rss = [s["peak_rss_mb"] for s in scaling]
    headline = {
        "land_cells": land_full, "years": [int(years[0]), int(years[-1])], "scenarios": list(SCENARIOS),
        "cell_years": full_cell_years, "projection_s": proj_s, "projection_measured_at_full_size": measured_full,
        "projection_from_fraction": largest["fraction"], "cell_years_per_s": cell_years_per_s,
        "samples_predicted": full_samples,
        "per_cell_loop_s_extrapolated": loop_s, "physics_s_extrapolated": phys_s,
        "speedup_vs_loop": loop_s / proj_s, "speedup_vs_physics": phys_s / proj_s,
        "achieved_gflops": achieved, "matmul_peak_gflops": peak,
        "fraction_of_peak_2threads": achieved / peak["2"], "fraction_of_peak_1thread_x_workers": achieved / (peak["1"] * workers),
        "model_only_floor_s": full_samples / (cost["model_only_samples_per_cpu_s"] * workers),
        # FLOP/s the target needs with this model: compare with the matmul peak to see whether it is reachable here
        "gflops_needed_for_target": cost["flops_per_sample"] * full_samples / (TARGET_MINUTES * 60) / 1e9,
        # CPU-time view, insensitive to other jobs on the cores (cell-years per CPU-second, same work)
        "projection_cell_years_per_cpu_s": largest["cell_years"] / largest["cpu_s"],
        "speedup_vs_loop_cpu": largest["cell_years"] / largest["cpu_s"] / loop["cell_years_per_cpu_s"],
        "speedup_vs_physics_cpu": largest["cell_years"] / largest["cpu_s"] / phys["cell_years_per_cpu_s"],
        "projection_s_on_free_cores": full_cell_years / (largest["cell_years"] / largest["cpu_s"]) / workers,
        # how busy the workers were (largest size) and the forward pass's share of a block's CPU time
        "cpu_utilisation": largest["cpu_utilisation"],
        "model_cpu_share": breakdown["share"]["model"],
        "achieved_gflops_per_busy_core": cost["flops_per_sample"] * largest["samples_predicted"] / largest["cpu_s"] / 1e9,
        "rss_max_over_min": max(rss) / min(rss),
        "all_land_cells_have_products": all(n == s["land_cells"]
                                            for s in scaling + schedulers for n in s["cells_with_products"].values()),
        "history_identical_across_scenarios": all(s["history_identical_across_scenarios"] for s in scaling),
        "targets": {"projection_minutes_max": TARGET_MINUTES, "speedup_vs_loop_min": TARGET_VS_LOOP,
                    "speedup_vs_physics_min": TARGET_VS_PHYSICS, "rss_tolerance": RSS_TOLERANCE},
    }
    headline["meets"] = {"projection_time": proj_s <= TARGET_MINUTES * 60, "vs_loop": headline["speedup_vs_loop"] >= TARGET_VS_LOOP,
                         "vs_physics": headline["speedup_vs_physics"] >= TARGET_VS_PHYSICS,
                         "flat_memory": headline["rss_max_over_min"] <= 1 + RSS_TOLERANCE}
    report = {
        "command": " ".join([".venv/bin/python", "benchmarks/projection.py", *sys.argv[1:]]),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads_default": torch_threads0,
                    "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()]},
        "model": {"name": meta["model"], "checkpoint_given": a.checkpoint is not None, "model_spec": meta["model_spec"],
                  "static_features": meta["features"]["static"], **cost},
        "headline": headline, "block_breakdown": breakdown, "per_cell_loop": loop, "physics": phys, "scaling": scaling,
        "schedulers": schedulers, "benchmark_wall_s": time.perf_counter() - t_start,
    }
    a.out_dir.mkdir(parents=True, exist_ok=True)
    (a.out_dir / "projection.json").write_text(json.dumps(report, indent=2) + "\n")
    (a.out_dir / "projection.md").write_text(markdown(report))
    print(markdown(report))


# ---- report --------------------------------------------------------------------------------------------
def _mins(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.1f} s"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def markdown(rep: dict) -> str:
    h, m, mod = rep["headline"], rep["machine"], rep["model"]
    loop, phys, t = rep["per_cell_loop"], rep["physics"], h["targets"]
    where = ("measured on the full domain" if h["projection_measured_at_full_size"]
             else f"**extrapolated** from the {h['projection_from_fraction']} window's rate")
    lines = [
        "# Projection throughput",
        "",
        f"`{rep['command']}`",
        "",
        f"Model `{mod['name']}` ({'from `--checkpoint`' if mod['checkpoint_given'] else 'untrained: weights do not change the cost'}, "
        f"{mod['parameters']:,} parameters, hidden {mod['model_spec']['hidden_size']}), years {h['years'][0]}–{h['years'][1]} "
        f"from 1950–2100 forcing (24-month windows), scenarios {', '.join(h['scenarios'])}, synthetic lazy forcing "
        "generated block by block inside dask, yearly products streamed to a temporary zarr store.",
        "",
        f"Machine: {m['cpu_count']} cores of {m.get('cpu', 'an unrecorded CPU')}, {m['platform']}, torch {m['torch']}; load average at start/end "
        f"{m['loadavg_start']} / {m['loadavg_end']}"
        + (" — **other jobs shared the cores**, so absolute numbers are pessimistic." if m["loadavg_start"][0] > 1.0
           else " (the machine was otherwise idle at the start)."),
        "",
        "## Full domain, both scenarios",
        "",
        "| | value | target | met |",
        "|---|---:|---:|---|",
        f"| land cells × years × scenarios | {h['land_cells']:,} × {h['years'][1] - h['years'][0] + 1} × {len(h['scenarios'])} = {h['cell_years']:,} cell-years | | |",
        f"| projection wall time ({where}) | {_mins(h['projection_s'])} | ≤ {t['projection_minutes_max']:g} min | {_yes(h['meets']['projection_time'])} |",
        f"| projection throughput | {h['cell_years_per_s']:,.0f} cell-years/s | | |",
        f"| per-cell loop, extrapolated from {loop['sample_cells']} cells | {_mins(h['per_cell_loop_s_extrapolated'])} "
        f"({loop['cell_years_per_s']:,.0f} cell-years/s) | | |",
        f"| physics (`solve_columns`, dt {phys['dt_days']:g} d, no spin-up), extrapolated from {phys['sample_cells']} cells | "
        f"{_mins(h['physics_s_extrapolated'])} ({phys['cell_years_per_s']:,.0f} cell-years/s) | | |",
        f"| speed-up vs per-cell loop | {h['speedup_vs_loop']:.1f}× | ≥ {t['speedup_vs_loop_min']:g}× | {_yes(h['meets']['vs_loop'])} |",
        f"| speed-up vs physics | {h['speedup_vs_physics']:.1f}× | ≥ {t['speedup_vs_physics_min']:g}× | {_yes(h['meets']['vs_physics'])} |",
        f"| peak RSS max/min over sizes | {h['rss_max_over_min']:.2f} | ≤ {1 + t['rss_tolerance']:.2f} | {_yes(h['meets']['flat_memory'])} |",
        "",
        "Same comparison in CPU time (cell-years per CPU-second of all threads and workers), which other jobs on "
        "the cores do not distort:",
        "",
        "| | cell-years per CPU-s | projection's advantage |",
        "|---|---:|---:|",
        f"| projection ({h['projection_from_fraction']} window) | {h['projection_cell_years_per_cpu_s']:,.0f} | |",
        f"| per-cell loop | {loop['cell_years_per_cpu_s']:,.0f} | {h['speedup_vs_loop_cpu']:.1f}× |",
        f"| physics | {phys['cell_years_per_cpu_s']:,.0f} | {h['speedup_vs_physics_cpu']:.1f}× |",
        f"| → full domain on {rep['scaling'][-1]['workers']} otherwise idle cores (CPU-s / workers) | "
        f"{_mins(h['projection_s_on_free_cores'])} | |",
        "",
        f"The loop runs the projection's own block function (`_scenarios_block`: both scenarios, their shared history "
        f"predicted once) on one-cell blocks, one at a time, with {loop['torch_threads']} torch thread (one core; the "
        f"projection uses {rep['scaling'][-1]['workers']} workers), {loop['seconds_per_cell'] * 1000:.0f} ms per cell. "
        f"The physics derives snow, solves the shared history once and each scenario's branch from its final state "
        f"({phys['simulated_months_per_cell']} months per cell) on {phys['numba_threads']} numba threads and reduces "
        "to the same yearly products. Both baselines exclude "
        "forcing generation; the projection's wall time includes it (see the scaling table), so the ratios are conservative.",
        "",
        "## FLOPs",
        "",
        "| | value |",
        "|---|---:|",
        f"| model FLOPs per sample (FlopCounterMode, one batch of {mod['batch_size']}) | {mod['flops_per_sample'] / 1e6:.2f} MFLOP |",
        f"| achieved by the projection | {h['achieved_gflops']:.2f} GFLOP/s |",
        f"| `torch.mm` {MATMUL_N}² float32 peak, 1 thread / 2 threads | {h['matmul_peak_gflops']['1']:.1f} / {h['matmul_peak_gflops']['2']:.1f} GFLOP/s |",
        f"| achieved / 2-thread peak | {100 * h['fraction_of_peak_2threads']:.1f} % |",
        f"| achieved / (1-thread peak × {rep['scaling'][-1]['workers']} workers) | {100 * h['fraction_of_peak_1thread_x_workers']:.1f} % |",
        f"| model alone, one batch, 1 thread, per wall / per CPU second | {mod['model_only_samples_per_s_1thread']:,.0f} / "
        f"{mod['model_only_samples_per_cpu_s']:,.0f} samples/s = {mod['model_only_gflops_1thread']:.1f} / "
        f"{mod['model_only_gflops_per_cpu_s']:.1f} GFLOP/s |",
        f"| achieved per busy core (model FLOPs / CPU-seconds used) | {h['achieved_gflops_per_busy_core']:.2f} GFLOP/s |",
        f"| model-only floor for the full domain ({rep['scaling'][-1]['workers']} free cores) | {_mins(h['model_only_floor_s'])} |",
        f"| needed for the {t['projection_minutes_max']:g}-minute target with this model | {h['gflops_needed_for_target']:.0f} GFLOP/s |",
        f"| CPU time of one {rep['block_breakdown']['block_cells']}-cell block: "
        + ", ".join(f"{k.replace('_', ' ')} {100 * v:.0f} %" for k, v in rep["block_breakdown"]["share"].items()) + " | "
        f"{sum(rep['block_breakdown']['cpu_s'].values()):.1f} s |",
        f"| CPU utilisation of the workers (CPU-s / (wall × workers)) | {100 * h['cpu_utilisation']:.0f} % |",
        "",
        "## Scaling (threaded scheduler, each size in a fresh process)",
        "",
        "| fraction | window (rows × cols) | land cells | chunks (block rows × cols) | largest chunk (land cells) | forcing only (s) | wall (s) | cell-years/s | CPU use | peak RSS (MB) | RSS after setup (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in rep["scaling"]:
        lines.append(
            f"| {s['fraction']} | {s['window_rows']} × {s['window_cols']} | {s['land_cells']:,} | {s['chunks']} ({' × '.join(map(str, s['block_shape']))}) | {s['max_chunk_land_cells']:,} | "
            f"{s.get('forcing_only_s', 0.0):.1f} | {s['wall_s']:.1f} | {s['cell_years_per_s']:,.0f} | "
            f"{100 * s['cpu_utilisation']:.0f} % | {s['peak_rss_mb']:.0f} | {s['peak_rss_after_setup_mb']:.0f} |")
    sch = rep["schedulers"]
    lines += [
        "",
        f"## Schedulers ({sch[0]['fraction']} of the domain, {', '.join(sch[0]['scenarios'])}, {sch[0]['workers']} workers)",
        "",
        "| scheduler | wall (s) | cell-years/s | vs threads | CPU use | start-up + model load (s) | peak RSS: driver / workers (MB) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    names = {"threads": "dask threads", "processes": "dask processes", "localcluster": "distributed LocalCluster (2 × 1 thread)"}
    for s in sch:
        workers_rss = s.get("worker_peak_rss_mb", [])
        lines.append(
            f"| {names[s['scheduler']]} | {s['wall_s']:.1f} | {s['cell_years_per_s']:,.0f} | {sch[0]['wall_s'] / s['wall_s']:.2f}× | "
            f"{100 * s['cpu_utilisation']:.0f} % | {s['start_s']:.1f} | {s['peak_rss_mb']:.0f} / {', '.join(f'{x:.0f}' for x in workers_rss) or '–'} |")
    lines += [
        "",
        f"Every land cell got products in every run: {_yes(h['all_land_cells_have_products'])}. Products to "
        f"{HISTORICAL_END} identical in both scenarios (their shared history, predicted once: "
        f"{h['samples_predicted']:,} model samples for {h['cell_years']:,} cell-years): "
        f"{_yes(h['history_identical_across_scenarios'])}.",
        "",
        "Threads: both workers run in the driver, so its RSS is everything. Processes (a persistent pool of "
        "spawned workers) and LocalCluster: each worker's own high-water mark (`VmHWM`). Start-up and loading the "
        "model into the workers are excluded from the wall time for all three.",
        "",
        "## What this means",
        "",
        meaning(rep),
        "",
    ]
    return "\n".join(lines)


def rss_drift(scaling: list[dict]) -> str:
    """How RSS sampled during each size's run moved between its first and last quarter."""
    parts = []
    for s in scaling:
        t = s.get("rss_timeline_mb") or []
        if len(t) >= 8:
            q = len(t) // 4
            parts.append(f"{s['fraction']}: {max(t[:q]):,} → {max(t[-q:]):,} MB over {s['chunks']} blocks")
    if not parts:
        return ""
    return "RSS sampled every few seconds, highest in the first → last quarter of each run: " + "; ".join(parts) + "."


def meaning(rep: dict) -> str:
    h, mod = rep["headline"], rep["model"]
    workers = rep["scaling"][-1]["workers"]
    best = min(rep["schedulers"], key=lambda s: s["wall_s"])
    spread = max(s["wall_s"] for s in rep["schedulers"]) / best["wall_s"]
    peak2 = h["matmul_peak_gflops"]["2"]
    verdict = lambda ok: "meets" if ok else "misses"  # noqa: E731
    text = [
        f"Projecting {h['land_cells']:,} land cells × {h['years'][1] - h['years'][0] + 1} years × 2 scenarios takes "
        f"{_mins(h['projection_s'])} on this machine ({verdict(h['meets']['projection_time'])} the "
        f"{h['targets']['projection_minutes_max']:g}-minute target), {h['speedup_vs_loop']:.1f}× faster than a per-cell loop "
        f"({verdict(h['meets']['vs_loop'])} ≥ {h['targets']['speedup_vs_loop_min']:g}×) and "
        f"{h['speedup_vs_physics']:.1f}× faster than the physics solver "
        f"({verdict(h['meets']['vs_physics'])} ≥ {h['targets']['speedup_vs_physics_min']:g}×); per CPU-second the "
        f"advantages are {h['speedup_vs_loop_cpu']:.1f}× and {h['speedup_vs_physics_cpu']:.1f}×.",
        f"The {mod['name']} forward pass is {100 * h['model_cpu_share']:.0f} % of a block's CPU time (the rest is "
        "snow, windows, normalisation and the yearly-product reduction)"
        + (f", so the model's {mod['flops_per_sample'] / 1e6:.2f} MFLOP per sample sets the pace: "
           if h["model_cpu_share"] >= 0.5 else "; even the model alone at "
           f"{mod['flops_per_sample'] / 1e6:.2f} MFLOP per sample is a hard bound: ")
        + f"the {h['targets']['projection_minutes_max']:g}-minute target needs {h['gflops_needed_for_target']:.0f} GFLOP/s "
        "of model arithmetic sustained, "
        + (f"more than the {peak2:.0f} GFLOP/s 2-thread matmul peak, so no scheduling can reach it on this machine "
           "with this model; it needs a cheaper model or more cores."
           if h["gflops_needed_for_target"] > peak2 else
           f"within the {peak2:.0f} GFLOP/s 2-thread matmul peak."),
        f"The forward pass itself reaches {mod['model_only_gflops_per_cpu_s']:.1f} GFLOP per CPU-second on one thread, "
        f"{100 * mod['model_only_gflops_per_cpu_s'] / h['matmul_peak_gflops']['1']:.0f} % of the 1-thread matmul peak: a "
        "recurrent model is a chain of small dependent matrix products and element-wise gates along the 24 months, "
        f"which cannot use a core as well as one large GEMM. The workers were busy {100 * h['cpu_utilisation']:.0f} % of the wall time; on "
        f"{workers} otherwise idle cores the full run would take about {_mins(h['projection_s_on_free_cores'])}.",
        f"Peak memory {'stays within' if h['meets']['flat_memory'] else '**does not stay within**'} ±"
        f"{100 * h['targets']['rss_tolerance']:.0f} % across sizes (max/min {h['rss_max_over_min']:.2f}). "
        + rss_drift(rep["scaling"]),
        f"Of the schedulers, {best['scheduler']} was fastest at {best['fraction']} of the domain; the slowest took "
        f"{spread:.2f}× as long.",
    ]
    return " ".join(text)


if __name__ == "__main__":
    main()
