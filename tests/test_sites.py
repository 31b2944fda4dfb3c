"""Site readers (UAF WERC CSV, Campbell TOA5), coverage rules, layer mapping and the validation scoring.

Fixtures are written here with the quirks of the real files (free-text header, AKST, 6999/7777 flags,
TOA5 ``24:00:00`` stamps, -7999 dead sensors); one test reads the real ``../shared/data`` when present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geothaw.errors import InputDataError
from geothaw.io import sites as S
from geothaw.io.sites import (
    INSUFFICIENT,
    CoverageRule,
    SiteData,
    layer_weights,
    map_to_layers,
    read_toa5,
    read_werc_csv,
    sensor_depth,
    to_daily,
    to_monthly,
)

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

WERC_HEADER = [
    '"If you use any of the data presented in this website, we ask you to please reference the author: ",,,,',
    '"Somebody, A. (year). Climate data, variously paged.",,,,',
    "see readme for metadata,,,,",
    ",,,,",
    "GSM9 Test Station Met  2017 Last Updated XYZ 1Jan2018,,,,",
    "Meteorological Data,,,,",
    "Lat:64.900,,,,",
    "Long:-147.900,,,,",
    "Elev:200 m,,,,",
    ",,,,",
    "Col.  Data Type  Units,,,Installation_Notes,",
    "1. Date Time (Alaska Standard Time),,,0-10 cm bgs organic layer,",
    "2. 2 m Air Temperature (deg C),,,,",
    ",,,,",
    '"Flags 6999-bad/missing, 7777-not collected",,,,',
    ",,,,",
]


def _werc(path: Path, columns: list[str], rows: list[list[str]]) -> Path:
    lines = WERC_HEADER + [",".join(["Date/Time", *columns]) + ",,"]
    lines += [",".join(r) + ",," for r in rows]  # trailing empty columns, as in the exports
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def _stamp(t: pd.Timestamp) -> str:
    return f"{t.month}/{t.day}/{t.year} {t.hour}:{t.minute:02d}"  # m/d/YYYY H:MM, no zero padding


def _toa5(path: Path, columns: list[str], rows: list[list[str]]) -> Path:
    q = lambda xs: ",".join(f'"{x}"' for x in xs)  # noqa: E731
    lines = [
        q(["TOA5", "TEST_Logger", "CR1000", "123", "CR1000.Std.24", "CPU:prog.CR1", "555", "Table1"]),
        q(["TIMESTAMP", "RECORD", *columns]),
        q(["TS", "RN", *["Deg C"] * len(columns)]),
        q(["", "", *["Avg"] * len(columns)]),
    ]
    lines += [",".join([f'"{r[0]}"', *r[1:]]) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- readers -------------------------------------------------------------------------------------------
def test_werc_reader_metadata_timezone_and_flags(tmp_path):
    times = pd.date_range("2017-01-01 00:00", periods=6, freq="h")
    rows = [[_stamp(t), v, r, s] for t, v, r, s in zip(
        times, ["-20.5", "6999", "-21.0", "-21.5", "7777", "-22.0"], ["7777"] * 6,
        ["40.0", "41.0", "6999", "40.5", "40.0", "39.5"])]
    f = _werc(tmp_path / "met.csv", ["Air_Temperature_C_2m", "Rainfall_mm", "SnowDepth_cm"], rows)
    tab = read_werc_csv(f)
    assert tab.meta["latitude"] == pytest.approx(64.9) and tab.meta["longitude"] == pytest.approx(-147.9)
    assert tab.meta["elevation"] == 200.0
    assert "0-10 cm bgs organic layer" in tab.meta["notes"]
    assert tab.data.index.tz is not None
    assert tab.data.index[0].utcoffset() == pd.Timedelta(hours=-9)  # AKST, no DST
    assert list(tab.data.columns) == ["Air_Temperature_C_2m", "Rainfall_mm", "SnowDepth_cm"]  # empty cols dropped
    air = tab.data["Air_Temperature_C_2m"].to_numpy()
    np.testing.assert_array_equal(np.isnan(air), [False, True, False, False, True, False])
    assert air[0] == -20.5 and tab.data["Rainfall_mm"].isna().all()
    assert tab.data["SnowDepth_cm"].isna().sum() == 1


def test_werc_reader_rejects_other_files(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(InputDataError, match="Date/Time"):
        read_werc_csv(p)


def test_toa5_reader_midnight_dead_sensors_duplicates(tmp_path):
    rows = [
        ["2024-03-22 21:00:00", "1", "-8.0", "-7999"],
        ["2024-03-22 24:00:00", "2", "-8.5", "-7.0"],   # = 2024-03-23 00:00
        ["2024-03-23 03:00:00", "3", "NAN", "-7.2"],
        ["2024-03-23 03:00:00", "3", "-9.9", "-9.9"],   # duplicated stamp: first one kept
        ["2024-03-23 06:00:00", "4", "7999", "-7.4"],
    ]
    tab = read_toa5(_toa5(tmp_path / "log.dat", ["CT1_10CM_AVG", "CT1_20CM_AVG"], rows))
    assert tab.meta["table"] == "Table1" and tab.meta["station"] == "TEST_Logger"
    assert list(tab.data.index) == [pd.Timestamp(s) for s in
                                    ("2024-03-22 21:00", "2024-03-23 00:00", "2024-03-23 03:00", "2024-03-23 06:00")]
    assert "RECORD" not in tab.data
    c10, c20 = tab.data["CT1_10CM_AVG"].to_numpy(), tab.data["CT1_20CM_AVG"].to_numpy()
    np.testing.assert_array_equal(np.isnan(c10), [False, False, True, True])
    np.testing.assert_array_equal(np.isnan(c20), [True, False, False, False])
    assert c10[1] == -8.5 and c20[2] == -7.2


def test_toa5_reader_rejects_non_toa5(tmp_path):
    p = tmp_path / "x.dat"
    p.write_text('"TOB1","x"\n')
    with pytest.raises(InputDataError, match="TOA5"):
        read_toa5(p)


@pytest.mark.parametrize(("name", "depth"), [
    ("Soil Temperature 20 cm bgs deg C", 0.20), ("Soil Temperature CS650 10 cm bgs deg C", 0.10),
    ("CT1_10cm_Avg", 0.10), ("GHF2_40CM_AVG", 0.40), ("LSH1_Sur_AVG", 0.0), ("Air_3M_Avg", None),
])
def test_sensor_depth(name, depth):
    assert sensor_depth(name) == depth


# ---- coverage ------------------------------------------------------------------------------------------
def _hourly(start: str, days: int, value: float = 1.0, tz: str | None = S.AKST) -> pd.DataFrame:
    idx = pd.date_range(start, periods=24 * days, freq="h", tz=tz)
    return pd.DataFrame({"x": np.full(idx.size, value)}, index=idx)


def test_daily_coverage_rule():
    df = _hourly("2017-01-01", 3)
    df.iloc[0:7, 0] = np.nan     # day 1: 17 of 24 hours → below 75 %
    df.iloc[24:30, 0] = np.nan   # day 2: 18 of 24 → kept
    d = to_daily(df)
    assert np.isnan(d["x"].iloc[0]) and d["x"].iloc[1] == 1.0 and d["x"].iloc[2] == 1.0
    # sums scale a covered day to 24 h
    rain = _hourly("2017-07-01", 1, 0.5)
    rain.iloc[:2, 0] = np.nan
    assert to_daily(rain, how="sum")["x"].iloc[0] == pytest.approx(12.0)


def test_daily_rule_follows_the_logging_interval():
    idx = pd.date_range("2023-07-01", periods=8 * 2, freq="3h")  # 3-hourly logger: 8 samples a day
    df = pd.DataFrame({"x": 2.0}, index=idx)
    df.iloc[:3, 0] = np.nan  # 5 of 8 < 75 %
    d = to_daily(df)
    assert np.isnan(d["x"].iloc[0]) and d["x"].iloc[1] == 2.0


def test_monthly_coverage_rule():
    idx = pd.date_range("2017-01-01", "2017-03-31", freq="D")
    daily = pd.DataFrame({"x": 3.0}, index=idx)
    daily.loc["2017-01-01":"2017-01-12", "x"] = np.nan            # Jan: 19 valid days → NaN
    daily.loc[["2017-02-02", "2017-02-09", "2017-02-16", "2017-02-23"], "x"] = np.nan  # Feb: 24 valid, short gaps
    daily.loc["2017-03-10":"2017-03-15", "x"] = np.nan            # Mar: 25 valid but a 6-day hole → NaN
    m = to_monthly(daily)
    assert np.isnan(m.loc["2017-01-01", "x"]) and m.loc["2017-02-01", "x"] == 3.0 and np.isnan(m.loc["2017-03-01", "x"])
    loose = to_monthly(daily, CoverageRule(min_valid_days=19, max_gap_days=12))
    assert loose["x"].notna().all()


def test_partial_first_month_is_judged_against_the_full_month():
    df = _hourly("2015-10-13 14:00", 19, 5.0)  # record starts mid-October (like the Goldstream files)
    d = to_daily(df)
    assert np.isnan(d["x"].iloc[0])  # 10 hours on the first day
    m = to_monthly(d)
    assert np.isnan(m.loc["2015-10-01", "x"])  # 18 good days of 31: no October mean
    assert np.isnan(m.loc["2015-11-01", "x"])  # one day of November


def test_hourly_to_monthly_round_trip_through_werc_file(tmp_path):
    times = pd.date_range("2017-01-01", "2017-02-28 23:00", freq="h")
    vals = np.where(times.month == 1, -20.0, -10.0)
    rows = [[_stamp(t), f"{v:.1f}", "7777", "30.0"] for t, v in zip(times, vals)]
    rows[5][1] = "6999"
    tab = read_werc_csv(_werc(tmp_path / "m.csv", ["Air_Temperature_C_2m", "Rainfall_mm", "SnowDepth_cm"], rows))
    m = to_monthly(to_daily(tab.data))
    assert m.loc["2017-01-01", "Air_Temperature_C_2m"] == pytest.approx(-20.0)
    assert m.loc["2017-02-01", "Air_Temperature_C_2m"] == pytest.approx(-10.0)
    assert m["Rainfall_mm"].isna().all()  # 7777 throughout: not collected, never a zero


# ---- layer mapping -------------------------------------------------------------------------------------
def test_layer_weights_nearest_sensor_inside_layer():
    w = layer_weights([0.05, 0.10, 0.20, 0.30, 0.50, 0.90])
    assert w[0] == {0.05: pytest.approx(1.0)}
    assert w[1][0.10] == pytest.approx(0.08 / 0.21) and w[1][0.20] == pytest.approx(0.13 / 0.21)
    assert w[2][0.30] == pytest.approx(0.12 / 0.72) and w[2][0.90] == pytest.approx(0.30 / 0.72)
    assert sum(w[2].values()) == pytest.approx(1.0)
    assert w[3] == {}  # nothing in 1.00-2.89 m


def test_map_to_layers_weights_dead_sensor_and_insufficient_coverage():
    idx = pd.date_range("2017-01-01", periods=3, freq="D")
    prof = pd.DataFrame({
        "Soil Surface Temperature 0 cm": [9.0, 9.0, 9.0],      # surface: excluded by default
        "Soil Temperature 5 cm": [-1.0, -1.0, -1.0],
        "Soil Temperature 10 cm": [-2.0, np.nan, -2.0],        # dead on day 2
        "Soil Temperature CS650 10 cm": [-2.2, np.nan, -2.2],  # second sensor type at the same depth
        "Soil Temperature 20 cm": [-4.0, -4.0, -4.0],
        "Soil Temperature 50 cm": [-5.0, -5.0, np.nan],
    }, index=idx)
    depths = {c: sensor_depth(c) for c in prof.columns}
    layers, status = map_to_layers(prof, depths)
    assert layers["stl1"].tolist() == [-1.0, -1.0, -1.0]
    w10, w20 = 0.08 / 0.21, 0.13 / 0.21
    assert layers["stl2"].iloc[0] == pytest.approx(w10 * -2.1 + w20 * -4.0)
    assert layers["stl2"].iloc[1] == pytest.approx(-4.0)  # weights renormalised to the reporting sensor
    assert layers["stl3"].iloc[0] == -5.0 and np.isnan(layers["stl3"].iloc[2])
    assert layers["stl4"].isna().all() and status["stl4"].startswith(INSUFFICIENT)
    assert status["stl2"].startswith("ok") and "10, 20" in status["stl2"]
    with_surface, _ = map_to_layers(prof, depths, include_surface=True)
    assert with_surface["stl1"].iloc[0] == pytest.approx((0.025 * 9.0 + 0.045 * -1.0) / 0.07)  # split at 2.5 cm


# ---- validation scoring --------------------------------------------------------------------------------
def _synthetic_site(years=(2016, 2017, 2018)) -> SiteData:
    idx = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-01", freq="MS")
    phase = 2 * np.pi * (idx.month.to_numpy() - 1.5) / 12
    air = -3.0 - 20.0 * np.cos(phase)
    obs = {f"stl{k}": 1.0 - a * np.cos(phase - lag) for k, (a, lag) in enumerate([(8, .3), (6, .5), (3, 1.0)], 1)}
    monthly = pd.DataFrame({"t2m": air, "rain": np.where(air > 0, 40.0, np.nan), "snowfall": np.where(air < 0, 15.0, np.nan),
                            "sde": np.nan, **obs, "stl4": np.nan}, index=idx)
    status = {"stl1": "ok", "stl2": "ok", "stl3": "ok", "stl4": f"{INSUFFICIENT}: no sensor in 100-289 cm"}
    return SiteData("synthetic", 64.9, -147.9, 300.0, 3, monthly, status, forest=True)


def test_score_amplitude_bias_and_crossings():
    from geothaw.validation import score

    idx = pd.date_range("2017-01-01", periods=24, freq="MS")
    obs = pd.Series(-np.cos(2 * np.pi * (idx.month.to_numpy() - 1) / 12) * 5.0, index=idx)
    s = score(obs, obs + 1.0)
    assert s["rmse"] == pytest.approx(1.0) and s["bias"] == pytest.approx(1.0)
    assert s["amp_obs"] == pytest.approx(5.0)
    assert (s["thaw_obs"], s["freeze_obs"]) == (5.0, 11.0)   # first month > 0, first back ≤ 0
    assert s["thaw_pred"] == 4.0                             # warmer → thaws a month earlier
    never = score(obs - 10.0, obs - 10.0)
    assert np.isnan(never["thaw_obs"]) and np.isnan(never["freeze_obs"])


def test_validate_site_physics_only_writes_outputs(tmp_path):
    from geothaw.validation import validate_site

    scores = validate_site(_synthetic_site(), [], out_dir=tmp_path, physics=True, spinup_years=2)
    assert set(scores["model"]) == {"physics"}
    l4 = scores.set_index("layer").loc["stl4"]
    assert l4["status"].startswith(INSUFFICIENT) and np.isnan(l4["rmse"])
    assert scores.set_index("layer").loc[["stl1", "stl2", "stl3"], "rmse"].notna().all()
    for name in ("synthetic_scores.csv", "synthetic_monthly.csv", "synthetic.png", "synthetic_notes.json"):
        assert (tmp_path / name).stat().st_size > 0
    monthly = pd.read_csv(tmp_path / "synthetic_monthly.csv")
    assert {"obs_stl1", "physics_stl1", "t2m_forcing"} <= set(monthly.columns)


def test_validate_sites_missing_inputs_are_one_line_errors(tmp_path):
    from geothaw.validation import validate_sites

    with pytest.raises(InputDataError, match="site data folder not found") as e:
        validate_sites(None, tmp_path, tmp_path / "out", data_dir=tmp_path / "nope")
    assert "\n" not in str(e.value)
    (tmp_path / "data").mkdir()
    with pytest.raises(InputDataError, match="no checkpoints"):
        validate_sites(None, tmp_path / "run", tmp_path / "out", data_dir=tmp_path / "data")


def test_env_var_overrides_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv(S.SITE_DATA_ENV, str(tmp_path))
    assert S.default_data_dir() == tmp_path
    with pytest.raises(InputDataError, match="not found"):
        S.load_site("gsm3")  # folder exists but holds no Goldstream files


# ---- the real reference data ---------------------------------------------------------------------------
@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"real site data not available at {REAL_DATA} (a user's clone)")
def test_real_sites_read_with_expected_layout():
    gsm3 = S.load_site("gsm3", REAL_DATA)
    assert gsm3.latitude == pytest.approx(64.993) and gsm3.elevation == 433.0
    assert gsm3.layer_status["stl4"].startswith(INSUFFICIENT)  # 110/130 cm sensors never collected (7777)
    obs = gsm3.observed.dropna(how="all")
    assert len(obs) >= 30 and obs.index.min() >= pd.Timestamp("2015-10-01")
    assert obs["stl1"].between(-15, 20).all() and 1.0 < obs["stl3"].mean() < 5.0  # no permafrost, ≈ +2.6 °C
    assert gsm3.monthly["t2m"].between(-35, 25).all() or gsm3.monthly["t2m"].isna().any()
    assert 150.0 < (gsm3.snow_density or 0) < 300.0  # taiga snow from the end-of-winter survey
    mat = S.load_site("toolik_mat89", REAL_DATA)
    assert mat.layer_status["stl1"].startswith(INSUFFICIENT) and mat.layer_status["stl2"].startswith("ok")
    assert mat.observed.abs().max().max() < 30.0  # the +186 °C broken thermistor never reaches a layer mean

    from geothaw.validation import read_gipl

    g = read_gipl(REAL_DATA / "gipl_barrow_cmip5_permamodel")
    assert len(g["air"]) == 1620 and g["result"].shape == (1620, 11)
    assert g["depths"][0] == 0.0 and g["depths"][-1] == pytest.approx(1.05)
