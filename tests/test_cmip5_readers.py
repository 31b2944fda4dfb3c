"""CMIP5 readers: ESGF NetCDF (any calendar) and SNAP GeoTIFF folders regrid onto the domain in canonical units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from geothaw.domain import Domain
from geothaw.errors import InputDataError
from geothaw.io.cmip5 import ESGF_NAME, open_cmip5
from geothaw.testing import antimeridian_domain, cmip5_expected, write_cmip5_esgf, write_snap_geotiffs

TOL = {"t2m": 2e-3, "tp": 2e-3, "sd": 1e-5}  # bilinear on a 2° × 2.5° grid of smooth fields


@pytest.fixture(scope="module")
def dom() -> Domain:
    return antimeridian_domain()


@pytest.fixture(scope="module")
def esgf(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("esgf")
    for cal in ("noleap", "360_day", "standard"):
        write_cmip5_esgf(root / cal, calendar=cal, split_at=12)
    return {cal: root / cal for cal in ("noleap", "360_day", "standard")}


@pytest.fixture(scope="module")
def snap(tmp_path_factory, dom) -> Path:
    root = tmp_path_factory.mktemp("snap")
    write_snap_geotiffs(root, dom, months=24)
    return root


def assert_canonical(ds: xr.Dataset, expected: xr.Dataset, dom: Domain, tol=TOL) -> None:
    np.testing.assert_array_equal(ds["latitude"].values, dom.latitude)
    np.testing.assert_array_equal(ds["longitude"].values, dom.longitude)
    np.testing.assert_array_equal(ds["time"].values, expected["time"].values)
    for name in expected.data_vars:
        assert ds[name].dtype == np.float32
        np.testing.assert_allclose(ds[name].values, expected[name].values, atol=tol[name], err_msg=name)
    assert ds["t2m"].attrs["units"] == "degC" and ds["tp"].attrs["units"] == "mm month-1"


@pytest.mark.parametrize("calendar", ["noleap", "360_day", "standard"])
def test_esgf_any_calendar_round_trips(esgf, dom, calendar):
    ds = open_cmip5(esgf[calendar], dom)
    assert_canonical(ds, cmip5_expected(dom), dom)
    assert ds["sd"].attrs["units"] == "m"
    assert ds.attrs["gcm"] == "SYN-ESM" and ds.attrs["scenario"] == "rcp85" and ds.attrs["calendar"] == calendar
    assert ds["time"].dtype == "datetime64[ns]" and bool((ds["time"].dt.day == 1).all())


def test_pr_uses_the_files_own_month_lengths(esgf, dom):
    """Feb in 360_day has 30 days, in noleap 28: the same flux gives different monthly totals."""
    out = {}
    for cal in ("360_day", "noleap"):
        raw = xr.open_dataset(next(esgf[cal].glob("pr_*200601-200612.nc")), engine="netcdf4",
                              decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
        with raw:
            flux = float(raw["pr"].isel(time=1).interp(lat=60.0, lon=180.0))
        ds = open_cmip5(esgf[cal], dom, variables=("pr",))
        out[cal] = float(ds["tp"].sel(time="2006-02-01", latitude=60.0, longitude=180.0)) / flux / 86400
    assert out == pytest.approx({"360_day": 30.0, "noleap": 28.0}, rel=1e-4)


def test_regridding_across_zero_degrees_uses_the_periodic_axis(esgf):
    across_zero = Domain(lat_min=50.0, lat_max=51.0, lon_min=358.0, lon_max=362.0, resolution=0.5)
    ds = open_cmip5(esgf["noleap"], across_zero)
    assert_canonical(ds, cmip5_expected(across_zero), across_zero)


def test_snap_geotiff_folder_round_trips(snap, dom):
    ds = open_cmip5(snap, dom, variables=("tas", "pr"))
    assert_canonical(ds, cmip5_expected(dom, months=24, variables=("t2m", "tp")), dom, tol={"t2m": 0.02, "tp": 0.02})
    assert ds.attrs["gcm"] == "GFDL-CM3" and ds.attrs["scenario"] == "rcp85"
    assert ds["longitude"].values.max() > 180


def test_esgf_name_parsing():
    m = ESGF_NAME.match("tas_Amon_GFDL-CM3_rcp45_r1i1p1_200601-210012.nc")
    assert (m["var"], m["gcm"], m["scenario"], m["ensemble"]) == ("tas", "GFDL-CM3", "rcp45", "r1i1p1")


# ---- bad input ----------------------------------------------------------------------------------------
def _raises(path, match, call):
    with pytest.raises(InputDataError, match=match) as info:
        call()
    assert str(path) in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_missing_file(tmp_path, dom):
    p = tmp_path / "tas_Amon_X_rcp85_r1i1p1_200601-200612.nc"
    _raises(p, "file not found", lambda: open_cmip5(p, dom))


def test_empty_file(tmp_path, dom):
    p = tmp_path / "tas_Amon_X_rcp85_r1i1p1_200601-200612.nc"
    p.touch()
    _raises(p, "empty", lambda: open_cmip5(p, dom))


def test_missing_variable(tmp_path, dom):
    files = write_cmip5_esgf(tmp_path, variables=("tas",), months=12)
    _raises(files[0], "missing variable 'pr'", lambda: open_cmip5(files, dom))


def test_snap_without_snow_says_what_to_pass(snap, dom):
    _raises(snap, r"missing variable 'snw' \(SNAP folders hold only tas and pr", lambda: open_cmip5(snap, dom))


def test_unknown_units(tmp_path, dom):
    import netCDF4

    (p,) = write_cmip5_esgf(tmp_path, variables=("pr",), months=12)
    with netCDF4.Dataset(p, "a") as nc:
        nc["pr"].units = "mm h-1"
    _raises(p, "unknown units 'mm h-1'", lambda: open_cmip5(p, dom, variables=("pr",)))
    q = write_snap_geotiffs(tmp_path / "snap", dom, months=1, variables=("tas",))[0]
    bad = q.with_name(q.name.replace("_mean_C_", "_mean_F_"))
    q.rename(bad)
    _raises(bad, "unknown units 'F'", lambda: open_cmip5(bad, dom, variables=("tas",)))


def test_no_overlap_with_the_domain(snap, esgf):
    far = Domain(lat_min=40.0, lat_max=40.5, lon_min=10.0, lon_max=10.5, resolution=0.1)
    tif = next(snap.glob("tas_*.tif"))
    _raises(tif, "no overlap with the domain", lambda: open_cmip5(tif, far, variables=("tas",)))
    polar = Domain(lat_min=89.5, lat_max=89.9, lon_min=0.0, lon_max=1.0, resolution=0.1)  # beyond the last GCM row
    tas = next(esgf["noleap"].glob("tas_*"))
    _raises(tas, "no overlap with the domain", lambda: open_cmip5(tas, polar, variables=("tas",)))


def test_duplicate_months(tmp_path, dom):
    a = write_cmip5_esgf(tmp_path / "a", variables=("tas",), months=24)
    b = write_cmip5_esgf(tmp_path / "b", variables=("tas",), months=12, start_year=2007)
    _raises(b[0], "duplicate month 2007-01", lambda: open_cmip5([*a, *b], dom, variables=("tas",)))


def test_gapped_months(tmp_path, dom):
    files = write_snap_geotiffs(tmp_path, dom, months=6, variables=("tas",))
    files[2].unlink()  # March missing
    _raises(files[0], "gap in months: 2006-03 missing", lambda: open_cmip5(tmp_path, dom, variables=("tas",)))


def test_mixed_gcms(tmp_path, dom):
    write_cmip5_esgf(tmp_path, gcm="A-ESM", variables=("tas",), months=12)
    write_cmip5_esgf(tmp_path, gcm="B-ESM", variables=("tas",), months=12, start_year=2007)
    with pytest.raises(InputDataError, match=r"mixes several gcms \(A-ESM, B-ESM\)"):
        open_cmip5(tmp_path, dom, variables=("tas",))


def test_truncated_or_corrupt(esgf, tmp_path, dom):
    src = next(esgf["noleap"].glob("tas_*200601-200612.nc"))
    p = tmp_path / src.name
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    _raises(p, "truncated or corrupt", lambda: open_cmip5(p, dom, variables=("tas",)))
    q = tmp_path / "tas_mean_C_AR5_GFDL-CM3_rcp85_01_2006.tif"
    q.write_bytes(b"II*\x00" + b"\x00" * 40)
    _raises(q, "truncated or corrupt", lambda: open_cmip5(q, dom, variables=("tas",)))


def test_all_nan_field(tmp_path, dom):
    import rasterio

    (p,) = write_snap_geotiffs(tmp_path, dom, months=1, variables=("tas",))
    with rasterio.open(p, "r+") as f:
        f.write(np.full((f.height, f.width), -9999.0, dtype="float32"), 1)
    _raises(p, "all-NaN", lambda: open_cmip5(p, dom, variables=("tas",)))


def test_snap_file_name_must_parse(tmp_path, dom):
    (p,) = write_snap_geotiffs(tmp_path, dom, months=1, variables=("tas",))
    q = p.rename(p.with_name("my_temperature.tif"))
    _raises(q, "not a SNAP file name", lambda: open_cmip5(q, dom, variables=("tas",)))
