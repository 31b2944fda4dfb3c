"""ERA5-Land readers: every real layout round-trips to the same canonical dataset; bad input fails clearly."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from geothaw.domain import Domain, wrap_longitude
from geothaw.errors import InputDataError
from geothaw.io.era5land import READERS, open_era5land
from geothaw.testing import (
    antimeridian_domain,
    era5land_truth,
    write_era5land_grib,
    write_era5land_invariants,
    write_era5land_new_cds,
    write_era5land_old_cds,
    write_era5land_split,
)

VARS = ("t2m", "tp", "sd", "stl1", "swvl1")
LAYOUTS = ("new_cds", "new_cds_request_order", "old_cds", "old_cds_expver", "grib")


@pytest.fixture(scope="module")
def dom() -> Domain:
    return antimeridian_domain()


@pytest.fixture(scope="module")
def truth(dom) -> xr.Dataset:
    return era5land_truth(dom, months=36, variables=VARS)


@pytest.fixture(scope="module")
def files(tmp_path_factory, truth) -> dict[str, tuple[Path, Path]]:
    """(data file, invariants file) per layout, written once for the module."""
    d = tmp_path_factory.mktemp("era5land")
    return {
        "new_cds": (write_era5land_new_cds(truth, d / "new.nc"),
                    write_era5land_invariants(truth, d / "inv_new.nc", layout="new_cds")),
        "new_cds_request_order": (write_era5land_new_cds(truth, d / "new_req.nc", lon_order="request"),
                                  write_era5land_invariants(truth, d / "inv_new.nc", layout="new_cds")),
        "old_cds": (write_era5land_old_cds(truth, d / "old.nc"),
                    write_era5land_invariants(truth, d / "inv_old.nc", layout="old_cds")),
        "old_cds_expver": (write_era5land_old_cds(truth, d / "old_expver.nc", expver_months=4),
                           write_era5land_invariants(truth, d / "inv_old.nc", layout="old_cds")),
        "grib": (write_era5land_grib(truth, d / "era5land.grib"),
                 write_era5land_invariants(truth, d / "inv.grib", layout="grib")),
    }


def _tolerance(truth: xr.DataArray) -> float:
    # int16 packing of the old CDS layout: half a quantum of (max − min) / 65000, in canonical units
    # (tp is packed in m/day and then multiplied by ≤ 31 000).
    span = float(np.nanmax(truth) - np.nanmin(truth))
    return max(1e-4, span / 65000 * (31 if truth.name == "tp" else 1))


def assert_canonical(ds: xr.Dataset, truth: xr.Dataset, dom: Domain) -> None:
    np.testing.assert_array_equal(ds["latitude"].values, dom.latitude)
    np.testing.assert_array_equal(ds["longitude"].values, dom.longitude)
    assert ds["longitude"].values.max() > 180  # continuous across the antimeridian, nothing dropped
    assert np.all(np.diff(ds["latitude"].values) < 0)
    np.testing.assert_array_equal(ds["time"].values, truth["time"].values)
    assert ds["time"].dtype == "datetime64[ns]"
    assert (ds["time"].dt.day == 1).all() and (ds["time"].dt.hour == 0).all()
    for name in truth.data_vars:
        got, want = ds[name], truth[name]
        assert got.dtype == np.float32, name
        assert got.attrs["units"] == want.attrs["units"], name
        assert got.dims == want.dims, name
        np.testing.assert_array_equal(np.isnan(got.values), np.isnan(want.values), err_msg=name)
        np.testing.assert_allclose(got.values, want.values, atol=_tolerance(want), rtol=1e-5, err_msg=name)
    assert "source" in ds.attrs


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_round_trips_to_the_canonical_dataset(layout, files, truth, dom):
    data, inv = files[layout]
    with open_era5land(data, dom, invariants=inv) as ds:
        assert_canonical(ds, truth, dom)
        assert str(data) in ds.attrs["source"]
        assert set(ds["elevation"].dims) == {"latitude", "longitude"}


def test_units_are_converted_from_the_native_ones(files, dom):
    raw = xr.open_dataset(files["new_cds"][0], engine="netcdf4")
    try:
        assert raw["t2m"].attrs["units"] == "K" and raw["tp"].attrs["units"] == "m"
        assert raw["longitude"].values.min() < -179  # the file splits the domain at 180° (−180…−179.7 and 179.7…)
        raw = raw.assign_coords(longitude=wrap_longitude(raw["longitude"].values, 179.65)).sortby("longitude")
        with open_era5land(files["new_cds"][0], dom) as ds:
            np.testing.assert_allclose(ds["t2m"].values, raw["t2m"].values - 273.15, atol=1e-4)
            # m of water per day → mm per month, with each month's own length (February 2000: 29 days)
            np.testing.assert_allclose(ds["tp"].sel(time="2000-02-01").values,
                                       raw["tp"].sel(valid_time="2000-02-01").values * 29 * 1000, rtol=1e-5)
            np.testing.assert_allclose(ds["tp"].sel(time="2001-02-01").values,
                                       raw["tp"].sel(valid_time="2001-02-01").values * 28 * 1000, rtol=1e-5)
    finally:
        raw.close()


def test_expver_quirk_prefers_era5_then_era5t(files, truth, dom):
    raw = xr.open_dataset(files["old_cds_expver"][0], engine="netcdf4")
    try:
        assert raw["t2m"].dims == ("time", "expver", "latitude", "longitude")
        assert bool(raw["t2m"].isel(time=-1, expver=0).isnull().all())  # the last months live in expver 5 only
    finally:
        raw.close()
    with open_era5land(files["old_cds_expver"][0], dom) as ds:
        assert "expver" not in ds.dims and "expver" not in ds.coords
        assert ds.sizes["time"] == 36


def test_magic_bytes_win_over_the_suffix(files, truth, dom, tmp_path):
    grib_named_nc = shutil.copy(files["grib"][0], tmp_path / "really_grib.nc")
    nc4_named_grib = shutil.copy(files["new_cds"][0], tmp_path / "really_netcdf4.grib")
    for path in (grib_named_nc, nc4_named_grib):
        with open_era5land(path, dom) as ds:
            np.testing.assert_allclose(ds["t2m"].values, truth["t2m"].values, atol=1e-3)


def test_grib_reading_writes_no_index_next_to_the_data(files, dom):
    folder = files["grib"][0].parent
    before = set(folder.iterdir())
    open_era5land(files["grib"][0], dom).close()
    assert set(folder.iterdir()) == before


@pytest.mark.parametrize("layout", ["new_cds", "old_cds", "grib"])
def test_multi_file_split_by_year(layout, truth, dom, tmp_path):
    by_year = write_era5land_split(truth, tmp_path, by="year", layout=layout)
    assert len(by_year) == 3
    with open_era5land(by_year[::-1], dom) as ds:  # order of the list does not matter
        assert_canonical(ds, truth[list(VARS)], dom)


def test_multi_file_split_by_variable_with_folder_and_glob(truth, dom, tmp_path):
    write_era5land_split(truth, tmp_path / "vars", by="variable", layout="new_cds")
    inv = write_era5land_invariants(truth, tmp_path / "inv.nc")
    with open_era5land(tmp_path / "vars", dom, invariants=inv) as ds:
        assert_canonical(ds, truth, dom)
    with open_era5land(str(tmp_path / "vars" / "era5land_*.nc"), dom) as ds:
        assert set(ds.data_vars) == set(VARS)


def test_data_stay_lazy_until_used(files, dom):
    ds = open_era5land(files["new_cds"][0], dom)
    assert ds["t2m"].chunks is not None
    ds.close()


def test_without_a_domain_the_file_grid_is_used_on_a_continuous_axis(files, dom):
    for layout in ("new_cds", "old_cds", "grib"):
        with open_era5land(files[layout][0]) as ds:
            np.testing.assert_allclose(ds["longitude"].values, dom.longitude)
            np.testing.assert_allclose(ds["latitude"].values, dom.latitude)


def test_variables_selects_a_subset(files, dom):
    with open_era5land(files["new_cds"][0], dom, variables=["t2m", "stl1"]) as ds:
        assert set(ds.data_vars) == {"t2m", "stl1"}


def test_finer_file_is_block_averaged_onto_a_coarser_domain(files, truth, dom):
    coarse = Domain(lat_min=59.6, lat_max=60.0, lon_min=179.8, lon_max=180.2, resolution=0.2)
    with open_era5land(files["new_cds"][0], coarse) as ds:
        assert ds.sizes["latitude"] == 3 and ds.sizes["longitude"] == 3
        # cell (59.8, 180.0): 3 × 3 fine cells, edges weighted ½, corners ¼
        fine = truth["stl1"].isel(time=0).sel(latitude=[59.9, 59.8, 59.7], longitude=[179.9, 180.0, 180.1]).values
        w = np.outer([0.5, 1, 0.5], [0.5, 1, 0.5])
        np.testing.assert_allclose(ds["stl1"].isel(time=0).sel(latitude=59.8, longitude=180.0), (fine * w).sum() / w.sum(),
                                   rtol=1e-5)


def test_partial_coverage_warns_and_fills_nan(files, truth):
    bigger = Domain(lat_min=59.5, lat_max=60.0, lon_min=179.5, lon_max=180.3, resolution=0.1)
    with pytest.warns(UserWarning, match="covers only"):
        ds = open_era5land(files["new_cds"][0], bigger)
    with ds:
        assert bool(ds["t2m"].sel(longitude=179.5).isnull().all())
        np.testing.assert_allclose(ds["t2m"].sel(longitude=180.1).values, truth["t2m"].sel(longitude=180.1).values,
                                   atol=1e-4)


def test_readers_are_small_classes_tried_in_a_fixed_order():
    assert [r.name for r in READERS] == ["netcdf4", "netcdf3", "grib"]
    assert all(hasattr(r, "can_open") and hasattr(r, "open") for r in READERS)


# ---- bad input ----------------------------------------------------------------------------------------
def _raises(path, match, call):
    with pytest.raises(InputDataError, match=match) as info:
        call()
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg, msg
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path, dom):
    p = tmp_path / "nope.nc"
    _raises(p, "file not found", lambda: open_era5land(p, dom))


def test_empty_file(tmp_path, dom):
    p = tmp_path / "empty.nc"
    p.touch()
    _raises(p, "empty", lambda: open_era5land(p, dom))


def test_glob_matching_nothing(tmp_path, dom):
    pattern = str(tmp_path / "*.nc")
    _raises(pattern, "no file matches", lambda: open_era5land(pattern, dom))


def test_missing_variable(files, dom):
    p = files["new_cds"][0]
    _raises(p, "missing variable 'stl4'", lambda: open_era5land(p, dom, variables=["t2m", "stl4"]))


def test_invariants_without_geopotential(truth, dom, tmp_path, files):
    inv = write_era5land_new_cds(truth[["lsm"]].assign_coords(time=truth["time"]), tmp_path / "lsm_only.nc",
                                 invariants_only=True)
    _raises(inv, "missing variable 'z'", lambda: open_era5land(files["new_cds"][0], dom, invariants=inv))


@pytest.mark.parametrize(("units", "match"), [("degF", "unknown temperature units 'degF'"), (None, "no units")])
def test_wrong_or_missing_units(truth, dom, tmp_path, units, match):
    import netCDF4

    p = write_era5land_new_cds(truth, tmp_path / "units.nc")
    with netCDF4.Dataset(p, "a") as nc:
        if units is None:
            nc["t2m"].delncattr("units")
        else:
            nc["t2m"].units = units
    _raises(p, match, lambda: open_era5land(p, dom))


def test_no_overlap_with_the_domain(files):
    far = Domain(lat_min=40.0, lat_max=40.5, lon_min=10.0, lon_max=10.5, resolution=0.1)
    p = files["new_cds"][0]
    _raises(p, "no overlap with the domain", lambda: open_era5land(p, far))


def test_duplicate_months_across_files(truth, dom, tmp_path):
    a = write_era5land_new_cds(truth.isel(time=slice(0, 24)), tmp_path / "a.nc")
    b = write_era5land_new_cds(truth.isel(time=slice(12, 36)), tmp_path / "b.nc")
    _raises(b, "duplicate month 2001-01", lambda: open_era5land([a, b], dom))


def test_gapped_months(truth, dom, tmp_path):
    files = write_era5land_split(truth, tmp_path, by="year")
    files[1].unlink()
    _raises(files[0], r"gap in months: 2001-01 missing \(12 month", lambda: open_era5land(tmp_path, dom))


def test_variables_covering_different_months(truth, dom, tmp_path):
    a = write_era5land_new_cds(truth[["t2m"]], tmp_path / "t2m.nc")
    b = write_era5land_new_cds(truth[["tp"]].isel(time=slice(0, 24)), tmp_path / "tp.nc")
    with pytest.raises(InputDataError, match="all variables need the same months"):
        open_era5land([a, b], dom)


@pytest.mark.parametrize("layout", ["new_cds", "old_cds", "grib"])
def test_truncated_file(files, tmp_path, dom, layout):
    src = files[layout][0]
    p = tmp_path / f"cut_{src.name}"
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 2 + 37])  # mid-message / mid-variable
    _raises(p, "truncated or corrupt", lambda: open_era5land(p, dom))


def test_corrupt_file_with_nc_suffix_and_unknown_format(tmp_path, dom):
    p = tmp_path / "garbage.nc"
    p.write_bytes(b"<html>502 Bad Gateway</html>" * 10)
    _raises(p, "truncated or corrupt", lambda: open_era5land(p, dom))
    q = tmp_path / "garbage.dat"
    q.write_bytes(b"<html>502 Bad Gateway</html>")
    _raises(q, r"no reader matched \(tried: netcdf4, netcdf3, grib\)", lambda: open_era5land(q, dom))


def test_zip_download_is_named_as_such(tmp_path, dom):
    p = tmp_path / "download.nc"
    p.write_bytes(b"PK\x03\x04" + b"\x00" * 60)
    _raises(p, "zip archive", lambda: open_era5land(p, dom))


@pytest.mark.parametrize("eager_bytes", [2**30, 0], ids=["file-read-whole", "file-reduced-lazily"])
def test_all_nan_field(truth, dom, tmp_path, monkeypatch, eager_bytes):
    import geothaw.io.canonical as C

    monkeypatch.setattr(C, "EAGER_CHECK_BYTES", eager_bytes)  # big files take the chunk-by-chunk path
    bad = truth.copy(deep=True)
    bad["stl1"][5] = np.nan
    p = write_era5land_new_cds(bad, tmp_path / "nan.nc")
    _raises(p, r"variable 'stl1' is all-NaN over the domain in 2000-06", lambda: open_era5land(p, dom))


def test_file_on_another_grid(dom, tmp_path):
    quarter = Domain(lat_min=59.5, lat_max=60.0, lon_min=179.75, lon_max=180.25, resolution=0.25)
    p = write_era5land_new_cds(era5land_truth(quarter, months=12, variables=("t2m",)), tmp_path / "q.nc")
    _raises(p, "does not fit the domain's 0.1° grid", lambda: open_era5land(p, dom))
    shifted = Domain(lat_min=59.55, lat_max=59.95, lon_min=179.75, lon_max=180.25, resolution=0.1)
    q = write_era5land_new_cds(era5land_truth(shifted, months=12, variables=("t2m",)), tmp_path / "s.nc")
    _raises(q, "not on the domain's 0.1° grid", lambda: open_era5land(q, dom))


def test_no_warnings_on_the_happy_path(files, dom):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for layout in ("new_cds", "old_cds_expver", "grib"):
            open_era5land(files[layout][0], dom, invariants=files[layout][1]).close()


def test_files_open_with_a_small_chunk_cache_and_the_default_is_restored(truth, dom, tmp_path):
    """75 yearly files stay open at once: netCDF's default 64 MiB cache per variable kept every file's data
    in memory after one read (6.2 GB for the full 0.1° record)."""
    import netCDF4

    from geothaw.io.era5land import NETCDF_CHUNK_CACHE_BYTES, netcdf_chunk_cache

    before = netCDF4.get_chunk_cache()
    p = write_era5land_new_cds(truth, tmp_path / "a.nc")
    with netcdf_chunk_cache(NETCDF_CHUNK_CACHE_BYTES):
        with netCDF4.Dataset(p) as nc:
            assert nc.variables["stl1"].get_var_chunk_cache()[0] == NETCDF_CHUNK_CACHE_BYTES
    assert netCDF4.get_chunk_cache() == before
    open_era5land(p, dom).close()
    assert netCDF4.get_chunk_cache() == before
