"""The compiled snowpack kernel against the NumPy month loop it replaced (bit for bit)."""

from __future__ import annotations

import numpy as np

from geothaw import snow


def _numpy_snowpack(t2m, tp, days_in_month, initial_swe=None):
    """The array-at-a-time loop ``snowpack`` ran before its kernel was compiled (kept here as the oracle)."""
    t2m = np.moveaxis(np.asarray(t2m, dtype="float64"), -1, 0)
    tp = np.moveaxis(np.nan_to_num(np.asarray(tp, dtype="float64"), nan=0.0), -1, 0)
    days = np.asarray(days_in_month, dtype="float64").reshape((-1,) + (1,) * (t2m.ndim - 1))
    swe = np.zeros(t2m.shape[1:]) if initial_swe is None else np.asarray(initial_swe, dtype="float64").copy()
    rho = np.full(t2m.shape[1:], snow.NEW_SNOW_DENSITY)
    out_swe, out_rho = np.empty(t2m.shape, dtype="float32"), np.empty(t2m.shape, dtype="float32")
    snow_in = snow.snowfall_fraction(t2m) * tp
    melt_pot = snow.DEGREE_DAY_FACTOR * np.clip(t2m, 0.0, None) * days
    for m in range(t2m.shape[0]):
        start, snowfall = swe, snow_in[m]
        melt = np.minimum(melt_pot[m], start + snowfall)
        swe = start + snowfall - melt
        aged = snow.MAX_SNOW_DENSITY - (snow.MAX_SNOW_DENSITY - rho) * np.exp(
            -snow.COMPACTION_PER_MONTH * (1.0 + (melt > 0)))
        kept_old = np.clip(start - melt, 0.0, None)
        total = kept_old + snowfall
        rho = np.where(total > 0, (aged * kept_old + snow.NEW_SNOW_DENSITY * snowfall) / np.where(total > 0, total, 1.0),
                       snow.NEW_SNOW_DENSITY)
        out_swe[m] = 0.5 * (start + swe) / snow.WATER_DENSITY
        out_rho[m] = rho
    depth = out_swe * snow.WATER_DENSITY / out_rho
    return (np.moveaxis(out_swe, 0, -1), np.moveaxis(depth.astype("float32"), 0, -1), np.moveaxis(out_rho, 0, -1))


def test_compiled_snowpack_equals_the_numpy_loop_bit_for_bit():
    rng = np.random.default_rng(0)
    months = 12 * 30
    days = np.tile([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], months // 12)
    t = rng.normal(-5.0, 15.0, (9, 7, months))
    p = rng.gamma(1.0, 40.0, (9, 7, months))
    t[0, 0] = np.nan            # a sea cell
    p[1, 2, 100:150] = np.nan   # missing precipitation counts as none
    t[3, 4, 200] = np.nan       # a single missing month propagates like NumPy's NaN
    t[5, 5, 20:40] = 40.0       # melt that exceeds the pack
    initial = rng.uniform(0.0, 300.0, (9, 7))
    for args, kwargs in [((t, p, days), {}), ((t[2, 3], p[2, 3], days), {}), ((t, p, days), {"initial_swe": initial})]:
        got, want = snow.snowpack(*args, **kwargs), _numpy_snowpack(*args, **kwargs)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)
    # the caller's starting pack is not modified
    before = initial.copy()
    snow.snowpack(t, p, days, initial_swe=initial)
    np.testing.assert_array_equal(initial, before)
