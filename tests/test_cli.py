import subprocess
import sys

import pytest
import rasterio
import xarray as xr
from typer.testing import CliRunner

from geothaw import __version__
from geothaw.cli import app

runner = CliRunner()


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for cmd in ("run", "synth", "download", "train", "evaluate", "project", "maps", "validate-site"):
        assert cmd in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_show_versions_names_gdal_and_proj():
    result = runner.invoke(app, ["--show-versions"])
    assert result.exit_code == 0
    assert "GDAL" in result.output and "PROJ" in result.output and "torch" in result.output


def test_bad_config_is_one_line_and_nonzero(tmp_path):
    result = runner.invoke(app, ["run", "--set", "training.foo=1", "--set", f"output.runs_dir={tmp_path}"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == ["error: unknown config key 'training.foo'"]
    assert not any(tmp_path.iterdir())  # nothing written for a rejected config


def test_run_quick_does_real_work_and_caches(tmp_path):
    args = ["run", "--quick", "--set", f"output.runs_dir={tmp_path}"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    run_dir = tmp_path / "quick"
    with xr.open_dataset(run_dir / "domain.nc") as ds:
        assert int(ds["land"].sum()) > 1000
    with rasterio.open(f"netcdf:{run_dir / 'domain.nc'}:land") as src:  # GDAL sees the georeferencing
        assert src.crs.to_epsg() == 4326 and src.transform.a == pytest.approx(0.5)
    assert (run_dir / "maps" / "domain.png").stat().st_size > 10_000
    assert (run_dir / "config.yaml").exists() and (run_dir / "versions.json").exists()
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and "cached" in second.output


def test_console_script_entrypoint():
    proc = subprocess.run([sys.executable, "-m", "geothaw", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and __version__ in proc.stdout
