"""The run report's tables: the long projection-skill CSV made readable."""

from __future__ import annotations

import json

import pandas as pd

from geothaw.report import _section_cost, area_table, skill_tables, thaw_share_table


def _skill_rows(model: str, shift: float) -> list[dict]:
    rows = []
    for scen in ("rcp45", "rcp85"):
        for era in ("2041-2070", "2071-2100"):
            for i, depth in enumerate(("stl1", "stl2")):
                base = {"model": model, "scenario_signal": "warming_anomaly", "scenario": scen, "era": era, "depth": depth}
                rows += [{**base, "metric": "magt_rmse", "value": 0.1 * (i + 1) + shift},
                         {**base, "metric": "magt_bias", "value": -0.05 * (i + 1)}]
    for i, depth in enumerate(("stl1", "stl2")):
        base = {"model": model, "scenario_signal": "warming_anomaly", "scenario": "rcp85-rcp45", "era": "2071-2100",
                "depth": depth}
        rows += [{**base, "metric": "divergence_pred", "value": 1.5 + shift},
                 {**base, "metric": "divergence_truth", "value": 2.0},
                 {**base, "metric": "divergence_error", "value": 0.3 * (i + 1)}]
    return rows


def test_skill_tables_put_depths_in_columns_and_compare_the_divergence():
    eras, div = skill_tables(pd.DataFrame(_skill_rows("gru", 0.0)))
    assert list(eras.columns) == ["scenario", "era", "stl1 RMSE (bias)", "stl2 RMSE (bias)"]
    assert len(eras) == 4
    assert list(eras["scenario"].unique()) == ["RCP4.5", "RCP8.5"]  # display names
    row = eras[(eras["scenario"] == "RCP8.5") & (eras["era"] == "2071-2100")].iloc[0]
    assert row["stl1 RMSE (bias)"] == "0.10 (-0.05)" and row["stl2 RMSE (bias)"] == "0.20 (-0.10)"
    assert list(div["depth"]) == ["stl1", "stl2"] and set(div["scenario"]) == {"RCP8.5 − RCP4.5"}
    assert list(div["modelled / physics"]) == ["75 %", "75 %"]
    assert list(div["cell RMSE of the difference (°C)"]) == ["0.30", "0.60"]
    assert "model" not in eras.columns  # one model: no column for it


def test_skill_tables_keep_the_model_column_when_several_are_scored():
    eras, div = skill_tables(pd.DataFrame(_skill_rows("gru", 0.0) + _skill_rows("bilstm", 0.5)))
    assert eras.columns[0] == "model" and len(eras) == 8
    bilstm = div[div["model"] == "bilstm"]
    assert list(bilstm["modelled / physics"]) == ["100 %", "100 %"]


def test_thaw_share_table_pairs_the_model_with_the_physics():
    rows = _skill_rows("gru", 0.0)
    assert thaw_share_table(pd.DataFrame(rows)).empty  # a skill table from before these rows: no table
    for scen in ("rcp45", "rcp85"):
        for i, depth in enumerate(("stl1", "stl2")):
            base = {"model": "gru", "scenario_signal": "warming_anomaly", "scenario": scen, "era": "2071-2100",
                    "depth": depth}
            rows += [{**base, "metric": "above0_share_pred", "value": 0.6 + 0.1 * i},
                     {**base, "metric": "above0_share_truth", "value": 0.75}]
    table = thaw_share_table(pd.DataFrame(rows))
    assert list(table.columns) == ["scenario", "era", "stl1", "stl2"] and len(table) == 2
    row = table[table["scenario"] == "RCP8.5"].iloc[0]
    assert row["stl1"] == "60 % (75 %)" and row["stl2"] == "70 % (75 %)"


def test_run_cost_ends_with_the_total():
    text = "\n".join(_section_cost({"world": {"seconds": 60.0, "peak_rss_gib": 1.0},
                                    "train": {"seconds": 120.5, "peak_rss_gib": 2.5}}))
    assert "| **total** | **180.5** (3.0 min) | 2.50 |" in text
    where = "\n".join(_section_cost({"world": {"seconds": 60.0}}, {"cpu": "Some CPU 9000", "cores": 2}))
    assert "ran on 2 cores of Some CPU 9000." in where


def test_area_table_names_the_layers_and_gives_the_land_share():
    rows = [{"scenario": "rcp85", "era": era, "depth_m": d, "area_above_0C_km2": 1000.0 * (k + 1) + 10 * j,
             "land_area_km2": 4000.0, "fraction": (1000.0 * (k + 1) + 10 * j) / 4000.0}
            for k, era in enumerate(("1991-2020", "2071-2100")) for j, d in enumerate((0.035, 0.175, 0.64, 1.945))]
    table = area_table(pd.DataFrame(rows))
    assert list(table.columns) == ["scenario", "depth", "1991-2020", "2071-2100"]
    assert list(table["depth"]) == ["0–7 cm", "7–28 cm", "28–100 cm", "100–289 cm"]  # by depth, not by name
    assert table.iloc[3]["2071-2100"] == "2,030 (51 %)"


def test_stage_results_count_files_and_rank_the_trained_models():
    from geothaw.run_summary import _stage_result

    project = {"GCM_rcp45": "products/GCM_rcp45.nc", "ensemble_rcp45": "products/ensemble_rcp45.nc", "seconds": 4.0}
    assert _stage_result(project) == "files=2"
    train = {"gru": {"checkpoint": "checkpoints/gru.pt", "val_rmse": 0.52},
             "climatology": {"checkpoint": "checkpoints/climatology.pt", "val_rmse": 3.9},
             "bilstm": {"checkpoint": "checkpoints/bilstm.pt", "val_rmse": 0.468}, "peak_rss_gib": 1.0}
    assert _stage_result(train) == "validation RMSE bilstm 0.47, gru 0.52, climatology 3.90"
    assert _stage_result({"world": "data/synthetic/world-1", "land_cells": 274}) == "world=data/synthetic/world-1, land_cells=274"


def test_training_progress_names_finished_and_resumable_networks(tmp_path):
    from geothaw.run_summary import _training_progress

    assert _training_progress(tmp_path) == ""
    (tmp_path / "checkpoints").mkdir()
    for name in ("gru.pt", "climatology.pt", "bilstm.resume.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    assert _training_progress(tmp_path) == "trained: climatology, gru; resumes from its last epoch: bilstm"
    # mid-shortlist: a paused network has a checkpoint and its saved state; it is neither trained nor resuming
    (tmp_path / "checkpoints" / "tcn.pt").write_bytes(b"")
    (tmp_path / "checkpoints" / "tcn.resume.pt").write_bytes(b"")
    (tmp_path / "checkpoints" / "tcn.json").write_text(json.dumps({"metrics": {"paused": True}}))
    assert _training_progress(tmp_path) == ("trained: climatology, gru; paused for the shortlist: tcn; "
                                            "resumes from its last epoch: bilstm")
