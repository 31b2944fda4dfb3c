"""Projection: dask over spatial chunks gives exactly what one direct prediction gives; distributed works too."""

from __future__ import annotations

import numpy as np
import pytest
from test_features import make_toy_dataset, tiny_config

from geothaw.features import make_inputs, predictions_to_dataset
from geothaw.products import yearly_products
from geothaw.projection import block_chunks, dask_scheduler, project_products
from geothaw.training import load_checkpoint, predict, train_model

YEARS = np.arange(1983, 1998)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    toy = make_toy_dataset()
    run = tmp_path_factory.mktemp("run")
    res = train_model(tiny_config(epochs=1), toy, "gru", run)
    return toy, res.checkpoint


def _direct(toy, checkpoint):
    lm = load_checkpoint(checkpoint)
    inputs = make_inputs(toy, YEARS, lm.features)
    pred = predictions_to_dataset(predict(lm.model, lm.features, inputs), inputs, toy, YEARS)
    import xarray as xr

    soil = xr.concat([pred[f"stl{i}"] for i in range(1, 5)], dim="depth").transpose("time", "depth", ...)
    return yearly_products(soil)


def test_chunked_projection_equals_direct_prediction(trained):
    toy, ckpt = trained
    forcing = toy.drop_vars(["stl1", "stl2", "stl3", "stl4"])
    lazy = project_products(forcing, ckpt, years=YEARS, scenario="historical", chunk_cells=3, batch_size=64)
    assert lazy["magt"].chunks is not None  # nothing computed yet
    with dask_scheduler(None, workers=2):
        out = lazy.compute()
    ref = _direct(toy, ckpt)
    for v in ("magt", "tmin", "tmax", "alt", "first_exceedance_year"):
        np.testing.assert_allclose(out[v].values, ref[v].values, rtol=1e-5, atol=1e-5, equal_nan=True)
    for v in ref.data_vars:  # the files written from the lazy result get units, names and flag fill values
        assert lazy[v].attrs == ref[v].attrs and lazy[v].attrs, v
    assert lazy["depth"].attrs == ref["depth"].attrs and lazy["depth"].attrs["positive"] == "down"
    assert np.isnan(out["magt"].values[:, :, 0, 0]).all()  # the sea cell stays empty
    assert np.isfinite(out["magt"].values[:, :, 1:, 1:]).all()


def test_block_products_are_the_products_of_the_predicted_block(trained, monkeypatch):
    """Reducing cell group by cell group gives exactly the products of the block's whole monthly series."""
    import geothaw.projection as projection

    toy, ckpt = trained
    forcing = toy.drop_vars(["stl1", "stl2", "stl3", "stl4"])
    forcing["t2m"][:, 2, 3] = np.nan  # a second sea cell, inside the grid
    monkeypatch.setattr(projection, "CELLS_PER_GROUP", 4)  # several groups per slab, the last one partial
    monkeypatch.setattr(projection, "SLAB_CELLS", 2 * forcing.sizes["longitude"])  # slabs of two rows
    kw = {"checkpoint": str(ckpt), "years": YEARS, "scenario": "historical", "batch_size": 16}
    grouped = projection.block_products(forcing, **kw)
    whole = yearly_products(projection.predict_block(forcing, **kw))
    assert set(grouped.data_vars) == set(whole.data_vars)
    for v in whole.data_vars:
        assert grouped[v].dims == whole[v].dims and grouped[v].dtype == whole[v].dtype, v
        np.testing.assert_array_equal(grouped[v].values, whole[v].values, err_msg=v)
        assert grouped[v].attrs == whole[v].attrs, v
    assert grouped["depth"].attrs == whole["depth"].attrs
    assert (grouped["exceeds_zero"].values[:, :, 2, 3] == -1).all()  # sea: the flags' nodata
    assert np.isfinite(grouped["magt"].values[:, :, 1:, 1:]).sum() == YEARS.size * 4 * (
        (forcing.sizes["latitude"] - 1) * (forcing.sizes["longitude"] - 1) - 1)


def test_blocks_keep_their_cell_budget_on_narrow_domains():
    # full-size domain: square blocks of the configured edge
    assert block_chunks((211, 591), 64) == {"latitude": 64, "longitude": 64}
    # a domain narrower than the edge gets wider blocks of about the same cell count (memory follows cells)
    narrow = block_chunks((53, 148), 64)
    assert narrow == {"latitude": 53, "longitude": 77}
    assert 0.95 * 64 * 64 < narrow["latitude"] * narrow["longitude"] <= 64 * 64
    # never larger than the domain
    assert block_chunks((3, 5), 64) == {"latitude": 3, "longitude": 5}


def test_projection_blocks_follow_the_cell_budget(trained):
    toy, ckpt = trained
    forcing = toy.drop_vars(["stl1", "stl2", "stl3", "stl4"])
    ny, nx = forcing.sizes["latitude"], forcing.sizes["longitude"]
    lazy = project_products(forcing, ckpt, years=YEARS, scenario="historical", chunk_cells=3)
    expected = block_chunks((ny, nx), 3)
    assert lazy["magt"].chunks[2][0] == expected["latitude"]
    assert lazy["magt"].chunks[3][0] == expected["longitude"]


@pytest.mark.slow
def test_projection_on_a_local_process_cluster(trained):
    from distributed import LocalCluster

    toy, ckpt = trained
    forcing = toy.drop_vars(["stl1", "stl2", "stl3", "stl4"])
    lazy = project_products(forcing, ckpt, years=YEARS, scenario="historical", chunk_cells=4)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with dask_scheduler(cluster.scheduler_address) as client:
            assert client is not None
            out = lazy.compute()
    ref = _direct(toy, ckpt)
    np.testing.assert_allclose(out["magt"].values, ref["magt"].values, rtol=1e-5, atol=1e-5, equal_nan=True)


def _two_scenarios(history_differs: bool = False):
    """Forcing of two scenarios over 1984–2009 that share their history to 2005 (unless ``history_differs``)."""
    base = make_toy_dataset(start=1984, years=26).drop_vars(["stl1", "stl2", "stl3", "stl4"])
    later = (base["time"].dt.year >= 2006) | ((base["time"].dt.year == 1995) & history_differs)
    warm = base.assign(t2m=base["t2m"] + later * 1.5)
    return {"rcp45": base, "rcp85": warm}


@pytest.mark.parametrize("history_differs", [False, True])
def test_scenarios_predict_their_shared_history_once(trained, monkeypatch, history_differs):
    import dask

    import geothaw.projection as projection

    _, ckpt = trained
    years = np.arange(1995, 2010)
    forcings = _two_scenarios(history_differs)
    asked = []
    real = projection.block_products
    monkeypatch.setattr(projection, "block_products",
                        lambda block, **kw: asked.append((kw["scenario"], kw["years"].tolist())) or real(block, **kw))
    with dask.config.set(scheduler="synchronous"):
        both = projection.project_scenarios(forcings, ckpt, years=years, chunk_cells=8).compute()
        separate = {s: project_products(f, ckpt, years=years, scenario=s, chunk_cells=8).compute()
                    for s, f in forcings.items()}
    # one block: the first scenario in full; the second from 2006 on only when its history is the same
    assert asked[:2] == [("rcp45", years.tolist()),
                         ("rcp85", years.tolist() if history_differs else list(range(2006, 2010)))]
    for s in forcings:
        for v in ("magt", "tmin", "tmax", "alt", "exceeds_zero", "first_exceedance_year"):
            np.testing.assert_allclose(both[v].sel(scenario=s).values, separate[s][v].values, rtol=1e-5, atol=1e-5,
                                       equal_nan=True)
    hist = both["magt"].sel(year=slice(None, 2005))
    identical = np.array_equal(hist.sel(scenario="rcp45").values, hist.sel(scenario="rcp85").values, equal_nan=True)
    assert identical != history_differs
    later = both["magt"].sel(year=slice(2006, None))
    assert float((later.sel(scenario="rcp85") - later.sel(scenario="rcp45")).mean()) > 0.3  # the warmer scenario warms


def test_signal_looking_past_2005_turns_sharing_off(trained):
    import dataclasses

    from geothaw.projection import shared_history_end

    spec = load_checkpoint(trained[1]).features
    assert spec.anomaly_baseline == (1986, 2005)
    assert shared_history_end(spec) == 2005
    assert shared_history_end(dataclasses.replace(spec, anomaly_baseline=(1981, 2010))) is None
    assert shared_history_end(dataclasses.replace(spec, scenario_signal="rcp_forcing",
                                                  anomaly_baseline=(1981, 2010))) == 2005


def test_scenario_names_must_not_clash_with_the_block_layout(trained):
    from geothaw.errors import InputDataError
    from geothaw.projection import project_scenarios

    forcings = _two_scenarios()
    with pytest.raises(InputDataError, match="must not contain"):
        project_scenarios({"rcp|45": forcings["rcp45"]}, trained[1], years=[1995])


def test_large_arrays_get_their_own_mappings_on_glibc():
    import platform

    from geothaw.projection import map_large_arrays_directly

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert map_large_arrays_directly() is True
