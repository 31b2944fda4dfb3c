"""Orchestration: build the whole synthetic world on disk, block by block, resumably.

Flow: statics → for each block of grid rows (all its land cells, all months): forcing for every scenario
(true climate, shared weather), snow, soil physics (spin-up → 1950–2005 trunk → one branch per scenario)
→ region writes into zarr stores → per-year ERA5-Land files streamed from the record store → GCM files
→ ``world.json`` marker. Memory is bounded by the block size, never by the domain × period cube.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from ..cpus import available_cpus
from ..domain import Domain
from ..errors import ConfigError
from ..io.atomic import atomic_path, write_text_atomic
from ..snow import snowpack
from . import climate as C
from .era5_format import ERA5_FIELDS, era5_filename, write_era5_year, write_invariants
from .fields import albers_km
from .gcm import build_gcm, cmip5_filename, gcm_spec
from .soil_classes import peat_properties

Progress = Callable[[str, int, int], None]

BLOCK_CELLS = 4096        # land cells per block (zarr chunk rows), written together by the parent process
ERA5_READ_BYTES = 256 * 2**20  # record years read at once to write the yearly ERA5-Land files
SOLVE_CELLS = 256         # land cells per physics call: the fixed unit of parallel work (results never depend on workers)
BASE_SCENARIOS = ("rcp45", "rcp85")
RECORD_SCENARIO = "rcp45"  # the "observed" record continues along RCP4.5 after 2005
LAYER_VARS = ("stl1", "stl2", "stl3", "stl4")
WATER_VARS = ("swvl1", "swvl2", "swvl3", "swvl4")
RECORD_VARS = (*ERA5_FIELDS, "thaw_depth")
SCENARIO_VARS = ("t2m", "tp", "sd", "sde", "rsn", *LAYER_VARS, "thaw_depth")
CANONICAL_ATTRS = {
    "t2m": ("degC", "2 metre air temperature"), "tp": ("mm month-1", "total precipitation"),
    "sd": ("m", "snow depth water equivalent"), "sde": ("m", "snow depth"), "rsn": ("kg m-3", "snow density"),
    **{f"stl{i}": ("degC", f"soil temperature layer {i} ({a:g}-{b:g} m)") for i, (a, b) in
       enumerate(((0, 0.07), (0.07, 0.28), (0.28, 1.0), (1.0, 2.89)), 1)},
    **{f"swvl{i}": ("m3 m-3", f"volumetric liquid soil water layer {i}") for i in range(1, 5)},
    "thaw_depth": ("m", "monthly maximum depth of the 0 degC isotherm (0 = frozen to the surface or none)"),
}


@dataclass
class WorldPaths:
    """Where everything of one synthetic world lives (all derived from the config and ``root``)."""

    root: Path
    era5land: list[Path]
    invariants: Path
    statics: Path
    record: Path
    truth: dict[str, Path]
    cmip5: dict[str, dict[str, list[Path]]]
    marker: Path
    blocks: Path = field(repr=False, default=Path())

    def to_dict(self) -> dict:
        d = asdict(self)
        return json.loads(json.dumps(d, default=str))


def _scenarios(cfg) -> list[str]:
    return sorted(set(BASE_SCENARIOS) | set(cfg.projection.scenarios))


def world_domain(cfg) -> Domain:
    return Domain.from_config(cfg.domain).coarsen(cfg.data.synthetic.coarsen)


def world_paths(cfg, out_dir: str | Path) -> WorldPaths:
    root = Path(out_dir)
    p = cfg.period
    scen = _scenarios(cfg)
    cmip5: dict[str, dict[str, list[Path]]] = {}
    for g in cfg.data.synthetic.gcms:
        exps = {"historical": (p.start_year, C.HIST_END), **{s: (C.HIST_END + 1, p.projection_end_year) for s in scen}}
        cmip5[g] = {e: [root / "cmip5" / g / cmip5_filename(v, g, e, y0, y1) for v in ("tas", "pr", "snw")]
                    for e, (y0, y1) in exps.items()}
    return WorldPaths(
        root=root,
        era5land=[root / "era5land" / era5_filename(y) for y in range(p.start_year, p.end_year + 1)],
        invariants=root / "era5land" / "era5land_invariants.nc",
        statics=root / "statics.nc",
        record=root / "truth" / "record.zarr",
        truth={s: root / "truth" / f"{s}.zarr" for s in scen},
        cmip5=cmip5,
        marker=root / "world.json",
        blocks=root / ".blocks",
    )


def world_hash(cfg) -> str:
    """Hash of everything that changes the world's contents."""
    d = cfg.model_dump(mode="json")
    synthetic = {k: v for k, v in d["data"]["synthetic"].items() if k not in ("out_dir", "workers")}  # where/how, not what
    if synthetic.get("truth_stride") == 1:  # truth on every cell is the world before the key existed: same hash
        del synthetic["truth_stride"]
    key = {"seed": d["seed"], "domain": d["domain"], "period": d["period"], "synthetic": synthetic,
           "scenarios": _scenarios(cfg), "version": 4}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# ---- stores -----------------------------------------------------------------------------------------
def _create_store(path: Path, names: tuple[str, ...], axis: C.MonthAxis, domain: Domain, rows: int) -> None:
    import dask.array as da
    from zarr.codecs import BloscCodec

    ny, nx = domain.shape
    chunks = (12, rows, nx)
    data = {v: (("time", "latitude", "longitude"), da.full((axis.n, ny, nx), np.nan, dtype="float32", chunks=chunks),
                {"units": CANONICAL_ATTRS[v][0], "long_name": CANONICAL_ATTRS[v][1]}) for v in names}
    ds = xr.Dataset(data, coords={"time": ("time", axis.times()), **domain.coords()})
    ds.attrs = {"title": "geothaw synthetic Alaska (canonical schema: degC, mm month-1)", "Conventions": "CF-1.8"}
    enc = {v: {"chunks": chunks, "compressors": (BloscCodec(cname="zstd", clevel=1, shuffle="shuffle"),)} for v in names}
    enc["time"] = {"units": "days since 1950-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}
    ds.to_zarr(path, mode="w", compute=False, encoding=enc, consolidated=False)


def _write_region(path: Path, arrays: dict[str, np.ndarray], r0: int) -> None:
    import zarr

    g = zarr.open_group(str(path), mode="r+")
    for name, a in arrays.items():
        g[name][:, r0:r0 + a.shape[1], :] = a


# ---- one block --------------------------------------------------------------------------------------
@dataclass
class _Context:
    domain: Domain
    statics: dict[str, np.ndarray]
    seed: int
    spinup_years: int
    dt_days: float
    truth_stride: int          # scenario truth on every n-th row and column (1 = every cell)
    scenarios: list[str]
    full: C.MonthAxis          # start_year … projection_end_year
    record: C.MonthAxis
    trunk: C.MonthAxis         # start_year … 2005
    future: C.MonthAxis        # 2006 … projection_end_year
    warming: dict[str, np.ndarray]
    t_series: np.ndarray
    p_series: np.ndarray


def _props(st: dict[str, np.ndarray]):
    from ..physics import SoilProperties

    return SoilProperties(
        k_thawed=st["k_thawed"], k_frozen=st["k_frozen"], c_thawed=st["c_thawed"], c_frozen=st["c_frozen"],
        water_content=st["water_content"], unfrozen_a=st["unfrozen_a"], unfrozen_b=st["unfrozen_b"],
        organic_thickness=st["organic_thickness"], geothermal_flux=st["geothermal_flux"],
        n_factor_thaw=st["n_factor_thaw"], bedrock_depth=st["bedrock_depth"], **peat_properties(),
    )


def _spinup_state(ctx: _Context, params, t_modes, p_modes, props, st) -> np.ndarray | None:
    """Equilibrate the columns to the start year's mean climate (no weather), then return the node state.

    Two stages: a short run gives layer-4 temperature; the deep nodes are reset to it plus the geothermal
    gradient (so 25 m need not diffuse in for centuries), then the remaining years settle everything.
    """
    from ..physics import solve_columns

    if ctx.spinup_years <= 0:
        return None
    year = C.MonthAxis(ctx.full.start_year, ctx.full.start_year)
    zeros_t, zeros_p = np.zeros_like(ctx.t_series), np.zeros_like(ctx.p_series)
    t12, p12 = C.generate_forcing(params, year, ctx.warming[RECORD_SCENARIO][:12], t_modes, p_modes, zeros_t, zeros_p)
    days = np.tile(year.days, 3)
    _, depth, rho = snowpack(np.tile(t12, 3), np.tile(p12, 3), days)
    d12, r12 = depth[:, -12:], rho[:, -12:]
    n1 = max(1, ctx.spinup_years // 3)
    res = solve_columns(t12, d12, r12, props, dt_days=ctx.dt_days, spinup_years=n1 - 1, month_lengths=year.days)
    state = res.state.copy()
    t4 = res.layer_temperature[:, :, 3].mean(axis=1).astype("float64")
    deep = res.node_depths > 2.89
    k = np.where(t4 < 0.0, st["k_frozen"], st["k_thawed"])
    state[:, deep] = t4[:, None] + (st["geothermal_flux"] / k)[:, None] * (res.node_depths[deep] - 1.945)[None, :]
    n2 = ctx.spinup_years - n1
    if n2 > 0:
        res = solve_columns(np.tile(t12, n2), np.tile(d12, n2), np.tile(r12, n2), props, dt_days=ctx.dt_days,
                            initial_state=state, month_lengths=np.tile(year.days, n2))
        state = res.state
    return state


def truth_lattice(ii: np.ndarray, jj: np.ndarray, stride: int) -> np.ndarray:
    """Which cells (ii, jj) carry the scenario truth: every ``stride``-th row and column, from the first."""
    return (np.asarray(ii) % stride == 0) & (np.asarray(jj) % stride == 0)


def _solve_future(ctx: _Context, forcing: tuple[np.ndarray, np.ndarray, np.ndarray], st: dict[str, np.ndarray],
                  state: np.ndarray, parts: list[tuple[np.ndarray, int]]) -> dict[str, np.ndarray]:
    """Soil physics from 2006 on, per part ``(cells, months)``: those cells, that many months from 2006.

    Months or cells no part asks for stay NaN. Each part is its own solver call; a cell's result does not
    depend on the cells beside it (``build_world``), so splitting changes nothing where a part is solved.
    """
    from ..physics import solve_columns

    t, depth, rho = (f[:, ctx.trunk.n:] for f in forcing)
    n, m_all = t.shape
    out = {"layer_temperature": np.full((n, m_all, 4), np.nan), "layer_liquid_water": np.full((n, m_all, 4), np.nan),
           "thaw_depth": np.full((n, m_all), np.nan)}
    for cells, months in parts:
        if months <= 0 or not cells.any():
            continue
        props = _props({k: v[cells] for k, v in st.items()})
        res = solve_columns(t[cells, :months], depth[cells, :months], rho[cells, :months], props,
                            dt_days=ctx.dt_days, initial_state=state[cells], month_lengths=ctx.future.days[:months])
        for name, a in out.items():
            a[cells, :months] = getattr(res, name)
    return out


def _off_lattice_months(ctx: _Context) -> int:
    """Months from 2006 on that cells off the truth lattice are solved for: the record's, and the fewest more
    that make the record look to the solver exactly as in a solve to the projection's end.

    Two things reach back across a cut: the forcing's interpolation (a month's vertex depends on the next
    month's mean, so two more months are needed), and the step grid (the solver spreads whole steps evenly
    over its run, so both runs must hold a whole number of ``dt_days`` steps). Where no cut gives both, the
    whole future is solved.
    """
    days, dt = np.asarray(ctx.future.days, dtype="float64"), ctx.dt_days
    record_months = ctx.record.n - ctx.trunk.n
    if record_months <= 0:  # the record ends by 2005: only the lattice has a future
        return 0

    def whole_steps(d: float) -> bool:
        return abs(d / dt - round(d / dt)) < 1e-9

    if whole_steps(days.sum()):
        for months in range(record_months + 2, days.size):
            if whole_steps(days[:months].sum()):
                return months
    return days.size


def simulate_cells(ctx: _Context, ii: np.ndarray, jj: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """Forcing, snow and soil physics for land cells (ii, jj): {"record"|scenario: {var: (n, n_months)}}.

    The record (1950 to the record's end, along RCP4.5) is solved for every cell; the scenarios' futures only
    on the truth lattice (``ctx.truth_stride``), the cells the projection skill is scored on. Elsewhere the
    scenario arrays are NaN.
    """
    from ..physics import solve_columns

    st = {k: v[ii, jj] for k, v in ctx.statics.items()}
    lat, lon = ctx.domain.latitude[ii], ctx.domain.longitude[jj]
    params = C.climate_parameters(lat, lon, st["elevation"], st["m_open"], st["m_ice"])
    x, y = albers_km(lon, lat)
    t_modes, p_modes = C.variability_patterns(x, y, ctx.seed)
    props = _props(st)
    state0 = _spinup_state(ctx, params, t_modes, p_modes, props, st)
    n_trunk = ctx.trunk.n
    lattice = truth_lattice(ii, jj, ctx.truth_stride)
    out: dict[str, dict[str, np.ndarray]] = {}
    trunk_res = None
    for scen in [RECORD_SCENARIO] + [s for s in ctx.scenarios if s != RECORD_SCENARIO]:
        t, p = C.generate_forcing(params, ctx.full, ctx.warming[scen], t_modes, p_modes, ctx.t_series, ctx.p_series)
        swe, depth, rho = snowpack(t, p, ctx.full.days)
        if trunk_res is None:  # the shared 1950–2005 trunk, solved once
            trunk_res = solve_columns(t[:, :n_trunk], depth[:, :n_trunk], rho[:, :n_trunk], props, dt_days=ctx.dt_days,
                                      initial_state=state0, spinup_years=0, month_lengths=ctx.trunk.days)
        parts = [(lattice, ctx.future.n)]
        if scen == RECORD_SCENARIO:  # the record continues along this scenario: every cell to the record's end
            parts.append((~lattice, _off_lattice_months(ctx)))
        fut = _solve_future(ctx, (t, depth, rho), st, trunk_res.state, parts)
        fields = {"t2m": t, "tp": p, "sd": swe, "sde": depth, "rsn": rho}
        soil = {f"stl{k + 1}": np.concatenate([trunk_res.layer_temperature[:, :, k], fut["layer_temperature"][:, :, k]], 1)
                for k in range(4)}
        soil["thaw_depth"] = np.concatenate([trunk_res.thaw_depth, fut["thaw_depth"]], 1)
        if scen == RECORD_SCENARIO:
            n_rec = ctx.record.n
            rec = {k: v[:, :n_rec] for k, v in {**fields, **soil}.items()}
            for k in range(4):
                rec[f"swvl{k + 1}"] = np.concatenate([trunk_res.layer_liquid_water[:, :, k],
                                                      fut["layer_liquid_water"][:, :, k]], 1)[:, :n_rec]
            out["record"] = rec
        out[scen] = {k: np.where(lattice[:, None], v[:, n_trunk:], np.nan) for k, v in {**fields, **soil}.items()}
        del fut
    return out


def make_context(cfg, domain: Domain, statics: xr.Dataset) -> _Context:
    """Everything ``simulate_cells`` needs that is shared by all blocks (small: statics and 1-D series)."""
    p, syn = cfg.period, cfg.data.synthetic
    scenarios = _scenarios(cfg)
    full = C.MonthAxis(p.start_year, p.projection_end_year)
    t_series, p_series = C.variability_series(cfg.seed, max(p.projection_end_year, 2100))
    return _Context(
        domain=domain,
        statics={k: statics[k].values.astype("float64") for k in (
            "elevation", "m_open", "m_ice", "k_thawed", "k_frozen", "c_thawed", "c_frozen", "water_content",
            "unfrozen_a", "unfrozen_b", "organic_thickness", "geothermal_flux", "n_factor_thaw", "bedrock_depth")},
        seed=cfg.seed, spinup_years=syn.spinup_years, dt_days=syn.dt_days, truth_stride=syn.truth_stride,
        scenarios=scenarios, full=full,
        record=C.MonthAxis(p.start_year, p.end_year), trunk=C.MonthAxis(p.start_year, C.HIST_END),
        future=C.MonthAxis(C.HIST_END + 1, p.projection_end_year),
        warming={s: C.global_warming_monthly(s, full) for s in scenarios},
        t_series=t_series, p_series=p_series,
    )


def _row_blocks(land: np.ndarray, block_cells: int) -> tuple[int, list[tuple[int, int]]]:
    """Uniform row blocks (rows per block = zarr chunk height) holding ≤ ~``block_cells`` land cells each."""
    per_row = land.sum(axis=1)
    rows = max(1, int(block_cells // max(per_row.max(), 1)))
    ny = land.shape[0]
    return rows, [(r, min(r + rows, ny)) for r in range(0, ny, rows)]


def _scatter(values: np.ndarray, li: np.ndarray, jj: np.ndarray, n_rows: int, nx: int) -> np.ndarray:
    out = np.full((values.shape[1], n_rows, nx), np.nan, dtype="float32")
    out[:, li, jj] = values.T
    return out


# ---- the build --------------------------------------------------------------------------------------
_CTX: _Context | None = None  # the shared context in a worker process, sent once rather than with every task


def _init_worker(ctx: _Context) -> None:
    global _CTX
    import numba

    numba.set_num_threads(1)  # the processes are the parallelism; the kernel's own threads would oversubscribe
    _CTX = ctx


def _simulate_in_worker(ii: np.ndarray, jj: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    assert _CTX is not None
    return _as_float32(simulate_cells(_CTX, ii, jj))


def _as_float32(res: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    return {g: {k: v.astype("float32", copy=False) for k, v in d.items()} for g, d in res.items()}


@contextmanager
def _group_runner(ctx: _Context, workers: int) -> Iterator[Callable[[list], Iterator[dict]]]:
    """A function mapping cell groups [(ii, jj), …] to their physics results, in order, in ``workers`` processes."""
    if workers == 1:
        yield lambda groups: (_as_float32(simulate_cells(ctx, ii, jj)) for ii, jj in groups)
        return
    # spawn, not fork: the parent may hold threads (rich's refresh, dask) whose locks a fork would copy
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker, initargs=(ctx,))
    try:
        yield lambda groups: pool.map(_simulate_in_worker, *zip(*groups))
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C: stop now; finished blocks are kept
        raise
    pool.shutdown()


def _solve_blocks(ctx: _Context, land: np.ndarray, todo: list[tuple[int, int, Path]], write, workers: int | None,
                  report: Callable[[str, int, int], None], n_blocks: int) -> None:
    """Solve the physics of every block in ``todo`` and hand each finished block to ``write(r0, r1, li, jj, res)``.

    The solver's numba kernel gains little from a second thread (2 threads: 1.44× one), so groups of
    ``SOLVE_CELLS`` cells go to separate processes with one numba thread each. The groups are the same however
    many workers there are, so the world is too. Results come back in order; only this process writes, one
    whole block at a time, and marks it done after its last store.
    """
    cells = [np.nonzero(land[r0:r1]) for r0, r1, _ in todo]
    groups = [(li[k:k + SOLVE_CELLS] + r0, jj[k:k + SOLVE_CELLS])
              for (r0, _, _), (li, jj) in zip(todo, cells) for k in range(0, li.size, SOLVE_CELLS)]
    if workers is None:  # automatic: one process per core, unless the world is too small to gain from them
        # starting a spawned worker costs ~3 s and a group ~15–25 s: below a few groups per worker one process
        # wins (measured: 1° world, 2 groups: 48 s in one process, 52 s in two; 0.5°, 9 groups: 162 s vs 143 s)
        workers = available_cpus() if len(groups) >= 4 * available_cpus() else 1
    finished = n_blocks - len(todo)
    report("physics blocks", finished, n_blocks)
    with _group_runner(ctx, max(1, min(workers, len(groups)))) as run:
        results = run(groups)
        for (r0, r1, done), (li, jj) in zip(todo, cells):
            parts = [next(results) for _ in range(0, li.size, SOLVE_CELLS)]
            if parts:
                write(r0, r1, li, jj, {grp: {k: np.concatenate([r[grp][k] for r in parts]) for k in parts[0][grp]}
                                       for grp in parts[0]})
            done.touch()  # only after every store holds the block: a killed build redoes it
            finished += 1
            report("physics blocks", finished, n_blocks)


def _write_era5_group(record: Path, years: list[tuple[int, Path]], lon_continuous: np.ndarray) -> None:
    """Write the ERA5-Land files of ``years`` ([(year index, path), …]) from one read of the record store."""
    rec = xr.open_zarr(record, consolidated=False)[list(ERA5_FIELDS)]
    block = rec.isel(time=np.concatenate([np.arange(12 * k, 12 * k + 12) for k, _ in years])).load()
    rec.close()
    for j, (_, path) in enumerate(years):
        write_era5_year(path, block.isel(time=slice(12 * j, 12 * j + 12)), lon_continuous)


def _write_era5_files(paths: WorldPaths, domain: Domain, report: Progress, workers: int | None) -> None:
    """Write the missing yearly ERA5-Land files from the record store, a few years per read (bounded by
    ``ERA5_READ_BYTES``): one read per year cost twice the reading itself in overhead on the 1° world.

    Groups of years go to one process per core (netCDF compression is single-threaded, and HDF5 is not
    thread-safe): the full default's 75 files took 142.9 s in one process and 67.5 s in two on one VM (89 s in one
    in an earlier full run). The files are the same bytes either way."""
    year_bytes = 12 * int(np.prod(domain.shape)) * 4 * len(ERA5_FIELDS)
    per_read = max(1, ERA5_READ_BYTES // year_bytes)
    total = len(paths.era5land)
    missing = [(k, path) for k, path in enumerate(paths.era5land) if not path.exists()]
    groups = [missing[i:i + per_read] for i in range(0, len(missing), per_read)]
    done = total - len(missing)
    report("ERA5-Land files", done, total)
    if workers is None:  # automatic: a spawned worker costs ~2 s to start, worth it from two groups per worker on
        workers = available_cpus() if len(groups) >= 2 * available_cpus() else 1
    if min(workers, len(groups)) <= 1:
        for group in groups:
            _write_era5_group(paths.record, group, domain.longitude)
            done += len(group)
            report("ERA5-Land files", done, total)
        return
    pool = ProcessPoolExecutor(min(workers, len(groups)), mp_context=mp.get_context("spawn"))
    try:
        futures = {pool.submit(_write_era5_group, paths.record, group, domain.longitude): len(group) for group in groups}
        for future in as_completed(futures):
            future.result()
            done += futures[future]
            report("ERA5-Land files", done, total)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # Ctrl-C or a failed write: finished files are kept
        raise
    pool.shutdown()


def build_world(cfg, out_dir: str | Path, *, progress: Progress | None = None, block_cells: int = BLOCK_CELLS,
                overwrite: bool = False) -> dict:
    """Build (or resume) the synthetic world for ``cfg`` under ``out_dir``; a no-op when already complete.

    Returns a summary dict (paths, sizes, timings). Deterministic for ``cfg.seed``; results do not depend
    on ``block_cells`` beyond ~1e-9 K (every cell's weather and physics are independent of how cells are
    grouped; only the frozen-branch inversion method can differ per block, see ``physics.heat``).
    """
    from .statics import build_statics

    t_start = time.perf_counter()
    paths = world_paths(cfg, out_dir)
    h = world_hash(cfg)
    report = progress or (lambda stage, done, total: None)
    if paths.marker.exists() and not overwrite:
        summary = json.loads(paths.marker.read_text())
        if summary.get("hash") == h:
            return summary
        raise ConfigError(f"{paths.root} holds a synthetic world built from a different config "
                          f"(hash {summary.get('hash')} ≠ {h}); use another directory or overwrite=True")
    started = paths.blocks / "config.json"
    if overwrite or (started.exists() and json.loads(started.read_text()).get("hash") != h) or not started.exists():
        for p in (paths.root / "era5land", paths.root / "truth", paths.root / "cmip5", paths.blocks):
            shutil.rmtree(p, ignore_errors=True)
        for p in (paths.statics, paths.marker):
            p.unlink(missing_ok=True)
    p = cfg.period
    if p.start_year > C.HIST_END:
        raise ConfigError(f"period.start_year ({p.start_year}) must be ≤ {C.HIST_END}: scenarios branch from the "
                          "historical run at the end of 2005")
    syn = cfg.data.synthetic
    domain = world_domain(cfg)
    timings: dict[str, float] = {}

    # 1. statics (also the invariants file)
    t0 = time.perf_counter()
    report("statics", 0, 1)
    statics = build_statics(domain, cfg.seed)
    if not paths.statics.exists():
        with atomic_path(paths.statics, suffix=".nc") as tmp:
            statics.to_netcdf(tmp, engine="netcdf4")
    if not paths.invariants.exists():
        write_invariants(paths.invariants, statics)
    report("statics", 1, 1)
    timings["statics_s"] = time.perf_counter() - t0

    # 2. blocks of land cells → zarr stores
    t0 = time.perf_counter()
    scenarios = _scenarios(cfg)
    ctx = make_context(cfg, domain, statics)
    land = statics["land"].values.astype(bool)
    rows, blocks = _row_blocks(land, block_cells)
    if not started.exists():
        _create_store(paths.record, RECORD_VARS, ctx.record, domain, rows)
        for s in scenarios:
            _create_store(paths.truth[s], SCENARIO_VARS, ctx.future, domain, rows)
        write_text_atomic(started, json.dumps({"hash": h, "rows_per_block": rows}))
    nx = domain.shape[1]

    def write(r0: int, r1: int, li: np.ndarray, jj: np.ndarray, res: dict) -> None:
        _write_region(paths.record, {k: _scatter(v, li, jj, r1 - r0, nx) for k, v in res.pop("record").items()}, r0)
        for s in scenarios:
            _write_region(paths.truth[s], {k: _scatter(v, li, jj, r1 - r0, nx) for k, v in res.pop(s).items()}, r0)

    todo = [(r0, r1, paths.blocks / f"block_{b:04d}.done") for b, (r0, r1) in enumerate(blocks)
            if not (paths.blocks / f"block_{b:04d}.done").exists()]

    _solve_blocks(ctx, land, todo, write, syn.workers, report, len(blocks))
    timings["blocks_s"] = time.perf_counter() - t0

    # 3. ERA5-Land yearly files from the record store
    t0 = time.perf_counter()
    _write_era5_files(paths, domain, report, syn.workers)
    timings["era5_files_s"] = time.perf_counter() - t0

    # 4. GCMs (not in a thread beside the solver and the ERA5-Land writer: two threads writing netCDF files
    # at once crashed HDF5, which is not thread-safe, and the solver left little CPU idle to gain anyway)
    t0 = time.perf_counter()
    for k, g in enumerate(syn.gcms):
        report("GCMs", k, len(syn.gcms))
        if not all(f.exists() for fs in paths.cmip5[g].values() for f in fs):
            build_gcm(g, domain, cfg.seed, p.start_year, p.projection_end_year, scenarios, paths.root / "cmip5")
    report("GCMs", len(syn.gcms), len(syn.gcms))
    timings["gcms_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start

    summary = {
        "hash": h, "seed": cfg.seed, "grid_shape": list(domain.shape), "resolution_deg": domain.resolution,
        "land_cells": int(land.sum()), "blocks": len(blocks), "rows_per_block": rows,
        "record_years": [p.start_year, p.end_year], "scenario_years": [C.HIST_END + 1, p.projection_end_year],
        "scenarios": scenarios, "gcms": {g: {"calendar": gcm_spec(g).calendar, "grid_deg": [gcm_spec(g).dlat, gcm_spec(g).dlon]}
                                         for g in syn.gcms},
        "spinup_years": syn.spinup_years, "dt_days": syn.dt_days, "timings": timings,
        "paths": {k: v for k, v in paths.to_dict().items() if k != "blocks"},
    }
    write_text_atomic(paths.marker, json.dumps(summary, indent=1))
    return summary
