"""The synthetic Alaska: geography, climate anchors, file layouts, determinism, physics plausibility.

One small world (1° grid, 2000–2008 record, scenarios to 2012) is built once per module; the GCM warming
test writes one GCM to 2100 on its own coarse grid.
"""

from __future__ import annotations

import json
import time

import netCDF4
import numpy as np
import pytest
import xarray as xr

from geothaw.config import validate_config
from geothaw.domain import Domain
from geothaw.errors import ConfigError
from geothaw.synthetic import build_world, world_paths
from geothaw.synthetic import climate as C
from geothaw.synthetic.gcm import build_gcm

START, END, PROJ = 2000, 2008, 2012


def _cfg(**synthetic) -> object:
    syn = {"coarsen": 10, "spinup_years": 4, "dt_days": 2.0, **synthetic}
    return validate_config({"seed": 7, "data": {"synthetic": syn},
                            "period": {"start_year": START, "end_year": END, "projection_end_year": PROJ}})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cfg = _cfg()
    out = tmp_path_factory.mktemp("world")
    summary = build_world(cfg, out, block_cells=150)
    return cfg, out, summary


def _cell(statics: xr.Dataset, lon_w: float, lat: float) -> tuple[int, int]:
    """Nearest land cell to a station (the station's own cell may be sea on a coarse grid)."""
    la = statics["latitude"].values[:, None]
    lo = statics["longitude"].values[None, :]
    d = (la - lat) ** 2 + ((lo - (360.0 - lon_w)) * np.cos(np.deg2rad(lat))) ** 2
    d = np.where(statics["land"].values == 1, d, np.inf)
    return np.unravel_index(np.argmin(d), d.shape)


def _record(out) -> xr.Dataset:
    return xr.open_zarr(out / "truth" / "record.zarr", consolidated=False)


# ---- statics -------------------------------------------------------------------------------------------
def test_statics_geography(world):
    _, out, _ = world
    st = xr.open_dataset(out / "statics.nc")
    elev, cls = st["elevation"], st["soil_class"]
    pick = lambda lon_w, lat: elev.sel(latitude=lat, longitude=360 - lon_w, method="nearest").item()  # noqa: E731
    assert pick(151.0, 63.07) > 3000            # Denali massif
    assert pick(150.0, 68.0) > 900              # central Brooks Range
    assert pick(141.0, 60.3) > 1000             # St Elias (coast cell, part sea at 1°)
    assert pick(153.0, 70.3) < 150              # Arctic coastal plain
    i, j = _cell(st, 163.5, 61.5)               # Yukon–Kuskokwim delta
    assert elev.values[i, j] < 150
    land = st["land"].values == 1
    assert set(np.unique(cls.values[land])) <= {1, 2, 3, 4, 5} and (cls.values[~land] == 0).all()
    north = land & (st["latitude"].values[:, None] >= 70) & (st["longitude"].values[None, :] > 195)
    assert np.mean(cls.values[north] == 4) > 0.5   # North Slope coastal plain: organic/peat
    assert cls.values[i, j] in (2, 4)               # delta: organic lowland or alluvium
    inv = xr.open_dataset(out / "era5land" / "era5land_invariants.nc")
    assert set(inv.data_vars) == {"lsm", "z", "slt", "cvh"} and inv.sizes["valid_time"] == 1
    np.testing.assert_allclose(inv["z"].values[0], st["elevation"].values * 9.80665, rtol=1e-5)
    assert set(np.unique(inv["slt"].values[0][land])) <= {1, 2, 3, 4, 6}
    # high-vegetation cover is the observable side of the forest n-factor: boreal interior forested, North Slope not
    cvh, forest = inv["cvh"].values[0], st["n_factor_thaw"].values < 1.0
    assert (cvh[land & forest] >= 0.5).all() and (cvh[land & ~forest] <= 0.1).all() and (cvh[~land] == 0).all()
    assert forest[_cell(st, 147.7, 64.8)] and not forest[_cell(st, 153.0, 70.3)]  # Fairbanks / coastal plain


# ---- climate ----------------------------------------------------------------------------------------------
def test_climate_anchors(world):
    _, out, _ = world
    st = xr.open_dataset(out / "statics.nc")
    rec = _record(out)
    clim = rec[["t2m", "tp"]].groupby("time.month").mean().load()
    res = {}
    for name, (lon_w, lat) in {"barrow": (156.8, 71.3), "fairbanks": (147.7, 64.8), "juneau": (134.4, 58.3),
                               "yakutat": (139.7, 59.5), "deadhorse": (148.5, 70.2)}.items():
        i, j = _cell(st, lon_w, lat)
        t = clim["t2m"].values[:, i, j]
        res[name] = (t.mean(), (t.max() - t.min()) / 2, clim["tp"].values[:, i, j].sum())
    assert res["barrow"][0] < res["fairbanks"][0] < res["juneau"][0]
    assert -14.0 < res["barrow"][0] < -8.0 and -6.0 < res["fairbanks"][0] < 0.5 and 2.0 < res["juneau"][0] < 9.0
    assert res["fairbanks"][1] > 16.0 and res["juneau"][1] < 12.0      # interior vs coastal half-range
    assert res["yakutat"][2] > 2000 and res["deadhorse"][2] < 300       # SE coast ≫ North Slope
    assert res["yakutat"][2] > 8 * res["deadhorse"][2]


def test_forced_warming_shape_and_scenarios():
    lat = np.array([71.3, 64.8, 58.3])
    params = C.climate_parameters(lat, np.array([203.2, 212.3, 225.6]), np.array([10.0, 150.0, 50.0]),
                                  np.array([0.0, 0.0, 0.6]), np.array([0.9, 0.0, 0.0]))
    zero = np.zeros((1, 1))
    hist = C.MonthAxis(1950, 2024)
    t_modes, p_modes = np.zeros((3, 1)), np.zeros((3, 1))
    t, _ = C.generate_forcing(params, hist, C.global_warming_monthly("rcp45", hist), t_modes, p_modes,
                              np.zeros((1, hist.n)), np.zeros((1, hist.n)))
    assert zero.size == 1
    djf = lambda a, ys: a[:, np.isin(hist.month, [12, 1, 2]) & np.isin(hist.year, ys)].mean(1)  # noqa: E731
    jja = lambda a, ys: a[:, np.isin(hist.month, [6, 7, 8]) & np.isin(hist.year, ys)].mean(1)  # noqa: E731
    early, late = range(1950, 1960), range(2015, 2025)
    winter = djf(t, late) - djf(t, early)
    summer = jja(t, late) - jja(t, early)
    assert np.all(winter > summer)
    assert np.all((winter > 1.8) & (winter < 3.8)) and np.all((summer > 0.4) & (summer < 1.6))
    fut = C.MonthAxis(1986, 2100)
    warm = {}
    for s in ("rcp45", "rcp85"):
        g = C.global_warming_monthly(s, fut)
        d = params["warm_amp"][:, None] * (g * (1 + C.WARMING_SEASONALITY * np.cos(2 * np.pi * (fut.month - 1) / 12)))
        warm[s] = d[:, fut.year >= 2081].mean() - d[:, fut.year <= 2005].mean()
    assert 2.8 < warm["rcp45"] < 4.2 and 5.8 < warm["rcp85"] < 8.2 and warm["rcp85"] > 1.6 * warm["rcp45"]


# ---- files ----------------------------------------------------------------------------------------------
def test_era5_files_new_cds_layout(world):
    cfg, out, _ = world
    paths = world_paths(cfg, out)
    assert [p.name for p in paths.era5land] == [f"era5land_monthly_{y}.nc" for y in range(START, END + 1)]
    assert all(p.exists() for p in paths.era5land)
    f = paths.era5land[3]
    with netCDF4.Dataset(f) as nc:
        assert nc.data_model == "NETCDF4"
        assert tuple(nc["t2m"].dimensions) == ("valid_time", "latitude", "longitude")
        assert nc["valid_time"].units == "seconds since 1970-01-01" and nc["valid_time"].dtype == np.int64
        assert list(nc["expver"][:]) == ["0001"] * 12
        assert nc["number"][:] == 0 and nc["number"].ndim == 0
        assert nc["t2m"].units == "K" and nc["t2m"].GRIB_shortName == "2t" and nc["tp"].units == "m"
        assert nc["t2m"].dtype == np.float32 and np.isnan(nc["t2m"]._FillValue)
    ds = xr.open_dataset(f)
    lat, lon = ds["latitude"].values, ds["longitude"].values
    assert np.all(np.diff(lat) < 0)
    assert lon.min() >= -180 and lon.max() <= 180 and lon[0] == 172.0 and lon[-1] == -129.0
    assert set(ds.data_vars) == {"t2m", "tp", "sd", "sde", "rsn", "stl1", "stl2", "stl3", "stl4",
                                 "swvl1", "swvl2", "swvl3", "swvl4"}
    st = xr.open_dataset(out / "statics.nc")
    land = st["land"].values == 1
    t2m = ds["t2m"].values
    assert np.isnan(t2m[:, ~land]).all() and np.isfinite(t2m[:, land]).all()
    assert 200 < np.nanmin(t2m) and np.nanmax(t2m) < 310 and 230 < np.nanmin(ds["stl4"].values)
    # tp is m per day: monthly total (mm) = tp × days × 1000
    rec = _record(out).isel(time=slice(36, 48))
    days = ds["valid_time"].dt.days_in_month.values[:, None, None]
    np.testing.assert_allclose(ds["tp"].values * days * 1000, rec["tp"].values, rtol=1e-5)
    np.testing.assert_allclose(ds["stl2"].values - 273.15, rec["stl2"].values, atol=1e-4)


def test_gcm_files_esgf_style(world):
    cfg, out, _ = world
    paths = world_paths(cfg, out)
    calendars = {}
    for gcm, exps in paths.cmip5.items():
        assert set(exps) == {"historical", "rcp45", "rcp85"}
        for exp, files in exps.items():
            assert all(f.exists() for f in files), files
            assert files[0].name == f"tas_Amon_{gcm}_{exp}_r1i1p1_{START if exp == 'historical' else 2006}01-" \
                                    f"{2005 if exp == 'historical' else PROJ}12.nc"
            with netCDF4.Dataset(files[0]) as nc:
                assert nc.model_id == gcm and nc.experiment_id == exp and nc.project_id == "CMIP5"
                assert nc["tas"].units == "K" and nc["time"].bounds == "time_bnds"
                calendars[gcm] = nc["time"].calendar
                lat, lon = nc["lat"][:], nc["lon"][:]
                assert np.all(np.diff(lat) > 0) and lon.min() >= 0 and lon.max() < 360
                assert 210 < nc["tas"][:].min() and nc["tas"][:].max() < 305
            with netCDF4.Dataset(files[1]) as nc:
                assert nc["pr"].units == "kg m-2 s-1" and 0 <= nc["pr"][:].min() and nc["pr"][:].max() < 1.5e-3
            assert files[2].name.startswith(f"snw_LImon_{gcm}_")
    assert calendars == {"SYN-ESM-A": "noleap", "SYN-ESM-B": "360_day"}
    ds = xr.open_dataset(paths.cmip5["SYN-ESM-B"]["rcp45"][0], decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert ds["time"].values[0].calendar == "360_day" and ds.sizes["time"] == 12 * (PROJ - 2005)


def test_gcm_warming_by_2100(tmp_path):
    dom = Domain().coarsen(10)
    warm = {}
    for gcm in ("SYN-ESM-A", "SYN-ESM-B"):
        files = build_gcm(gcm, dom, 7, 1986, 2100, ["rcp45", "rcp85"], tmp_path)
        land = xr.open_dataset(tmp_path / gcm / f"sftlf_fx_{gcm}_historical_r0i0p0.nc")["sftlf"] >= 50
        base = xr.open_dataset(files["historical"][0], decode_times=False)["tas"].where(land).mean().item()
        for s in ("rcp45", "rcp85"):
            ds = xr.open_dataset(files[s][0], decode_times=False)
            warm[gcm, s] = ds["tas"].isel(time=slice(-240, None)).where(land).mean().item() - base
    for gcm in ("SYN-ESM-A", "SYN-ESM-B"):
        assert 2.6 < warm[gcm, "rcp45"] < 4.6, warm
        assert 5.5 < warm[gcm, "rcp85"] < 8.8, warm
        assert warm[gcm, "rcp85"] > warm[gcm, "rcp45"] + 2.0


# ---- truth stores, determinism, resume -----------------------------------------------------------------------
def test_scenario_truth_consistent_with_record(world):
    cfg, out, _ = world
    rec = _record(out)
    r45 = xr.open_zarr(out / "truth" / "rcp45.zarr", consolidated=False)
    r85 = xr.open_zarr(out / "truth" / "rcp85.zarr", consolidated=False)
    assert str(r45["time"].values[0])[:10] == "2006-01-01" and r45.sizes["time"] == 12 * (PROJ - 2005)
    assert r45["t2m"].attrs["units"] == "degC" and r45["tp"].attrs["units"] == "mm month-1"
    overlap = slice("2006-01-01", f"{END}-12-01")
    for v in ("t2m", "tp", "sde", "stl1", "stl4"):
        np.testing.assert_array_equal(rec[v].sel(time=overlap).values, r45[v].sel(time=overlap).values)
    # same weather, different forcing: rcp85 is warmer than rcp45 by 2012 but only slightly
    d = float((r85["t2m"] - r45["t2m"]).isel(time=slice(-12, None)).mean())
    assert 0.0 < d < 0.6


@pytest.fixture(scope="module")
def twin_worlds(tmp_path_factory):
    """The same tiny config built with different block sizes, in 2 processes and in 1, plus a different seed."""
    cfg = validate_config({"seed": 11, "data": {"synthetic": {"coarsen": 20, "spinup_years": 1, "dt_days": 2.0,
                                                               "gcms": ["SYN-ESM-A"], "workers": 2}},
                           "period": {"start_year": 2004, "end_year": 2006, "projection_end_year": 2007}})
    root = tmp_path_factory.mktemp("twins")
    build_world(cfg, root / "a", block_cells=40)
    build_world(cfg, root / "b", block_cells=10_000)
    serial = cfg.model_copy(update={"data": cfg.data.model_copy(
        update={"synthetic": cfg.data.synthetic.model_copy(update={"workers": 1})})})
    build_world(serial, root / "a2", block_cells=40)
    other = validate_config({**cfg.model_dump(mode="json"), "seed": 12})
    build_world(other, root / "c", block_cells=40)
    return cfg, root


def test_deterministic_for_a_seed_in_one_process_or_two(twin_worlds):
    cfg, root = twin_worlds
    for v in ("t2m", "tp", "sd", "stl1", "stl4", "swvl3", "thaw_depth"):
        np.testing.assert_array_equal(_record(root / "a")[v].values, _record(root / "a2")[v].values)
    fa = xr.open_dataset(world_paths(cfg, root / "a").era5land[1])
    fb = xr.open_dataset(world_paths(cfg, root / "a2").era5land[1])
    xr.testing.assert_identical(fa, fb)
    ga = world_paths(cfg, root / "a").cmip5["SYN-ESM-A"]["rcp85"][0]
    gb = world_paths(cfg, root / "a2").cmip5["SYN-ESM-A"]["rcp85"][0]
    np.testing.assert_array_equal(xr.open_dataset(ga)["tas"].values, xr.open_dataset(gb)["tas"].values)
    assert not np.array_equal(_record(root / "c")["t2m"].values, _record(root / "a")["t2m"].values)


def test_era5_files_from_two_processes_are_the_same_bytes(twin_worlds, tmp_path, monkeypatch):
    import dataclasses

    from geothaw.synthetic import world as world_module

    cfg, root = twin_worlds
    serial = world_paths(cfg, root / "a2")  # its files were written in one process, all years from one read
    paths = dataclasses.replace(serial, era5land=[tmp_path / p.name for p in serial.era5land])
    monkeypatch.setattr(world_module, "ERA5_READ_BYTES", 1)  # one year per read: three groups for two workers
    progress = []
    world_module._write_era5_files(paths, world_module.world_domain(cfg), lambda _, done, total: progress.append(done),
                                   workers=2)
    assert [p.read_bytes() for p in paths.era5land] == [p.read_bytes() for p in serial.era5land]
    assert progress[0] == 0 and progress[-1] == len(paths.era5land) == 3


def test_forcing_independent_of_block_size(twin_worlds):
    _, root = twin_worlds
    for v in ("t2m", "tp", "sd", "sde", "rsn"):
        np.testing.assert_array_equal(_record(root / "a")[v].values, _record(root / "b")[v].values)


def test_soil_independent_of_block_size(twin_worlds):
    # A block whose soils all have b = -1/2 inverts the frozen branch by a cubic, a mixed block by a
    # power-law Newton: both converge to ~1e-9 K, so grouping may move the last bits, nothing more.
    _, root = twin_worlds
    for v in ("stl1", "stl4", "thaw_depth"):
        np.testing.assert_allclose(_record(root / "a")[v].values, _record(root / "b")[v].values, rtol=0, atol=1e-6)


def test_truth_lattice_keeps_the_record_and_the_lattice_truth(twin_worlds, tmp_path):
    """With ``truth_stride`` the scenarios are solved on every n-th row and column only: the record and the
    truth on the lattice are what the full world holds, the rest of the scenario stores is NaN."""
    from geothaw.config import _deep_merge as _merge
    from geothaw.synthetic.world import world_hash

    cfg, root = twin_worlds
    lattice_cfg = validate_config(_merge(cfg.model_dump(mode="json"), {"data": {"synthetic": {"truth_stride": 2}},
                                                                      "projection": {"skill_stride": 4}}))
    assert world_hash(lattice_cfg) != world_hash(cfg)
    build_world(lattice_cfg, tmp_path, block_cells=40)
    full, thin = root / "a", tmp_path
    for v in ("t2m", "stl1", "stl4", "swvl2", "thaw_depth"):
        np.testing.assert_allclose(_record(full)[v].values, _record(thin)[v].values, rtol=0, atol=1e-6)
    land = xr.open_dataset(full / "statics.nc")["land"].values == 1
    on = np.zeros_like(land)
    on[::2, ::2] = True
    assert (land & on).any() and (land & ~on).any()
    for scen in ("rcp45", "rcp85"):
        a = xr.open_zarr(full / "truth" / f"{scen}.zarr", consolidated=False)
        b = xr.open_zarr(thin / "truth" / f"{scen}.zarr", consolidated=False)
        for v in ("t2m", "stl1", "stl4", "thaw_depth"):
            av, bv = a[v].values, b[v].values
            np.testing.assert_allclose(bv[:, land & on], av[:, land & on], rtol=0, atol=1e-6)
            assert np.isnan(bv[:, ~on]).all()
            assert np.isfinite(av[:, land & on]).all()


def test_skill_stride_must_sit_on_the_truth_lattice():
    with pytest.raises(ValueError, match="multiple of data.synthetic.truth_stride"):
        validate_config({"data": {"synthetic": {"truth_stride": 2}}, "projection": {"skill_stride": 3}})
    validate_config({"data": {"synthetic": {"truth_stride": 3}}, "projection": {"skill_stride": 6}})


def test_rerun_is_noop_and_config_change_refused(world):
    cfg, out, summary = world
    f = world_paths(cfg, out).era5land[0]
    mtime = f.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = build_world(cfg, out)
    assert time.perf_counter() - t0 < 2.0 and again == summary and f.stat().st_mtime_ns == mtime
    assert json.loads((out / "world.json").read_text())["land_cells"] == summary["land_cells"]
    with pytest.raises(ConfigError, match="different config"):
        build_world(validate_config({**cfg.model_dump(mode="json"), "seed": 8}), out)


# ---- physics plausibility ----------------------------------------------------------------------------------
def test_permafrost_pattern_and_active_layer(world):
    _, out, _ = world
    st = xr.open_dataset(out / "statics.nc")
    rec = _record(out).load()
    lat = st["latitude"].values[:, None] * np.ones(st["land"].shape)
    lon = st["longitude"].values[None, :] * np.ones(st["land"].shape)
    land = st["land"].values == 1
    magt4 = rec["stl4"].mean("time").values
    alt = rec["thaw_depth"].groupby("time.year").max().mean("year").values
    north = land & (lat >= 69) & (lon > 190) & (lon < 219)
    interior = land & (lat >= 63) & (lat < 67) & (lon > 200) & (lon < 219)
    south = land & (lat < 61) & (lon > 205) & (st["m_open"].values > 0.3) & (st["elevation"].values < 500)
    pf = lambda m: np.mean(magt4[m] < 0)  # noqa: E731
    assert pf(north) > 0.8, pf(north)
    assert pf(south) < 0.2, pf(south)
    assert pf(north) > pf(interior) > pf(south)
    alt_pf = alt[north & (magt4 < 0)]
    assert 0.2 < np.median(alt_pf) < 1.2, np.median(alt_pf)
    # the annual wave damps with depth
    clim = rec[["t2m", "stl1", "stl2", "stl3", "stl4"]].groupby("time.month").mean()
    amp = {v: float(((clim[v].max("month") - clim[v].min("month")) / 2).where(land).mean()) for v in clim.data_vars}
    assert amp["t2m"] > amp["stl1"] > amp["stl2"] > amp["stl3"] > amp["stl4"] > 0.3
    # winter ground is warmer than the air above it (snow insulation)
    winter = rec.sel(time=rec["time.month"].isin([12, 1, 2]))
    assert float((winter["stl1"] - winter["t2m"]).where(land).mean()) > 3.0


def test_interior_snow_realistic(world):
    _, out, _ = world
    st = xr.open_dataset(out / "statics.nc")
    rec = _record(out)
    i, j = _cell(st, 147.7, 64.8)
    peak = float(rec["sde"][:, i, j].groupby("time.year").max().mean())
    assert 0.3 < peak < 1.0, peak
    i, j = _cell(st, 156.8, 71.3)
    rho = float(rec["rsn"][:, i, j].sel(time=rec["time.month"] == 3).mean())
    assert rho > 250.0, rho


def test_plausibility_report_matches_the_pattern(world):
    from geothaw.synthetic.plausibility import world_plausibility

    _, out, _ = world
    rep = world_plausibility(out, years=10)
    reg = rep["regions"]
    assert reg["north_slope"]["permafrost_fraction"] > 0.8
    assert reg["south_coast"]["permafrost_fraction"] < 0.2
    assert 0.2 < reg["north_slope"]["alt_median_m_where_permafrost"] < 1.2
    hr = reg["north_slope"]["annual_half_range_c"]
    assert hr["t2m"] > hr["stl1"] > hr["stl4"] > 0
    assert 0.0 <= rep["land_permafrost_fraction"] <= 1.0


# ---- spin-up --------------------------------------------------------------------------------------------
def test_default_spinup_is_long_enough_and_ten_years_is_not(world):
    """The deep column remembers its start for decades: the default spin-up must land the record within
    0.1 °C (cell mean, deepest layer) of one twice as long; the former 10-year default was ≈ 0.3 °C cold."""
    from geothaw.config import load_config
    from geothaw.synthetic import world as W

    cfg, out, _ = world
    statics = xr.open_dataset(out / "statics.nc").load()
    ctx = W.make_context(cfg, W.world_domain(cfg), statics)
    ii, jj = np.nonzero(statics["land"].values == 1)
    step = max(1, ii.size // 16)
    ii, jj = ii[::step], jj[::step]
    default_years = load_config().data.synthetic.spinup_years

    def stl4_yearly(years: int) -> np.ndarray:
        ctx.spinup_years = years
        return W.simulate_cells(ctx, ii, jj)["record"]["stl4"].reshape(ii.size, -1, 12).mean(axis=2)

    ref = stl4_yearly(2 * default_years)
    offset_default = np.abs((stl4_yearly(default_years) - ref).mean(axis=0)).max()
    offset_ten = np.abs((stl4_yearly(10) - ref).mean(axis=0)).max()
    assert offset_default < 0.1, offset_default
    assert offset_ten > 0.15, offset_ten
