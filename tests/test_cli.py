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
    for cmd in ("run", "synth", "download", "train", "evaluate", "project", "maps", "status", "validate-site"):
        assert cmd in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_show_versions_names_gdal_and_proj():
    result = runner.invoke(app, ["--show-versions"])
    assert result.exit_code == 0
    assert "GDAL" in result.output and "PROJ" in result.output and "torch" in result.output
    from geothaw.versions import cpu_model

    assert f"cpu: {cpu_model()}" in result.output and cpu_model() != "unknown"  # timings mean little without it


def test_bad_config_is_one_line_and_nonzero(tmp_path):
    result = runner.invoke(app, ["run", "--set", "training.foo=1", "--set", f"output.runs_dir={tmp_path}"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == ["error: unknown config key 'training.foo'"]
    assert not any(tmp_path.iterdir())  # nothing written for a rejected config


def test_unbuilt_or_bad_stage_requests_fail_cleanly(tmp_path):
    result = runner.invoke(app, ["run", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 1 and "config file not found" in result.output


def test_console_script_entrypoint():
    proc = subprocess.run([sys.executable, "-m", "geothaw", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_download_dry_run_prints_requests_and_writes_them(tmp_path):
    result = runner.invoke(app, ["download", "--dry-run", "--out", str(tmp_path), "--set", "period.start_year=2000",
                                 "--set", "period.end_year=2001"])
    assert result.exit_code == 0, result.output
    assert "reanalysis-era5-land-monthly-means" in result.output and "2m_temperature" in result.output
    written = sorted(p.name for p in (tmp_path / "requests").glob("*.json"))
    assert len(written) >= 2


def test_download_without_credentials_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    result = runner.invoke(app, ["download", "--out", str(tmp_path / "dl"), "--set", "period.start_year=2000",
                                 "--set", "period.end_year=2001"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and ".cdsapirc" in lines[0]


def test_validate_site_without_data_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["validate-site", "--physics-only", "--data", str(tmp_path / "none"),
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and result.output.startswith("error:")
