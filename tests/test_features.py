"""Features: window alignment, targets, normalisation fitted on training data only, scenario signals.

Also home of :func:`make_toy_dataset`, a tiny learnable canonical dataset the model tests reuse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geothaw.config import RunConfig
from geothaw.errors import InputDataError
from geothaw.features import (DYNAMIC, FeatureSpec, make_inputs, predictions_to_dataset, prepare, sample_years,
                              scenario_signal)

DEPTH_RATES = (0.85, 0.55, 0.3, 0.12)  # monthly relaxation towards the layer above: deeper = slower


def make_toy_dataset(n_lat: int = 6, n_lon: int = 8, start: int = 1980, years: int = 18, seed: int = 0,
                     trend: float = 0.05) -> xr.Dataset:
    """A tiny canonical dataset whose soil temperature is a learnable function of the forcing.

    Air T: cell-dependent seasonal sinusoid + a trend + regional and local interannual anomalies + noise.
    Soil T: the surface is air T with winter damping (snow-insulation-like asymmetry) and a warm offset;
    each layer relaxes towards the one above (damped, lagged). One sea cell is NaN everywhere.
    """
    rng = np.random.default_rng(seed)
    lat = 66.0 - 0.5 * np.arange(n_lat)
    lon = 200.0 + 0.5 * np.arange(n_lon)
    nm = years * 12
    time = pd.date_range(f"{start}-01-01", periods=nm, freq="MS")
    month = np.arange(nm) % 12
    yr = np.arange(nm) // 12
    mean = (-4.0 + 0.8 * (lat[:, None] - 66.0) + 0.1 * (lon[None, :] - 200.0))[..., None]  # (lat, lon, 1)
    amp = (14.0 + 0.6 * (lat[:, None] - 63.0) + 0 * lon[None, :])[..., None]
    regional = rng.normal(0, 1.3, years)[yr]
    local = rng.normal(0, 0.6, (n_lat, n_lon, years))[..., yr]
    t2m = (mean - amp * np.cos(2 * np.pi * (month + 0.5) / 12) + trend * yr + regional + local
           + rng.normal(0, 0.7, (n_lat, n_lon, nm)))
    tp = 25 + 20 * rng.random((n_lat, n_lon, nm)) + 15 * (month >= 6)
    surf = np.where(t2m < 0, 0.45 * t2m, 0.9 * t2m) + 1.5
    layers = []
    above = surf
    for k in DEPTH_RATES:
        s = np.empty_like(above)
        s[..., 0] = above[..., :12].mean(-1)
        for m in range(1, nm):  # test factory only: sequential in time, vectorised over cells
            s[..., m] = s[..., m - 1] + k * (above[..., m] - s[..., m - 1])
        layers.append(s)
        above = s
    tr = lambda a: np.moveaxis(a, -1, 0).astype("float32")  # noqa: E731 - (lat, lon, t) → (t, lat, lon)
    dims = ("time", "latitude", "longitude")
    ds = xr.Dataset(
        {"t2m": (dims, tr(t2m), {"units": "degC"}), "tp": (dims, tr(tp), {"units": "mm month-1"}),
         **{f"stl{i + 1}": (dims, tr(layers[i]), {"units": "degC"}) for i in range(4)},
         "elevation": (("latitude", "longitude"), rng.uniform(0, 800, (n_lat, n_lon)).astype("float32")),
         "slt": (("latitude", "longitude"), rng.integers(1, 8, (n_lat, n_lon)).astype("float32")),
         **{f"swvl{i}": (("latitude", "longitude"), rng.uniform(0.1, 0.5, (n_lat, n_lon)).astype("float32"))
            for i in range(1, 5)}},
        coords={"time": time, "latitude": lat, "longitude": lon},
    )
    for v in ("t2m", "tp", "stl1", "stl2", "stl3", "stl4", "elevation", "slt", "swvl1", "swvl2", "swvl3", "swvl4"):
        ds[v][..., 0, 0] = np.nan  # a sea cell
    return ds


def tiny_config(**training) -> RunConfig:
    return RunConfig.model_validate({
        "seed": 7,
        "domain": {"band_edges": [62.0, 64.0, 65.0, 67.0]},
        "features": {"scenario_signal": "warming_anomaly", "anomaly_years": 5},
        "training": {"epochs": 30, "batch_size": 32, "hidden_size": 32, "patience": 6, "learning_rate": 5e-3,
                     "max_train_cells": 500, "val_fraction": 0.2, **training},
        "evaluation": {"holdout_years": 3, "block_size_deg": 1.0, "holdout_block_fraction": 0.25},
    })


@pytest.fixture(scope="module")
def toy() -> xr.Dataset:
    return make_toy_dataset()


def _spec(ds, signal="warming_anomaly", **kw) -> FeatureSpec:
    cfg = tiny_config()
    spec = FeatureSpec.from_dataset(ds, cfg.features, band_edges=cfg.domain.band_edges)
    spec.scenario_signal = signal
    for k, v in kw.items():
        setattr(spec, k, v)
    return spec


def test_window_ends_in_december_and_targets_are_that_year(toy):
    spec = _spec(toy)
    ds = prepare(toy)
    raw = make_inputs(ds, [1985, 1990], spec, cells=(np.array([2, 3]), np.array([4, 1])), with_target=True,
                      normalize=False)
    assert raw["dynamic"].shape == (4, 24, len(DYNAMIC))
    assert raw["target"].shape == (4, 12, 4)
    i_t2m = spec.dynamic.index("t2m")
    for n in range(4):
        r, c, y = raw["row"][n], raw["col"][n], raw["year"][n]
        t2m = ds["t2m"].isel(latitude=r, longitude=c).sel(time=slice(f"{y - 1}-01", f"{y}-12")).values
        np.testing.assert_allclose(raw["dynamic"][n, :, i_t2m], t2m)
        stl = np.stack([ds[f"stl{k}"].isel(latitude=r, longitude=c).sel(time=str(y)).values for k in range(1, 5)], -1)
        np.testing.assert_allclose(raw["target"][n], stl)
    # The month encoding of the last step is December.
    i_cos, i_sin = spec.dynamic.index("month_cos"), spec.dynamic.index("month_sin")
    np.testing.assert_allclose(raw["dynamic"][:, -1, i_cos], np.cos(2 * np.pi * 11 / 12), atol=1e-6)
    np.testing.assert_allclose(raw["dynamic"][:, -1, i_sin], np.sin(2 * np.pi * 11 / 12), atol=1e-6)


def test_sample_years_need_a_full_window(toy):
    years = sample_years(toy, 24)
    assert years[0] == 1981 and years[-1] == 1997
    with pytest.raises(InputDataError, match="need forcing"):
        make_inputs(toy, [1980], _spec(toy), normalize=False)


def test_sea_cells_are_dropped_and_inverse_restores_layout(toy):
    spec = _spec(toy)
    raw = make_inputs(toy, [1990, 1991], spec, with_target=True, normalize=False)
    assert len(raw["year"]) == 2 * (toy.sizes["latitude"] * toy.sizes["longitude"] - 1)
    out = predictions_to_dataset(raw["target"], raw, toy)
    assert out["stl3"].shape == (24, toy.sizes["latitude"], toy.sizes["longitude"])
    assert np.isnan(out["stl1"].values[:, 0, 0]).all()
    xr.testing.assert_allclose(out["stl3"], toy["stl3"].sel(time=slice("1990", "1991")).drop_attrs(), atol=1e-6)


def test_normalisation_uses_training_data_only(toy):
    spec_a, spec_b = _spec(toy), _spec(toy)
    train_years = np.arange(1982, 1994)
    spec_a.fit_normalization(make_inputs(toy, train_years, spec_a, with_target=True, normalize=False))
    # Change the hold-out years drastically: statistics fitted on the training years must not move.
    changed = toy.copy(deep=True)
    late = changed["time"].dt.year >= 1995
    for v in ("stl1", "stl2", "stl3", "stl4"):
        changed[v] = changed[v].where(~late, changed[v] + 50.0)
    spec_b.fit_normalization(make_inputs(changed, train_years, spec_b, with_target=True, normalize=False))
    assert spec_a.norm == spec_b.norm
    # JSON round trip keeps everything.
    again = FeatureSpec.from_dict(spec_a.to_dict())
    assert again == spec_a
    batch = again.normalize(make_inputs(toy, train_years, again, with_target=True, normalize=False))
    assert abs(batch["target"].mean()) < 1e-3 and abs(batch["dynamic"][..., 0].std() - 1) < 1e-2


def test_warming_anomaly_tracks_warming_and_uses_baseline(toy):
    spec = _spec(toy, anomaly_baseline=(1980, 1989), anomaly_years=5)
    t2m = np.ones((2, 40 * 12), "float32") * -5
    t2m[1] += np.repeat(np.linspace(0, 4, 40), 12)  # steady warming in cell 1, none in cell 0
    sig = scenario_signal(t2m, 1980, spec)
    assert sig.shape == (2, 40)
    np.testing.assert_allclose(sig[0], 0, atol=1e-6)
    assert np.all(np.diff(sig[1][5:]) > 0)
    baseline_mean = np.linspace(0, 4, 40)[:10].mean()
    np.testing.assert_allclose(sig[1][-1], np.linspace(0, 4, 40)[-5:].mean() - baseline_mean, rtol=1e-5)
    with pytest.raises(InputDataError, match="baseline"):
        scenario_signal(t2m, 2030, spec)


def test_rcp_forcing_signal_orders_scenarios():
    spec = FeatureSpec(scenario_signal="rcp_forcing")
    t2m = np.zeros((1, 95 * 12), "float32")
    s45 = scenario_signal(t2m, 2006, spec, "rcp45")[0]
    s85 = scenario_signal(t2m, 2006, spec, "rcp85")[0]
    assert s85[-1] > s45[-1] > 4.0 and s85[-1] > 8.0
    assert np.all(s85[-30:] > s45[-30:])
    hist = scenario_signal(np.zeros((1, 30 * 12), "float32"), 1970, spec, "historical")[0]
    same = scenario_signal(np.zeros((1, 30 * 12), "float32"), 1970, spec, "rcp85")[0]
    np.testing.assert_allclose(hist[:36], same[:36])  # ≤ 2005 shared by all scenarios


def test_both_signals_build_inputs(toy):
    for signal in ("warming_anomaly", "rcp_forcing"):
        raw = make_inputs(toy, [1990], _spec(toy, signal), normalize=False)
        assert np.isfinite(raw["dynamic"]).all()


def test_snow_is_rederived_identically(toy):
    # Supplied snow is replaced by the shared snow model, so history and scenarios see the same physics.
    noisy = toy.assign(sd=toy["t2m"] * 0 + 123.0)
    a = make_inputs(toy, [1990], _spec(toy), normalize=False)
    b = make_inputs(noisy, [1990], _spec(toy), normalize=False)
    np.testing.assert_array_equal(a["dynamic"], b["dynamic"])
    i_sd = DYNAMIC.index("sd")
    winter = a["dynamic"][:, -12:, i_sd][:, [0, 1, 2]]
    summer = a["dynamic"][:, -12:, i_sd][:, [6, 7]]
    assert winter.mean() > 0.01 and summer.mean() < winter.mean()


def test_extra_static_inputs_are_used_and_missing_ones_named(toy):
    cfg = tiny_config()
    ds = toy.assign(cvl=xr.full_like(toy["elevation"], 0.4), organic_thickness=toy["elevation"] * 0 + 0.3)
    feats = cfg.features.model_copy(update={"extra_static": ["cvl", "organic_thickness"]})
    spec = FeatureSpec.from_dataset(ds, feats, band_edges=cfg.domain.band_edges)
    assert spec.static[-2:] == ("cvl", "organic_thickness")
    raw = make_inputs(prepare(ds), [1985], spec, cells=(np.array([2]), np.array([4])), normalize=False)
    np.testing.assert_allclose(raw["static"][0, -2:], [0.4, 0.3], rtol=1e-6)
    deep = ds.assign(bedrock_depth=xr.full_like(toy["elevation"], np.inf))
    with pytest.raises(InputDataError, match="'bedrock_depth' has infinite values"):
        FeatureSpec.from_dataset(deep, cfg.features.model_copy(update={"extra_static": ["bedrock_depth"]}),
                                 band_edges=cfg.domain.band_edges)
    with pytest.raises(InputDataError, match="extra_static: 'tvh'"):
        FeatureSpec.from_dataset(ds, cfg.features.model_copy(update={"extra_static": ["tvh"]}),
                                 band_edges=cfg.domain.band_edges)


def test_snow_inputs_stop_at_the_cap_on_icefields(toy):
    """A cell whose summers never melt its snow must not put the snow inputs hundreds of σ out."""
    from geothaw.features import SWE_CAP_M

    ice = toy.copy(deep=True)
    ice["t2m"][:, 0, 0] = -12.0 - 3.0 * np.cos(2 * np.pi * (np.arange(ice.sizes["time"]) % 12) / 12)  # never thaws
    ice["tp"][:, 0, 0] = 300.0  # mm per month: ~3.6 m w.e. a year, all snow
    out = prepare(ice)
    sd, sde, rsn = (out[v].values[:, 0, 0] for v in ("sd", "sde", "rsn"))
    assert sd.max() == pytest.approx(SWE_CAP_M) and (sd[-24:] == pytest.approx(SWE_CAP_M))
    np.testing.assert_allclose(sde / sd, 1000.0 / rsn, rtol=1e-5)  # depth capped alike: density kept
    # Ordinary cells are untouched.
    xr.testing.assert_identical(out["sd"].isel(latitude=slice(1, None)), prepare(toy)["sd"].isel(latitude=slice(1, None)))
