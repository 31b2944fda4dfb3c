import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from rio_cogeo.cogeo import cog_validate

from geothaw.domain import Domain
from geothaw.io.writers import albers_grid, write_cog, write_products_netcdf
from geothaw.products import yearly_products


@pytest.fixture(scope="module")
def small_products():
    d = Domain(lat_min=60.0, lat_max=66.0, lon_min=175.0, lon_max=215.0).coarsen(5)
    rng = np.random.default_rng(1)
    n_years = 3
    data = rng.normal(-1, 3, size=(n_years * 12, 4) + d.shape).astype("float32")
    data[..., ~d.land_mask().values] = np.nan
    da = xr.DataArray(data, dims=("time", "depth", "latitude", "longitude"),
                      coords={"time": pd.date_range("2030-01-01", periods=n_years * 12, freq="MS"), **d.coords()})
    return d, yearly_products(da)


def test_cog_is_valid_and_described(tmp_path, small_products):
    d, p = small_products
    magt = p["magt"].isel(depth=0).rename(year="band")
    path = write_cog(magt, tmp_path / "magt.tif", domain=d, band_descriptions=[str(y) for y in p.year.values],
                     units="degC", resolution_m=20000)
    valid, errors, _ = cog_validate(str(path))
    assert valid, errors
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 3338
        assert src.nodata == -9999.0 and src.count == 3
        assert src.descriptions == ("2030", "2031", "2032")
        assert src.tags(1)["units"] == "degC"
        assert src.interleaving.name.upper() == "PIXEL"  # the band-interleaved tiled source does not leak into the COG
        arr = src.read(1, masked=True)
        assert arr.count() > 0 and arr.mask.any()  # sea stays nodata
        # values survive reprojection (nearest neighbour: no new values are invented)
        assert np.isin(np.round(arr.compressed(), 4), np.round(magt.isel(band=0).values, 4)).all()
    assert [f.name for f in tmp_path.iterdir()] == ["magt.tif"]  # no temp files left behind


def test_cog_compressed_on_several_threads_is_the_same_file(tmp_path, small_products):
    d, p = small_products
    magt = p["magt"].isel(depth=0).rename(year="band")
    one = write_cog(magt, tmp_path / "one.tif", domain=d, resolution_m=5000, threads=1)
    two = write_cog(magt, tmp_path / "two.tif", domain=d, resolution_m=5000, threads=2)
    assert cog_validate(str(two))[0]
    assert one.read_bytes() == two.read_bytes()


def test_cog_writer_threads_follow_the_cores_and_the_memory(monkeypatch):
    from geothaw import stages

    monkeypatch.setattr(stages, "available_cpus", lambda: 16)
    assert stages.cog_writer_threads(2.0) == 16                 # small stacks: one writer per core
    assert stages.cog_writer_threads(205.0) == 2                # the full default's 120-year stack: 2 fit in memory
    assert stages.cog_writer_threads(5000.0) == 1               # always at least one
    monkeypatch.setattr(stages, "available_cpus", lambda: 1)
    assert stages.cog_writer_threads(2.0) == 1


def test_cog_writes_leave_no_reference_cycles_and_the_caller_array_alone(tmp_path, small_products):
    """Cycles hold the warped stack until the cyclic collector runs: ≈ 0.36 GB per full-size COG, which piled up
    over a run's 90 files when the warp went through rioxarray's accessor."""
    import gc

    d, p = small_products
    magt = p["magt"].isel(depth=0).rename(year="band")
    before = magt.values.copy()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        write_cog(magt, tmp_path / "a.tif", domain=d, resolution_m=20000)
        write_cog(magt, tmp_path / "b.tif", domain=d, crs=4326)
        gc.collect()
        cyclic = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not cyclic & {"DataArray", "Dataset", "Variable", "ndarray"}, cyclic
    np.testing.assert_array_equal(magt.values, before)  # the nodata fill works on the writer's own copy
    with rasterio.open(tmp_path / "b.tif") as src:  # EPSG:4326 keeps the domain grid: origin at the cell edge
        lon, lat = magt["longitude"].values, magt["latitude"].values
        assert src.transform.c == pytest.approx(lon[0] - (lon[1] - lon[0]) / 2, abs=1e-9)
        assert src.transform.f == pytest.approx(lat[0] + (lat[0] - lat[1]) / 2, abs=1e-9)


def test_albers_grid_spans_the_antimeridian():
    transform, (h, w) = albers_grid(Domain(), 5000)
    assert transform.a == 5000 and transform.c % 5000 == 0
    x_west = transform.c
    assert x_west < -2.2e6  # Attu, west of 180°, is inside the raster


def test_products_netcdf_is_cf_and_georeferenced(tmp_path, small_products):
    _, p = small_products
    path = write_products_netcdf(p, tmp_path / "rcp85.nc", scenario="rcp85", provenance={"model": "gru", "config_hash": "abc"})
    with xr.open_dataset(path) as ds:
        assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["model"] == "gru"
        assert ds["magt"].dims == ("year", "depth", "latitude", "longitude")
        assert ds["magt"].attrs["standard_name"] == "soil_temperature"
        assert ds["magt"].attrs["grid_mapping"] == "spatial_ref"
        assert ds["depth"].attrs["positive"] == "down" and ds["depth_bnds"].shape == (4, 2)
        assert float(ds["depth_bnds"][3, 1]) == pytest.approx(2.89)
    import netCDF4

    with netCDF4.Dataset(path) as nc:  # CF: coordinate variables and bounds carry no _FillValue
        for c in ("latitude", "longitude", "depth", "depth_bnds", "year"):
            assert "_FillValue" not in nc[c].ncattrs(), c
        assert np.isnan(nc["magt"].getncattr("_FillValue"))
    with rasterio.open(f"netcdf:{path}:magt") as src:
        assert src.crs.to_epsg() == 4326


def test_exceedance_geopackage(tmp_path, small_products):
    import geopandas as gpd

    from geothaw.io.writers import exceedance_polygons, write_exceedance_gpkg

    d, p = small_products
    eras = p[["magt"]].mean("year").expand_dims(era=["2071-2100"])
    gdf = exceedance_polygons(eras, domain=d, scenario="rcp85", resolution_m=20000)
    assert len(gdf) > 0 and gdf.crs.to_epsg() == 3338
    assert set(gdf["depth_m"]) <= {0.035, 0.175, 0.64, 1.945}
    # polygon areas add up to the count of exceeding 20-km pixels
    assert np.allclose(gdf["area_km2"] / 400, np.round(gdf["area_km2"] / 400))
    path = write_exceedance_gpkg(gdf, tmp_path / "exc.gpkg")
    back = gpd.read_file(path, layer="exceedance")
    assert len(back) == len(gdf) and back.crs.to_epsg() == 3338
    assert back["area_km2"].sum() == pytest.approx(gdf["area_km2"].sum())


def test_lazy_products_stream_in_slabs_to_the_same_bytes(tmp_path):
    """A dask-backed products dataset is written one longitude slab at a time; the file equals the one written
    from memory and is byte-identical between runs (slabs land in a fixed order)."""
    d = Domain(lat_min=60.0, lat_max=62.0, lon_min=175.0, lon_max=215.0)  # 401 longitudes: four 128-wide slabs
    rng = np.random.default_rng(2)
    data = rng.normal(0.5, 2, size=(12 * 12, 4) + d.shape).astype("float32")
    data[..., ~d.land_mask().values] = np.nan
    da = xr.DataArray(data, dims=("time", "depth", "latitude", "longitude"),
                      coords={"time": pd.date_range("2030-01-01", periods=144, freq="MS"), **d.coords()})
    eager = yearly_products(da)
    lazy = eager.chunk({"longitude": 64})
    kw = dict(scenario="rcp45", provenance={"model": "gru"})
    slabs = []
    a = write_products_netcdf(lazy, tmp_path / "a.nc", on_slab=lambda i, n: slabs.append((i, n)), **kw)
    b = write_products_netcdf(lazy, tmp_path / "b.nc", **kw)
    c = write_products_netcdf(eager, tmp_path / "c.nc", **kw)
    assert slabs == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert a.read_bytes() == b.read_bytes()
    with xr.open_dataset(a) as x, xr.open_dataset(c) as y:
        xr.testing.assert_identical(x, y)
        assert int((x["first_exceedance_year"] > 0).sum()) > 0


def test_scenario_products_write_each_file_as_alone(tmp_path, small_products):
    """Several scenarios computed together land in their own files, each the same as when written alone, and
    one failure leaves none of them behind."""
    from geothaw.io.writers import write_scenario_products

    _, p = small_products
    warmer = p.assign(magt=p["magt"] + 2.0)
    both = xr.concat([p, warmer], dim=pd.Index(["rcp45", "rcp85"], name="scenario")).chunk({"longitude": 4})
    kw = dict(provenance={"model": "gru"})
    paths = write_scenario_products(both, {"rcp45": tmp_path / "a45.nc", "rcp85": tmp_path / "a85.nc"}, **kw)
    for scen, alone in (("rcp45", p), ("rcp85", warmer)):
        ref = write_products_netcdf(alone, tmp_path / f"ref_{scen}.nc", scenario=scen, **kw)
        assert paths[scen].read_bytes() == ref.read_bytes()
    with xr.open_dataset(paths["rcp85"]) as x:
        assert x.attrs["scenario"] == "rcp85" and "scenario" not in x.dims
    with pytest.raises(ValueError, match="paths are for"):
        write_scenario_products(both, {"rcp45": tmp_path / "x.nc"}, **kw)
    broken = both.assign(magt=both["magt"].copy(data=both["magt"].data.map_blocks(_fail_on_last_slab, dtype="float32")))
    with pytest.raises(RuntimeError, match="slab"):
        write_scenario_products(broken, {"rcp45": tmp_path / "b45.nc", "rcp85": tmp_path / "b85.nc"}, **kw)
    assert not (tmp_path / "b45.nc").exists() and not (tmp_path / "b85.nc").exists()
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".")]  # no temp files left behind


def _fail_on_last_slab(block, block_info=None):
    if block_info[None]["array-location"][-1][1] == block_info[None]["shape"][-1]:
        raise RuntimeError("slab failed")
    return block
