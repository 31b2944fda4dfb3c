"""CDS request builder: exact cdsapi requests, antimeridian-safe area, offline dry run, clear credential error."""

from __future__ import annotations

import json
import sys

import pytest

from geothaw.domain import Domain
from geothaw.errors import ConfigError
from geothaw.io.cds import (
    DATASET,
    DEFAULT_VARIABLES,
    INVARIANT_DATASET,
    build_requests,
    download,
    request_area,
    submit_requests,
    write_requests,
)


def test_default_alaska_requests_one_per_year_plus_invariants():
    reqs = build_requests(Domain(), 2000, 2002)
    assert [r["dataset"] for r in reqs] == [DATASET] * 3 + [INVARIANT_DATASET]
    assert [r["request"]["year"] for r in reqs[:3]] == [["2000"], ["2001"], ["2002"]]
    r = reqs[0]["request"]
    assert r["product_type"] == ["monthly_averaged_reanalysis"]
    assert r["month"] == [f"{m:02d}" for m in range(1, 13)] and r["time"] == ["00:00"]
    assert r["data_format"] == "netcdf" and r["download_format"] == "unarchived"
    assert r["area"] == [72.0, 172.0, 51.0, -129.0]  # W > E: CDS wraps eastward across 180°
    assert "grid" not in r  # native 0.1°
    for name in ("2m_temperature", "total_precipitation", "snow_depth_water_equivalent", "snow_depth", "snow_density",
                 "soil_temperature_level_4", "volumetric_soil_water_layer_1"):
        assert name in r["variable"]
    assert tuple(r["variable"]) == DEFAULT_VARIABLES
    inv = reqs[-1]["request"]
    assert inv["variable"] == ["land_sea_mask", "geopotential", "soil_type"] and inv["grid"] == [0.1, 0.1]
    assert inv["area"] == r["area"]
    assert len({x["target"] for x in reqs}) == len(reqs)


@pytest.mark.parametrize(("domain", "area"), [
    (Domain(), [72.0, 172.0, 51.0, -129.0]),
    (Domain(lat_min=60, lat_max=65, lon_min=200, lon_max=210), [65.0, -160.0, 60.0, -150.0]),
    (Domain(lat_min=60, lat_max=65, lon_min=170, lon_max=179), [65.0, 170.0, 60.0, 179.0]),
    (Domain(lat_min=60, lat_max=65, lon_min=170, lon_max=180), [65.0, 170.0, 60.0, 180.0]),
])
def test_area_covers_the_domain_eastward(domain, area):
    got = request_area(domain)
    assert got == area
    assert all(-180 <= x <= 180 for x in got[1::2])
    span = (got[3] - got[1]) % 360 or (360 if got[3] != got[1] else 0)
    assert span == pytest.approx(domain.lon_max - domain.lon_min)


def test_coarse_domain_asks_cds_for_its_grid():
    r = build_requests(Domain().coarsen(5), 2000, 2000, invariants=False)
    assert len(r) == 1 and r[0]["request"]["grid"] == [0.5, 0.5]


@pytest.mark.parametrize(("args", "match"), [
    ((2005, 2000), "after end year"), ((1940, 1945), "starts in 1950"),
])
def test_bad_years(args, match):
    with pytest.raises(ConfigError, match=match):
        build_requests(Domain(), *args)


def test_unknown_variable():
    with pytest.raises(ConfigError, match="unknown ERA5-Land variable 'soil_temp'"):
        build_requests(Domain(), 2000, 2000, ["2m_temperature", "soil_temp"])


def test_write_requests_as_json(tmp_path):
    reqs = build_requests(Domain(), 2000, 2001)
    paths = write_requests(reqs, tmp_path / "req")
    assert [p.name for p in paths] == ["era5land_monthly_2000.json", "era5land_monthly_2001.json",
                                       "era5land_invariants.json"]
    assert json.loads(paths[0].read_text()) == reqs[0]
    assert sorted(p.name for p in (tmp_path / "req").iterdir()) == sorted(p.name for p in paths)  # no temp files


def test_submit_without_cdsapirc_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"\.cdsapirc does not exist.*--dry-run"):
        submit_requests(build_requests(Domain(), 2000, 2000), tmp_path / "out")
    assert "cdsapi" not in sys.modules
    assert not (tmp_path / "out").exists()


def test_download_dry_run_writes_requests_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no credentials needed for a dry run
    paths = download(Domain(), 2000, 2001, tmp_path / "era5", dry_run=True)
    assert len(paths) == 3 and all(p.parent == tmp_path / "era5" / "requests" for p in paths)
    assert [p.name for p in (tmp_path / "era5").iterdir()] == ["requests"]
    assert "cdsapi" not in sys.modules
