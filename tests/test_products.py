import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geothaw.domain import Domain
from geothaw.products import (active_layer_thickness, area_exceeding_zero, cell_area_albers_km2, era_summaries,
                              first_exceedance_year, yearly_products)


def monthly(values_by_year_depth, lat=(65.0,), lon=(212.0,), start=2000):
    """(years, 12, 4) → DataArray (time, depth, latitude, longitude)."""
    v = np.asarray(values_by_year_depth, dtype="float32")
    ny = v.shape[0]
    data = np.broadcast_to(v.reshape(ny * 12, 4)[:, :, None, None], (ny * 12, 4, len(lat), len(lon))).copy()
    time = pd.date_range(f"{start}-01-01", periods=ny * 12, freq="MS")
    return xr.DataArray(data, dims=("time", "depth", "latitude", "longitude"),
                        coords={"time": time, "latitude": list(lat), "longitude": list(lon)})


def test_yearly_stats_and_flags():
    months = np.array([-10, -12, -8, -4, 0, 4, 8, 6, 2, -2, -6, -8], dtype=float)
    layers = np.stack([months, months * 0.5 + 1, months * 0.1 + 0.5, np.full(12, -0.5)], axis=-1)  # (12, 4)
    p = yearly_products(monthly(layers[None]))
    cell = dict(year=2000, latitude=65.0, longitude=212.0)
    assert float(p["magt"].sel(**cell).isel(depth=0)) == pytest.approx(months.mean())
    assert float(p["tmin"].sel(**cell).isel(depth=0)) == -12 and float(p["tmax"].sel(**cell).isel(depth=0)) == 8
    assert list(p["thaws_in_summer"].sel(**cell).values) == [1, 1, 1, 0]
    assert list(p["thawed_year_round"].sel(**cell).values) == [0, 0, 0, 0]
    assert list(p["exceeds_zero"].sel(**cell).values) == [0, 0, 1, 0]  # means -2.5, -0.25, +0.25, -0.5
    assert p["depth"].attrs["positive"] == "down"


@pytest.mark.parametrize(("profile", "alt", "capped"), [
    ([5.0, 2.0, -1.0, -3.0], 0.175 + (2 / 3) * (0.64 - 0.175), 0),
    ([3.0, -1.0, -2.0, -3.0], 0.035 + 0.75 * (0.175 - 0.035), 0),
    ([-0.5, -1.0, -2.0, -3.0], 0.0, 0),
    ([9.0, 6.0, 3.0, 1.0], 2.89, 1),
])
def test_active_layer_thickness(profile, alt, capped):
    tmax = xr.DataArray(np.array(profile)[:, None], dims=("depth", "cell"))
    a, c = active_layer_thickness(tmax)
    assert float(a[0]) == pytest.approx(alt, rel=1e-5)
    assert int(c[0]) == capped


def test_first_exceedance_year_running_mean_must_stay_positive():
    years = np.arange(2000, 2060)
    magt = np.where(years < 2030, -1.0, 1.0)
    magt[45] = -5  # a late cold year dips the running mean below zero again → exceedance only after it recovers
    da = xr.DataArray(magt[:, None], dims=("year", "cell"), coords={"year": years})
    out = float(first_exceedance_year(da)[0])
    # running mean of 2036..2045 = (9 - 5)/10 > 0; 2045 window still > 0; the first year after which it STAYS > 0:
    running = pd.Series(magt, index=years).rolling(10).mean()
    stays = [y for y in years if (running.loc[y:] > 0).all()]
    assert out == stays[0]
    never = xr.DataArray(np.full((60, 1), -1.0), dims=("year", "cell"), coords={"year": years})
    assert np.isnan(float(first_exceedance_year(never)[0]))


def test_albers_cell_area_matches_geodesic_area():
    from pyproj import Geod
    from shapely.geometry import box

    d = Domain().coarsen(10)
    a = cell_area_albers_km2(d.latitude, d.longitude, d.resolution)
    geod = Geod(ellps="GRS80")
    for row in (0, 10, 21):
        lat = d.latitude[row]
        ref, _ = geod.geometry_area_perimeter(box(-150.5, lat - 0.5, -149.5, lat + 0.5).segmentize(0.05))
        assert a[row, 3] == pytest.approx(abs(ref) / 1e6, rel=1e-4)
    assert np.allclose(a[:, 0], a[:, -1])


def test_era_summaries_and_area_table():
    years = 30 * 4 + 10
    rng = np.random.default_rng(0)
    base = rng.normal(size=(years, 12, 4))
    da = monthly(base + np.linspace(-2, 2, years)[:, None, None], lat=(65.0, 64.9), lon=(212.0, 212.1), start=1981)
    p = yearly_products(da)
    eras = era_summaries(p)
    assert list(eras["era"].values) == ["1991-2020", "2021-2040", "2041-2070", "2071-2100"]
    table = area_exceeding_zero(eras, 0.1, "rcp85")
    assert set(table.columns) >= {"scenario", "era", "depth_m", "area_above_0C_km2", "fraction"}
    late = table[(table.era == "2071-2100")]["fraction"]
    early = table[(table.era == "1991-2020")]["fraction"]
    assert (late.values == 1).all() and (early.values == 0).all()


def _two_members() -> list[xr.Dataset]:
    """Yearly products of two GCM members on a 3 × 5 grid, 2080–2099, one cell missing."""
    rng = np.random.default_rng(3)
    members = []
    for shift in (0.0, 0.8):
        data = (rng.normal(-0.5 + shift, 1.0, size=(20 * 12, 4, 3, 5)) + np.linspace(0, 3, 20 * 12)[:, None, None, None])
        data[..., 0, 0] = np.nan
        da = xr.DataArray(data.astype("float32"), dims=("time", "depth", "latitude", "longitude"),
                          coords={"time": pd.date_range("2080-01-01", periods=240, freq="MS"),
                                  "latitude": [62.0, 61.9, 61.8], "longitude": np.arange(5) * 0.1 + 200})
        members.append(yearly_products(da))
    return members


def test_ensembles_written_in_processes_are_the_same_files(tmp_path, monkeypatch):
    from geothaw import stages
    from geothaw.io.writers import write_products_netcdf

    paths = [write_products_netcdf(m, tmp_path / f"member{k}.nc", scenario="rcp85", provenance={})
             for k, m in enumerate(_two_members())]
    monkeypatch.setattr(stages, "ENSEMBLE_PROCESS_BYTES", 0)  # these small members would stay in this process

    def jobs(tag):
        return [{"member_paths": paths, "target": tmp_path / f"{tag}_{scen}.nc", "scenario": scen, "provenance": {}}
                for scen in ("rcp45", "rcp85")]

    stages.write_ensembles(jobs("here"), workers=1)
    stages.write_ensembles(jobs("spawned"), workers=2)
    for scen in ("rcp45", "rcp85"):
        assert (tmp_path / f"here_{scen}.nc").read_bytes() == (tmp_path / f"spawned_{scen}.nc").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("spawned")) == ["spawned_rcp45.nc",
                                                                                           "spawned_rcp85.nc"]


def test_ensemble_of_lazy_members_equals_the_eager_ensemble():
    """The ensemble is computed lazily from members opened in slabs; it must equal the in-memory result,
    including first_exceedance_year (recomputed from the ensemble-mean MAGT)."""
    from geothaw.stages import ensemble_products

    members = _two_members()
    eager = ensemble_products(members)
    lazy = ensemble_products([m.chunk({"longitude": 2}) for m in members])
    assert lazy["first_exceedance_year"].chunks is not None
    lazy = lazy.compute()
    # dask's std sums in another order: the spread agrees to float32 rounding, everything else exactly
    xr.testing.assert_allclose(lazy["magt_spread"], eager["magt_spread"], rtol=1e-5, atol=1e-6)
    xr.testing.assert_identical(lazy.drop_vars("magt_spread"), eager.drop_vars("magt_spread"))
    assert np.isnan(eager["first_exceedance_year"][0, 0, 0]) and np.isfinite(eager["first_exceedance_year"]).any()
    for v in ("exceeds_zero", "thawed_year_round", "thaws_in_summer"):  # flags: no temperature units, -1 nodata
        assert "units" not in eager[v].attrs and eager[v].attrs["_FillValue"] == -1, v
        assert int(eager[v][0, 0, 0, 0]) == -1, v
    assert eager["magt"].attrs["units"] == "degC"
