"""The ``geothaw`` command line (typer + rich). Thin: each command parses, loads config, calls the library."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import GeothawError
from .io.atomic import disk_problem

app = typer.Typer(
    name="geothaw",
    help="Project Alaskan active-layer soil temperature with sequence deep learning (ERA5-Land + CMIP5).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML run config merged over the defaults")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="override a config key: --set training.epochs=5")]
QuickOpt = Annotated[bool, typer.Option("--quick", help="coarse, short configuration for a first look")]


def command(name: str | None = None):
    """Register a typer command whose ``GeothawError`` becomes one red line on stderr and exit code 1."""

    def wrap(func):
        @functools.wraps(func)
        def inner(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except GeothawError as exc:
                console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None
            except OSError as exc:  # e.g. a full disk under a zarr store, which has no atomic_path of its own
                reason = disk_problem(exc)
                if reason is None:
                    raise
                where = f" writing {exc.filename}" if exc.filename else ""
                console.print(f"[red]error:[/red] {reason}{where}; finished stages are kept, re-run to resume",
                              highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None

        return app.command(name)(inner)

    return wrap


def _version_cb(value: bool) -> None:
    if value:
        out.print(f"geothaw {__version__}")
        raise typer.Exit()


def _show_versions_cb(value: bool) -> None:
    if value:
        from .versions import collect_versions, machine_info

        for k, v in {**collect_versions(), **machine_info()}.items():
            out.print(f"{k:>12}: {v}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version_cb, is_eager=True, help="print the version")] = False,
    show_versions: Annotated[bool, typer.Option("--show-versions", callback=_show_versions_cb, is_eager=True,
                                                help="print geothaw, torch, dask, GDAL and PROJ versions")] = False,
) -> None:
    """geothaw command line."""


def _load(config: Path | None, overrides: list[str] | None, quick: bool = False):
    from .config import load_config

    return load_config(config, overrides or [], base="quick" if quick else "alaska")


@command()
def run(config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False) -> None:
    """Run the whole pipeline (default: the embedded synthetic Alaska at full 0.1° resolution)."""
    from .pipeline import run_pipeline

    cfg = _load(config, set_, quick)
    run_pipeline(cfg, console=out)


@command()
def synth(
    config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="folder for the world (default: data.synthetic.out_dir/world-<hash>)")] = None,
) -> None:
    """Generate the physics-grounded synthetic Alaska (ERA5-Land- and CMIP5-format files)."""
    from .pipeline import run_dir_for
    from .stages import Context, stage_world

    cfg = _load(config, set_, quick)
    if out_dir is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={
            "synthetic": cfg.data.synthetic.model_copy(update={"out_dir": out_dir})})})
    # straight to the builder, not through a run's stage cache: the world must end up in the folder asked for
    # (the builder itself reuses a complete world there, and resumes a partial one)
    summary = stage_world(Context(cfg, run_dir_for(cfg), out))
    out.print(f"world in {summary['world']} ({summary['land_cells']} land cells)", soft_wrap=True)  # a whole, copyable path


@command()
def download(
    config: ConfigOpt = None, set_: SetOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for the requests and downloaded files")] = Path("data/era5land"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the cdsapi requests, submit nothing")] = False,
) -> None:
    """Build (and, with ~/.cdsapirc, submit) the ERA5-Land monthly-means requests for the domain."""
    import json

    from .domain import Domain
    from .io.cds import build_requests, download as cds_download

    cfg = _load(config, set_)
    domain = Domain.from_config(cfg.domain)
    if dry_run:
        for req in build_requests(domain, cfg.period.start_year, cfg.period.end_year):
            out.print_json(json.dumps(req))
    paths = cds_download(domain, cfg.period.start_year, cfg.period.end_year, out_dir, dry_run=dry_run)
    out.print(f"{'wrote' if dry_run else 'downloaded'} {len(paths)} file(s) under {out_dir}")


@command()
def train(config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False) -> None:
    """Train the sequence models and baselines (builds the inputs first if needed)."""
    from .pipeline import run_stages

    run_stages(_load(config, set_, quick), "train", console=out)


@command()
def evaluate(config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False) -> None:
    """Evaluate trained models on held-out years and spatial blocks, and score projection skill."""
    from .pipeline import run_stages

    run_stages(_load(config, set_, quick), "skill", console=out)


@command()
def project(config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False) -> None:
    """Bias-correct the GCMs and project the best model over the domain (dask), writing products and rasters."""
    from .pipeline import run_stages

    run_stages(_load(config, set_, quick), "rasters", console=out)


@command()
def maps(config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False) -> None:
    """Draw thaw maps (cartopy, EPSG:3338, offline basemap)."""
    from .pipeline import run_stages

    run_stages(_load(config, set_, quick), "maps", console=out)


@command()
def status(config: ConfigOpt = None, set_: SetOpt = None, quick: QuickOpt = False) -> None:
    """Show which stages of a run are finished, which a re-run would redo, and the run's headline numbers."""
    from .run_summary import print_status

    print_status(_load(config, set_, quick), out)


@command("validate-site")
def validate_site(
    sites: Annotated[Optional[list[str]], typer.Argument(help="site names (default: all): gsm1 gsm3 gsm4 toolik_mat89 toolik_historic")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run-dir", help="run directory whose checkpoints/*.pt are scored")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="folder for scores, monthly series and plots")] = Path("site_validation"),
    data_dir: Annotated[Optional[Path], typer.Option("--data", help="in-situ data folder (default: $GEOTHAW_SITE_DATA or ../shared/data)")] = None,
    physics_only: Annotated[bool, typer.Option("--physics-only", help="score only the physics solver")] = False,
) -> None:
    """Score the trained models and the physics solver against in-situ soil temperatures at real sites."""
    from .validation import results_table, validate_sites

    scores = validate_sites(sites or None, None if physics_only else run_dir, out_dir, data_dir=data_dir,
                            require_checkpoints=not physics_only)
    out.print(results_table(scores))
    out.print(f"scores, monthly series and plots in {out_dir}")


def entrypoint() -> None:
    """Console-script entry: a ``GeothawError`` escaping outside a command still ends as one line."""
    try:
        app()
    except GeothawError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
