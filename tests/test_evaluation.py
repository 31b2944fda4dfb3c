"""Evaluation: leak-free splits, hand-computed metrics, seasons, projection skill on synthetic arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_features import make_toy_dataset, tiny_config

from geothaw.attribution import permutation_importance, write_importance
from geothaw.evaluation import (exceedance_skill, make_split, metrics_table, projection_skill, regression_metrics,
                                score_projection)
from geothaw.features import prepare
from geothaw.training import load_checkpoint, prepare_training_data, train_model


@pytest.fixture(scope="module")
def toy():
    return make_toy_dataset()


def test_split_has_no_overlap_and_is_deterministic(toy):
    cfg = tiny_config()
    s = make_split(cfg, toy)
    assert not set(s.train_years) & set(s.holdout_years)
    assert s.holdout_years.tolist() == [1995, 1996, 1997] and s.train_years.max() < 1995
    tr = set(zip(*s.train_cells()))
    ho = set(zip(*s.holdout_cells()))
    assert tr and ho and not tr & ho and len(tr) + len(ho) == int(s.land.sum())
    again = make_split(cfg, toy)
    assert again.holdout_blocks == s.holdout_blocks
    other = make_split(cfg.model_copy(update={"seed": 123}), toy)
    assert other.holdout_blocks != s.holdout_blocks
    # Whole blocks are held out: every held-out cell's block is in the list.
    lat, lon = toy["latitude"].values, toy["longitude"].values
    r, c = s.holdout_cells()
    blocks = {(int(np.floor(lat[i] / 1.0)), int(np.floor(lon[j] / 1.0))) for i, j in zip(r, c)}
    assert blocks == set(s.holdout_blocks)


def test_training_samples_exclude_holdouts(toy):
    cfg = tiny_config()
    s = make_split(cfg, toy)
    data = prepare_training_data(cfg, toy)
    for part in (data.train, data.val):
        assert part["year"].max() < s.holdout_years.min()
        assert not s.holdout_mask[part["row"], part["col"]].any()
    # Train and validation cells are disjoint.
    assert not set(zip(*data.train_cells)) & set(zip(*data.val_cells))


def test_regression_metrics_hand_computed():
    m = regression_metrics(np.array([0.0, 1, 2, 3]), np.array([1.0, 1, 2, 5]))
    assert m["n"] == 4
    assert m["rmse"] == pytest.approx(np.sqrt(5 / 4)) and m["mae"] == pytest.approx(0.75)
    assert m["bias"] == pytest.approx(0.75) and m["r2"] == pytest.approx(0.0)
    assert regression_metrics(np.arange(5.0), np.arange(5.0))["r2"] == 1.0


def test_exceedance_skill_hand_computed():
    obs = np.array([1.0, 1.0, 1.0, -1.0, -1.0, -2.0])
    pred = np.array([0.5, 0.2, -0.1, 0.3, -1.0, -1.0])
    s = exceedance_skill(obs, pred)  # TP 2, FN 1, FP 1
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["n_obs_exceed"] == 3


def test_metrics_table_seasons_and_bands():
    y = np.zeros((4, 12, 4))
    p = y.copy()
    p[:, 0, 1] = 2.0  # error only in January at stl2
    p[2:, 6, 3] = 1.0  # error only in July at stl4, band 1 samples
    t = metrics_table(y, p, np.array([0, 0, 1, 1]), model="m", holdout="time", band_labels=["a", "b"])
    get = lambda **kw: t[np.logical_and.reduce([t[k] == v for k, v in kw.items()])]["rmse"].item()  # noqa: E731
    assert get(depth="stl2", band="all", season="DJF") == pytest.approx(np.sqrt(4 / 3))
    assert get(depth="stl2", band="all", season="JJA") == 0.0
    assert get(depth="stl2", band="all", season="annual") == pytest.approx(np.sqrt(4 / 12))
    assert get(depth="stl4", band="a", season="JJA") == 0.0
    assert get(depth="stl4", band="b", season="JJA") == pytest.approx(np.sqrt(1 / 3))
    assert set(t["season"]) == {"DJF", "MAM", "JJA", "SON", "annual"}


def _scenario(years, warming, offset=0.0):
    time = pd.date_range(f"{years[0]}-01-01", periods=12 * len(years), freq="MS")
    yr = np.repeat(np.arange(len(years)), 12)
    base = -3.0 + warming * yr / len(years) + offset
    data = np.broadcast_to(base[:, None, None], (time.size, 2, 3)).astype("float32")
    coords = {"time": time, "latitude": [65.0, 64.9], "longitude": [200.0, 200.1, 200.2]}
    return xr.Dataset({f"stl{i}": (("time", "latitude", "longitude"), data.copy()) for i in range(1, 5)}, coords=coords)


def test_score_projection_on_synthetic_arrays():
    years = np.arange(2006, 2101)
    truth = {"rcp45": _scenario(years, 3.0), "rcp85": _scenario(years, 7.0)}
    biased = {"rcp45": _scenario(years, 3.0, 1.0), "rcp85": _scenario(years, 7.0, 1.0)}
    df = score_projection(biased, truth)
    rm = df[df.metric == "magt_rmse"]
    assert set(rm["era"]) == {"2021-2040", "2041-2070", "2071-2100"} and np.allclose(rm["value"], 1.0, atol=1e-5)
    div = df[df.metric.str.startswith("divergence")].set_index(["depth", "metric"])["value"]
    assert div[("stl1", "divergence_error")] == pytest.approx(0.0, abs=1e-5)
    # Thawed share of the cells: RCP4.5's 2071-2100 mean is -0.49 °C in the truth, +0.51 with the +1 °C bias.
    share = df[df.metric.str.startswith("above0")].set_index(["scenario", "era", "depth", "metric"])["value"]
    assert share[("rcp45", "2071-2100", "stl1", "above0_share_truth")] == 0.0
    assert share[("rcp45", "2071-2100", "stl1", "above0_share_pred")] == 1.0
    assert share[("rcp85", "2071-2100", "stl4", "above0_share_truth")] == 1.0
    assert share[("rcp45", "2021-2040", "stl2", "above0_share_pred")] == 0.0
    # A model whose scenarios do not diverge misses the whole truth divergence.
    flat = {"rcp45": _scenario(years, 3.0), "rcp85": _scenario(years, 3.0)}
    d2 = score_projection(flat, truth).set_index(["depth", "metric"])["value"]
    truth_div = d2[("stl3", "divergence_truth")]
    assert truth_div > 2.0 and d2[("stl3", "divergence_pred")] == pytest.approx(0.0, abs=1e-5)
    assert d2[("stl3", "divergence_error")] == pytest.approx(truth_div, rel=1e-5)


def test_projection_skill_runs_checkpoints_for_both_signals(tmp_path):
    # A short toy "projection": forcing and truth 2000–2035 per scenario, warmer under rcp85.
    base = make_toy_dataset(n_lat=3, n_lon=4, start=2000, years=36, seed=3, trend=0.02)
    hot = make_toy_dataset(n_lat=3, n_lon=4, start=2000, years=36, seed=3, trend=0.12)
    cks = []
    for signal in ("rcp_forcing", "warming_anomaly"):
        cfg = tiny_config().model_copy(deep=True)
        cfg.features.scenario_signal = signal
        cfg.evaluation.block_size_deg = 0.5
        cks.append(train_model(cfg, base, "linear", tmp_path / signal).checkpoint)
    forcing = {s: d.drop_vars(["stl1", "stl2", "stl3", "stl4"]) for s, d in (("rcp45", base), ("rcp85", hot))}
    eras = {"2021-2040": (2021, 2040), "2041-2070": (2041, 2070)}
    df = projection_skill(cks, forcing, {"rcp45": base, "rcp85": hot}, years=range(2002, 2036), eras=eras,
                          divergence_era="2021-2040")
    assert set(df["era"]) == {"2021-2040"}  # the era with no data is skipped, not NaN
    assert set(df["scenario_signal"]) == {"rcp_forcing", "warming_anomaly"}
    rm = df[(df.metric == "magt_rmse") & (df.era == "2021-2040")]
    assert len(rm) == 2 * 2 * 4 and (rm["value"] < 1.0).all()
    div = df[df.metric == "divergence_truth"]
    assert len(div) == 2 * 4 and (div["value"] > 0).all()  # rcp85 forcing warmer → truth diverges upward
    assert (df[df.metric == "divergence_pred"]["value"] > 0).all()


def test_permutation_importance_finds_air_temperature(toy, tmp_path):
    cfg = tiny_config()
    res = train_model(cfg, toy, "linear", tmp_path)
    loaded = load_checkpoint(res.checkpoint)
    from geothaw.evaluation import evaluation_sets

    ds = prepare(toy)
    raw = evaluation_sets(cfg, ds, make_split(cfg, ds), loaded.features)["time"]
    df = permutation_importance(loaded.model, loaded.features, loaded.features.normalize(raw), n_repeats=2)
    assert df.iloc[0]["feature"] == "t2m" and df.iloc[0]["rmse_increase"] > 0.5
    assert set(df["feature"]) >= {"t2m", "tp", "sd", "scenario_signal", "soil_class", "band", "latitude"}
    assert np.isfinite(df["rmse_increase_std"]).all()
    paths = write_importance(df, tmp_path / "attr", "linear")
    assert all(p.exists() and p.stat().st_size > 0 for p in paths.values())
    # one permutation per feature has no spread: the table says so instead of printing ± 0.000
    single = permutation_importance(loaded.model, loaded.features, loaded.features.normalize(raw), n_repeats=1)
    assert single["rmse_increase_std"].isna().all()
    table = write_importance(single, tmp_path / "attr1", "linear")["md"].read_text()
    t2m_row = next(line for line in table.splitlines() if line.startswith("| t2m |"))
    assert t2m_row.split(" | ")[3] == "—"


def test_yearly_magt_matches_a_groupby_over_years():
    import pandas as pd
    import xarray as xr

    from geothaw.evaluation import yearly_magt

    rng = np.random.default_rng(3)

    def series(start: str, months: int) -> xr.Dataset:
        t = pd.date_range(start, periods=months, freq="MS")
        data = {f"stl{k}": (("time", "latitude", "longitude"), rng.normal(size=(months, 3, 4))) for k in range(1, 5)}
        ds = xr.Dataset(data, coords={"time": t})
        ds["stl2"][7, 1, 1] = np.nan  # a gap stays a gap in that cell's year only
        return ds

    for ds in (series("1990-01-01", 36), series("1990-03-01", 30)):  # whole years (coarsen) and a partial record
        fast, slow = yearly_magt(ds), ds[["stl1", "stl2", "stl3", "stl4"]].groupby("time.year").mean("time")
        xr.testing.assert_allclose(fast.transpose(*slow.dims), slow, rtol=1e-12)
        assert list(fast["year"].values) == list(slow["year"].values)
