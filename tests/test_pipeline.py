"""The main job end to end on a tiny configuration: outputs, caching, kill -9 and resume, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import rasterio
import xarray as xr

TINY = Path(__file__).parent / "configs" / "tiny.yaml"


def _cmd(runs: Path, worlds: Path, *extra: str, command: str = "run") -> list[str]:
    return [sys.executable, "-m", "geothaw", command, "--config", str(TINY), "--set", f"output.runs_dir={runs}",
            "--set", f"data.synthetic.out_dir={worlds}", *extra]


def _stage_states(runs: Path, worlds: Path, *extra: str) -> dict[str, str]:
    """``geothaw status`` read back: stage → done / stale / to do."""
    proc = subprocess.run(_cmd(runs, worlds, *extra, command="status"), capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    stage_table = proc.stdout.split("└")[0]  # the headlines table follows it
    rows = (line.split("│") for line in stage_table.splitlines() if line.startswith("│"))
    return {cells[1].strip(): cells[2].strip() for cells in rows if len(cells) > 3 and cells[1].strip()}


def _digest(run_dir: Path) -> dict[str, str]:
    """Hashes of every GeoTIFF, GeoPackage and products NetCDF (the outputs that must be byte-identical)."""
    out = {}
    for folder in ("rasters", "products"):
        for p in sorted((run_dir / folder).rglob("*")):
            if p.suffix in (".tif", ".nc", ".gpkg"):
                out[str(p.relative_to(run_dir))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    # --quick as in the README: the quick defaults, here overridden by the tiny config's domain and sizes
    proc = subprocess.run(_cmd(base / "runs", base / "worlds", "--quick"), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return base, base / "runs" / "tiny", proc.stdout, proc.stderr


def test_synth_command_reuses_the_built_world(finished_run):
    base, _, _, _ = finished_run
    cmd = [sys.executable, "-m", "geothaw", "synth", "--quick", "--config", str(TINY), "--set",
           f"output.runs_dir={base / 'runs_synth'}", "--set", f"data.synthetic.out_dir={base / 'worlds'}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "world" in proc.stdout and time.perf_counter() - t0 < 120  # found complete: nothing rebuilt
    worlds = list((base / "worlds").glob("world-*"))
    assert len(worlds) == 1 and (worlds[0] / "world.json").exists()


def test_synth_out_builds_where_asked_even_after_a_finished_run(finished_run):
    """`synth --out DIR` next to a finished run must put a world in DIR, not report the run's cached stage."""
    base, _, _, _ = finished_run
    target = base / "worlds_elsewhere"
    cmd = [sys.executable, "-m", "geothaw", "synth", "--quick", "--config", str(TINY), "--set",
           f"output.runs_dir={base / 'runs'}", "--out", str(target)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    worlds = list(target.glob("world-*"))
    assert len(worlds) == 1 and (worlds[0] / "world.json").exists()
    assert f"world in {worlds[0]} (" in proc.stdout


def test_run_writes_every_product(finished_run):
    from rio_cogeo.cogeo import cog_validate

    _, run, stdout, _ = finished_run
    assert "geothaw run 'tiny'" in stdout  # the final summary table
    for rel in ("config.yaml", "versions.json", "report.md", "report.html", "area_above_0C.csv", "best_model.json",
                "maps/overview.png", "evaluation/metrics.csv", "evaluation/projection_skill.csv",
                "products/ensemble_rcp85.nc", "rasters/exceedance_polygons.gpkg"):
        assert (run / rel).exists(), rel
    cog = run / "rasters" / "rcp85" / "magt_28-100cm_rcp85.tif"
    assert cog_validate(str(cog))[0]
    with rasterio.open(cog) as src:
        assert src.crs.to_epsg() == 3338 and src.descriptions[0] == "1985" and src.count == 2100 - 1985 + 1
    with xr.open_dataset(run / "products" / "ensemble_rcp85.nc") as ds:
        assert ds["magt"].dims == ("year", "depth", "latitude", "longitude")
        assert float(ds["magt"].notnull().mean()) > 0.5
    report = (run / "report.md").read_text()
    assert "Model comparison" in report and "Area with mean annual ground temperature" in report
    # the tiny config's shortlist: both networks trained one epoch, and only the better one a second
    best = json.loads((run / "best_model.json").read_text())["model"]
    other = ({"gru", "tcn"} - {best}).pop()
    assert f"Trained to the end: {best} 2 epochs" in report
    assert f"Stopped by the shortlist after 1 epoch (`training.shortlist_epochs`): {other};" in report
    # every stage records the main process's own peak memory while it ran
    for marker in (run / "stages").glob("*.json"):
        peak = json.loads(marker.read_text())["summary"]["peak_rss_gib"]
        assert 0.05 < peak < 4, (marker.name, peak)
    cost = report.split("## Run cost", 1)[1].split("\n## ", 1)[0]
    assert cost.index("| world |") < cost.index("| project |") < cost.index("| maps |")  # pipeline order
    machine = json.loads((run / "versions.json").read_text())["machine"]
    assert f"ran on {machine['cores']} cores of {machine['cpu']}." in cost


def test_run_ends_with_headlines_read_from_its_files(finished_run):
    from geothaw.run_summary import area_lines, holdout_lines, output_lines, skill_lines

    _, run, stdout, _ = finished_run
    assert "headlines" in stdout
    best = json.loads((run / "best_model.json").read_text())["model"]
    holdout = dict(holdout_lines(run))
    assert holdout["best network (validation)"] == best
    metrics = pd.read_csv(run / "evaluation" / "metrics.csv")
    years = metrics[(metrics["model"] == best) & (metrics["holdout"] == "time") & (metrics["band"] == "all")
                    & (metrics["season"] == "annual")].sort_values("depth")["rmse"]
    assert holdout["monthly RMSE, held-out years"] == " / ".join(f"{v:.2f}" for v in years) + " °C"
    skill = dict(skill_lines(run))
    assert any(k.startswith("projection skill, RCP8.5") for k in skill) and skill["scenario divergence, modelled / physics"].endswith(" %")
    (what, text), = area_lines(run)
    assert what == "land above 0 °C at 28–100 cm" and "(RCP8.5)" in text
    assert dict(output_lines(run))["report"] == str(run / "report.html")


def test_run_prints_no_python_warnings(finished_run):
    # a user reads warnings as something gone wrong; those the pipeline knows to be harmless are silenced where
    # they arise (xarray's chunk hint on the ensemble, rasterio's transform warning racing between COG threads)
    *_, stderr = finished_run
    assert "Warning:" not in stderr, stderr[-3000:]


def test_rerun_of_finished_run_does_nothing(finished_run):
    base, run, _, _ = finished_run
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*.tif")}
    proc = subprocess.run(_cmd(base / "runs", base / "worlds"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0
    assert proc.stdout.count("cached") >= 10
    assert before == {p: p.stat().st_mtime_ns for p in run.rglob("*.tif")}


def test_status_tells_what_a_rerun_would_skip(finished_run):
    base, _, _, _ = finished_run
    assert set(_stage_states(base / "runs", base / "worlds").values()) == {"done"}
    changed = _stage_states(base / "runs", base / "worlds", "--set", "training.epochs=3")
    assert [changed[s] for s in ("domain", "world", "inputs", "train", "report")] == ["done"] * 3 + ["stale"] * 2
    proc = subprocess.run(_cmd(base / "runs", base / "worlds", "--set", "name=never", command="status"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "has not started" in proc.stdout


def test_kill_9_then_resume_gives_byte_identical_outputs(finished_run, tmp_path):
    """Same seed → identical rasters, even when the run is killed with SIGKILL half-way and resumed."""
    base, ref_run, _, _ = finished_run
    runs = tmp_path / "runs"
    proc = subprocess.Popen(_cmd(runs, base / "worlds"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    marker = runs / "tiny" / "stages" / "train.json"
    deadline = time.time() + 900
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the run never reached the train stage"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (runs / "tiny" / "stages" / "report.json").exists()
    states = _stage_states(runs, base / "worlds")  # what a re-run will skip and redo
    assert states["train"] == "done" and states["report"] == "to do" and list(states)[0] == "domain"
    resumed = subprocess.run(_cmd(runs, base / "worlds"), capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "train: cached" in resumed.stdout
    ref, got = _digest(ref_run), _digest(runs / "tiny")
    assert ref.keys() == got.keys() and len(ref) > 50
    assert ref == got


def test_corrupt_stage_marker_reruns_that_stage(finished_run):
    base, run, _, _ = finished_run
    marker = run / "stages" / "report.json"
    marker.write_text("{not json")
    proc = subprocess.run(_cmd(base / "runs", base / "worlds"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "▶ report" in proc.stdout
    assert json.loads(marker.read_text())["summary"]["report"]


@pytest.mark.parametrize("name", ["01_quickstart.ipynb", "02_spatial_analysis.ipynb"])
def test_notebooks_execute_on_a_finished_run(finished_run, name, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    _, run, _, _ = finished_run
    monkeypatch.setenv("GEOTHAW_RUN_DIR", str(run))
    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
