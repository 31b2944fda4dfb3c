import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from geothaw import biascorrect
from geothaw.biascorrect import BiasAdjustment, to_coarse
from geothaw.errors import InputDataError

N_YEARS = 60


def _ds(t2m, tp, start="1976-01-01"):
    time = pd.date_range(start, periods=t2m.shape[0], freq="MS")
    coords = {"time": time, "latitude": [65.0, 64.9], "longitude": [212.0, 212.1, 212.2]}
    dims = ("time", "latitude", "longitude")
    return xr.Dataset({"t2m": (dims, t2m.astype("float32"), {"units": "degC"}),
                       "tp": (dims, tp.astype("float32"), {"units": "mm month-1"})}, coords=coords)


@pytest.fixture(scope="module")
def pair():
    """ref and hist from two known distributions (analytic truth via ppf), cold-biased and too wet GCM."""
    rng = np.random.default_rng(3)
    n = N_YEARS * 12
    season = 15 * np.cos(2 * np.pi * (np.arange(n) % 12 - 6.5) / 12)[:, None, None]
    u_ref = rng.uniform(0.001, 0.999, size=(n, 2, 3))
    u_hist = rng.uniform(0.001, 0.999, size=(n, 2, 3))
    ref = _ds(season + stats.norm.ppf(u_ref, loc=-3, scale=2), stats.gamma.ppf(u_ref, a=2, scale=15))
    hist = _ds(season * 1.2 + stats.norm.ppf(u_hist, loc=-6, scale=3), stats.gamma.ppf(u_hist, a=2, scale=15) * 1.6)
    return ref, hist


def test_round_trip_reproduces_reference_quantiles(pair):
    ref, hist = pair
    qm = BiasAdjustment.train(ref, hist, nquantiles=40)
    adj = qm.adjust(hist)
    for var in ("t2m", "tp"):
        for month in (1, 7):
            r = ref[var].where(ref.time.dt.month == month, drop=True).values.ravel()
            a = adj[var].where(adj.time.dt.month == month, drop=True).values.ravel()
            h = hist[var].where(hist.time.dt.month == month, drop=True).values.ravel()
            q = [0.1, 0.25, 0.5, 0.75, 0.9]
            err_adj = np.abs(np.quantile(a, q) - np.quantile(r, q)).max()
            err_raw = np.abs(np.quantile(h, q) - np.quantile(r, q)).max()
            scale = np.std(r)
            assert err_adj < 0.1 * scale, (var, month, err_adj)
            assert err_raw > 3 * err_adj


def test_gcm_bias_removed_and_signal_kept(pair):
    ref, hist = pair
    qm = BiasAdjustment.train(ref, hist, nquantiles=40)
    future = hist.copy()
    future["t2m"] = hist["t2m"] + 4.0  # a GCM warming of +4 °C in GCM space
    future["time"] = pd.date_range("2071-01-01", periods=hist.sizes["time"], freq="MS")
    adj = qm.adjust(future)
    bias_before = float(hist["t2m"].mean() - ref["t2m"].mean())
    assert bias_before < -2.5
    # after correction the future mean is the reference mean plus (approximately) the warming
    warming = float(adj["t2m"].mean() - ref["t2m"].mean())
    assert 2.5 < warming < 5.5
    assert adj["tp"].mean() == pytest.approx(float(ref["tp"].mean()), rel=0.1)
    assert "xsdba EmpiricalQuantileMapping" in adj["t2m"].attrs["bias_correction"]
    assert adj["tp"].attrs["units"] == "mm month-1"


def test_save_load_gives_identical_adjustment(tmp_path, pair):
    ref, hist = pair
    qm = BiasAdjustment.train(ref, hist, nquantiles=20)
    qm.save(tmp_path / "bc")
    again = BiasAdjustment.load(tmp_path / "bc")
    a, b = qm.adjust(hist), again.adjust(hist)
    assert np.array_equal(a["t2m"].values, b["t2m"].values, equal_nan=True)
    assert np.array_equal(a["tp"].values, b["tp"].values, equal_nan=True)
    assert "py/object" not in (tmp_path / "bc" / "bias_adjustment.json").read_text()


def test_bad_inputs(pair):
    ref, hist = pair
    with pytest.raises(InputDataError, match="same months"):
        BiasAdjustment.train(ref, hist.isel(time=slice(12, None)))
    with pytest.raises(InputDataError, match="lack variable 'tp'"):
        BiasAdjustment.train(ref, hist.drop_vars("tp"))
    with pytest.raises(InputDataError, match="unknown bias-correction method"):
        BiasAdjustment.train(ref, hist, method="magic")


@pytest.mark.parametrize("slab_rows", [1, 2, 8])
@pytest.mark.parametrize("factor", [2, 3, 10])
def test_coarse_grid_is_the_rolling_mean_sampled_bit_for_bit(factor, slab_rows, monkeypatch):
    monkeypatch.setattr(biascorrect, "COARSE_SLAB_ROWS", slab_rows)  # slabs with halos give the same as one
    rng = np.random.default_rng(3)
    values = rng.normal(size=(5, 23, 31)).astype("float32")
    values[:, :7, :9] = np.nan  # sea: some windows all NaN, some partly
    values[2, 10, 10] = np.nan
    ds = xr.Dataset({"t2m": (("time", "latitude", "longitude"), values),
                     "tp": (("time", "latitude", "longitude"), np.abs(values) * 40)},
                    coords={"time": pd.date_range("2000-01-01", periods=5, freq="MS"),
                            "latitude": np.arange(23) * 0.1, "longitude": np.arange(31) * 0.1})
    expected = ds.rolling(latitude=factor, longitude=factor, center=True, min_periods=1).mean()
    expected = expected.isel(latitude=slice(None, None, factor), longitude=slice(None, None, factor))
    got = to_coarse(ds, factor)
    for v in ds:
        assert got[v].dtype == np.float32
        np.testing.assert_array_equal(got[v].values, expected[v].values)  # NaN where NaN, equal bits elsewhere
    assert np.isnan(got["t2m"].values[:, 0, 0]).all() and np.isfinite(got["t2m"].values[:, -1, -1]).all()
