"""The pipeline: orders stages, caches each stage's outputs in the run directory, and resumes.

Each stage is a plain function ``stage(ctx) -> dict`` (see :mod:`geothaw.stages`). A stage is finished when
``run_dir/stages/<name>.json`` holds the hash of the config sections it depends on; that marker is written
atomically after the stage's own atomic writes, so a killed run redoes at most the stage it was in (and stages
that write many files skip the files already complete).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from . import stages as S
from .config import RunConfig
from .errors import ConfigError
from .io.atomic import write_text_atomic
from .memory import PeakRss, return_freed_memory
from .run_summary import print_run_summary
from .warmup import start_background_imports


@dataclass(frozen=True)
class Stage:
    name: str
    func: Callable[[S.Context], dict]
    depends_on: tuple[str, ...]  # config sections whose change invalidates this stage (and later ones)
    describe: str


def _stage_domain(ctx: S.Context) -> dict:
    from .io.writers import write_domain
    from .maps import plot_domain

    dom = ctx.domain()
    path = write_domain(dom, ctx.path("domain.nc"))
    png = plot_domain(dom, ctx.path("maps", "domain.png"))
    land = dom.land_mask()
    area = float(dom.cell_area_km2().where(land).sum())
    return {"grid": f"{dom.shape[0]}×{dom.shape[1]} at {dom.resolution}°", "land_cells": int(land.sum()),
            "land_area_km2": round(area), "outputs": [str(path.relative_to(ctx.run_dir)), str(png.relative_to(ctx.run_dir))]}


_ALL = ("seed", "domain", "data", "period")
STAGES: list[Stage] = [
    Stage("domain", _stage_domain, ("domain", "data"), "grid, land mask, latitude bands"),
    Stage("world", S.stage_world, _ALL, "inputs: synthetic Alaska (ERA5-Land + CMIP5 formats) or user files"),
    Stage("inputs", S.stage_inputs, _ALL, "read the reanalysis files into the run's input store"),
    Stage("train", S.stage_train, (*_ALL, "features", "training", "evaluation"), "train the sequence models + baselines"),
    Stage("evaluate", S.stage_evaluate, (*_ALL, "features", "training", "evaluation"), "hold-out metrics, best model, attribution"),
    Stage("skill", S.stage_skill, (*_ALL, "features", "training", "evaluation", "projection"), "projection skill vs physics truth"),
    Stage("biascorrect", S.stage_biascorrect, _ALL, "quantile mapping of GCM forcing (xsdba)"),
    Stage("project", S.stage_project, (*_ALL, "features", "training", "evaluation", "projection"), "dask projection to 2100"),
    Stage("rasters", S.stage_rasters, (*_ALL, "features", "training", "evaluation", "projection", "output"), "COG GeoTIFFs, areas, GeoPackage"),
    Stage("maps", S.stage_maps, (*_ALL, "features", "training", "evaluation", "projection", "output"), "cartopy thaw maps"),
    Stage("report", S.stage_report, ("name", *_ALL, "features", "training", "evaluation", "projection", "output"), "report.md + report.html"),
]
STAGE_NAMES = [s.name for s in STAGES]
_EARLY_STAGES = ("world", "inputs")  # numba threads release the GIL: idle CPU for the later stages' imports


def run_dir_for(cfg: RunConfig) -> Path:
    return Path(cfg.output.runs_dir) / cfg.name


def prepare_run_dir(cfg: RunConfig) -> Path:
    from .versions import collect_versions, machine_info

    run_dir = run_dir_for(cfg)
    try:
        (run_dir / "stages").mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", cfg.to_yaml())
    except PermissionError:
        raise ConfigError(f"output directory {run_dir} is not writable") from None
    write_text_atomic(run_dir / "versions.json", json.dumps({**collect_versions(), "seed": cfg.seed,
                                                             "config_hash": cfg.hash(), "machine": machine_info()}, indent=2))
    return run_dir


def _stage_key(cfg: RunConfig, stage: Stage, upstream: str) -> str:
    """What a stage's marker must hold for the stage to count as finished: the hash of the config sections it
    depends on and the completion token of the stage before it."""
    return hashlib.sha256((cfg.hash(*stage.depends_on) + upstream).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StageState:
    name: str
    state: str  # "done", "stale" (its marker is from another config or an earlier stage was redone) or "to do"
    summary: dict | None  # the marker's summary (seconds, peak memory, results) when there is one
    finished_at: float | None  # the marker's modification time (seconds since the epoch)


def stage_states(cfg: RunConfig) -> list[StageState]:
    """Which stages of this config's run are finished, without running anything: the same test as
    ``run_stages`` applies, so "done" here is what a re-run would skip."""
    run_dir = run_dir_for(cfg)
    states, upstream, intact = [], "", True
    for stage in STAGES:
        marker = run_dir / "stages" / f"{stage.name}.json"
        data = _read_marker(marker)
        done = intact and data is not None and data.get("hash") == _stage_key(cfg, stage, upstream)
        if done:
            upstream = data.get("token", "")
        intact = intact and done
        state = "done" if done else ("stale" if data is not None else "to do")
        states.append(StageState(stage.name, state, data["summary"] if data else None,
                                 marker.stat().st_mtime if data else None))
    return states


def run_stages(cfg: RunConfig, until: str | None = None, console: Console | None = None) -> dict[str, dict]:
    """Run the pipeline up to and including stage ``until`` (default: all), skipping stages already finished
    with the same inputs. Earlier stages always run (or are confirmed cached) first, in order."""
    console = console or Console()
    until = until or STAGE_NAMES[-1]
    if until not in STAGE_NAMES:
        raise ConfigError(f"unknown stage '{until}' (stages: {', '.join(STAGE_NAMES)})")
    wanted = STAGE_NAMES[: STAGE_NAMES.index(until) + 1]
    run_dir = prepare_run_dir(cfg)
    ctx = S.Context(cfg, run_dir, console)
    results: dict[str, dict] = {}
    t_run = time.perf_counter()
    upstream = ""  # token of the previous stage's completion: a redone stage invalidates everything after it
    imports = None
    try:
        for stage in STAGES:
            if stage.name not in wanted:
                continue
            marker = run_dir / "stages" / f"{stage.name}.json"
            key = _stage_key(cfg, stage, upstream)
            done = _read_marker(marker)
            if done is not None and done.get("hash") == key:
                console.print(f"[dim]✓ {stage.name}: cached ({stage.describe})[/dim]")
                results[stage.name] = done["summary"]
                upstream = done.get("token", "")
                continue
            if imports is None and stage.name in _EARLY_STAGES and len(wanted) > STAGE_NAMES.index("inputs") + 1:
                imports = start_background_imports()  # hidden behind the world build / input reading
            console.print(f"[bold]▶ {stage.name}[/bold]: {stage.describe}")
            t0 = time.perf_counter()
            with PeakRss() as peak:
                summary = stage.func(ctx)
            summary["seconds"] = round(time.perf_counter() - t0, 1)
            summary["peak_rss_gib"] = round(peak.peak_bytes / 2**30, 2)  # this process's; worker processes not counted
            return_freed_memory()  # so the next stage's peak does not start from this one's freed heaps
            upstream = uuid.uuid4().hex
            write_text_atomic(marker, json.dumps({"hash": key, "token": upstream, "summary": summary}, indent=2, default=str))
            results[stage.name] = summary
    except BaseException:
        if imports is not None:
            imports.join(cancel=True)
            imports = None
        raise
    finally:
        if imports is not None:
            imports.join()
    print_run_summary(cfg.name, run_dir, results, console, time.perf_counter() - t_run)
    return results


def _read_marker(marker: Path) -> dict | None:
    """A stage marker, or None when absent or unreadable (a corrupt marker means: redo the stage)."""
    if not marker.exists():
        return None
    try:
        data = json.loads(marker.read_text())
        return data if isinstance(data, dict) and "hash" in data and "summary" in data else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def run_pipeline(cfg: RunConfig, console: Console | None = None) -> dict[str, dict]:
    """The main job: every stage, from inputs to maps and the report."""
    return run_stages(cfg, None, console)
