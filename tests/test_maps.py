import warnings

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geothaw.domain import Domain
from geothaw.maps import land_share_above_zero, plot_exceedance, plot_first_exceedance, plot_magt, plot_overview
from geothaw.products import area_exceeding_zero, era_summaries, yearly_products


@pytest.fixture(scope="module")
def eras():
    d = Domain().coarsen(5)
    land = d.land_mask().values
    years = np.arange(1991, 2101)
    # MAGT: colder to the north, warming through time, faster under rcp85
    base = (60.0 - d.latitude)[:, None] * 0.8 + 0 * d.longitude

    def scenario(rate):
        magt = base[None] + rate * (years - 1991)[:, None, None]
        monthly = magt[:, None, None] + 10 * np.sin(2 * np.pi * (np.arange(12) - 3.5) / 12)[None, :, None, None, None] * 0
        data = np.repeat(magt[:, None, None, :, :], 12, axis=1) + np.linspace(-8, 8, 12)[None, :, None, None, None]
        data = np.repeat(data, 4, axis=2)
        data[..., ~land] = np.nan
        da = xr.DataArray(data.reshape(len(years) * 12, 4, *d.shape).astype("float32"),
                          dims=("time", "depth", "latitude", "longitude"),
                          coords={"time": pd.date_range("1991-01-01", periods=len(years) * 12, freq="MS"), **d.coords()})
        del monthly
        return yearly_products(da)

    return {"rcp45": scenario(0.03), "rcp85": scenario(0.07)}


def _not_blank(path):
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 400
    assert img[..., :3].std() > 0.05  # something was drawn


def test_maps_draw_offline(tmp_path, eras):
    import cartopy.io

    with warnings.catch_warnings():
        warnings.simplefilter("error", cartopy.io.DownloadWarning)
        summaries = {s: era_summaries(p) for s, p in eras.items()}
        e = summaries["rcp85"]
        _not_blank(plot_exceedance(e["magt"].sel(era="2071-2100").isel(depth=2), tmp_path / "exc.png", title="test"))
        _not_blank(plot_magt(e["magt"].sel(era="2071-2100").isel(depth=2), tmp_path / "magt.png", title="test"))
        _not_blank(plot_first_exceedance(eras["rcp85"]["first_exceedance_year"].isel(depth=2), tmp_path / "first.png", title="test"))
        _not_blank(plot_overview(summaries, tmp_path / "overview.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exc.png", "first.png", "magt.png", "overview.png"]


def test_overview_share_of_land_is_the_area_csv_fraction(eras):
    # the overview's titles and area_above_0C.csv must tell the same story: both weight cells by EPSG:3338 area
    d = Domain().coarsen(5)
    summaries = {scen: era_summaries(prod) for scen, prod in eras.items()}
    for scen, e in summaries.items():
        table = area_exceeding_zero(e, d.resolution, scen)
        for i, depth in enumerate(e["depth"].values):
            shares = land_share_above_zero(e, i)
            for row in table[table["depth_m"] == float(depth)].itertuples():
                assert shares[row.era] == pytest.approx(row.fraction, abs=1e-4)
    # by cell count the share differs: northern cells are smaller and colder
    e = summaries["rcp45"]
    magt = e["magt"].isel(era=0, depth=2)
    by_count = float((magt > 0).sum() / magt.notnull().sum())
    assert land_share_above_zero(e, 2)[str(e["era"].values[0])] > by_count + 0.005


def test_source_line_is_kept_to_the_map_frame():
    from geothaw.maps import SOURCE_LINE, source_lines

    extra = "model bilstm · synthetic Alaska · GCM ensemble mean · uncoloured land: no lasting exceedance"
    text = source_lines(extra, width=100)
    assert all(len(line) <= 100 for line in text.splitlines()) and len(text.splitlines()) == 2
    assert text.replace("\n", " · ") == f"{SOURCE_LINE} · projection EPSG:3338 · {extra}"  # nothing lost or reordered
    assert source_lines() == f"{SOURCE_LINE} · projection EPSG:3338"
