"""The pipeline: orders stages, caches each stage's outputs in the run directory, and resumes.

Each stage is a plain function ``stage(cfg, run_dir) -> dict`` (a summary). A stage is finished when
``run_dir/stages/<name>.json`` exists with the hash of the config sections it depends on; that marker is
written atomically after the stage's own atomic writes, so a killed run redoes at most one stage.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .config import RunConfig
from .io.atomic import write_text_atomic


@dataclass(frozen=True)
class Stage:
    name: str
    func: Callable[[RunConfig, Path], dict]
    depends_on: tuple[str, ...]  # config sections whose change invalidates this stage
    describe: str


def _stage_domain(cfg: RunConfig, run_dir: Path) -> dict:
    from .domain import Domain
    from .io.writers import write_domain

    dom = Domain.from_config(cfg.domain).coarsen(cfg.data.synthetic.coarsen) if cfg.data.source == "synthetic" \
        else Domain.from_config(cfg.domain)
    from .maps import plot_domain

    path = write_domain(dom, run_dir / "domain.nc")
    png = plot_domain(dom, run_dir / "maps" / "domain.png")
    land = dom.land_mask()
    area = float(dom.cell_area_km2().where(land).sum())
    return {"grid": f"{dom.shape[0]}×{dom.shape[1]} at {dom.resolution}°", "land_cells": int(land.sum()),
            "land_area_km2": round(area), "bands": dom.band_labels(), "outputs": [str(path.relative_to(run_dir)), str(png.relative_to(run_dir))]}


STAGES: list[Stage] = [
    Stage("domain", _stage_domain, ("domain", "data"), "grid, land mask, latitude bands"),
]


def run_dir_for(cfg: RunConfig) -> Path:
    return Path(cfg.output.runs_dir) / cfg.name


def prepare_run_dir(cfg: RunConfig) -> Path:
    from .versions import collect_versions

    run_dir = run_dir_for(cfg)
    (run_dir / "stages").mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / "config.yaml", cfg.to_yaml())
    write_text_atomic(run_dir / "versions.json", json.dumps({**collect_versions(), "seed": cfg.seed,
                                                             "config_hash": cfg.hash()}, indent=2))
    return run_dir


def run_pipeline(cfg: RunConfig, console: Console | None = None) -> dict[str, dict]:
    """Run every built stage in order, skipping those already finished with the same inputs."""
    console = console or Console()
    run_dir = prepare_run_dir(cfg)
    results: dict[str, dict] = {}
    for stage in STAGES:
        marker = run_dir / "stages" / f"{stage.name}.json"
        key = cfg.hash(*stage.depends_on)
        if marker.exists():
            done = json.loads(marker.read_text())
            if done.get("hash") == key:
                console.print(f"[dim]✓ {stage.name}: cached ({stage.describe})[/dim]")
                results[stage.name] = done["summary"]
                continue
        console.print(f"[bold]▶ {stage.name}[/bold]: {stage.describe}")
        t0 = time.perf_counter()
        summary = stage.func(cfg, run_dir)
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        write_text_atomic(marker, json.dumps({"hash": key, "summary": summary}, indent=2))
        results[stage.name] = summary
    table = Table(title=f"geothaw run '{cfg.name}' → {run_dir}")
    table.add_column("stage")
    table.add_column("result")
    for name, summary in results.items():
        table.add_row(name, ", ".join(f"{k}={v}" for k, v in summary.items() if k != "outputs"))
    console.print(table)
    return results
