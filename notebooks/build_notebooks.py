"""Writes the example notebooks (kept as code here so they stay reviewable); run from the repo root."""

from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent

SETUP = '''import os
from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr

from geothaw.config import load_config
from geothaw.pipeline import run_pipeline

# Use an existing run (GEOTHAW_RUN_DIR) or run the quick pipeline here (a coarse 1° world; minutes).
run_dir = os.environ.get("GEOTHAW_RUN_DIR")
if run_dir is None:
    cfg = load_config(base="quick")
    run_pipeline(cfg)
    run_dir = Path(cfg.output.runs_dir) / cfg.name
run_dir = Path(run_dir)
print("run directory:", run_dir)'''

quick = nbf.v4.new_notebook()
quick.cells = [
    nbf.v4.new_markdown_cell("# geothaw quickstart\n\nRun the pipeline from Python, open the projected products "
                             "with xarray, and look at a depth profile and one cell's time series."),
    nbf.v4.new_code_cell(SETUP),
    nbf.v4.new_code_cell('ds = xr.open_dataset(run_dir / "products" / "ensemble_rcp85.nc")\nds'),
    nbf.v4.new_markdown_cell("Pick the land cell closest to Fairbanks (longitudes run continuously in degrees east)."),
    nbf.v4.new_code_cell('''from geothaw.domain import wrap_longitude

valid = ds["magt"].isel(year=0, depth=0).notnull()
target_lat, target_lon = 64.84, float(wrap_longitude(-147.72, 0.0))
dist = (ds["latitude"] - target_lat) ** 2 + (ds["longitude"] - target_lon) ** 2
idx = dist.where(valid).argmin(...)
point = ds.isel(latitude=int(idx["latitude"]), longitude=int(idx["longitude"]))
print(float(point.latitude), float(point.longitude))'''),
    nbf.v4.new_code_cell('''fig, ax = plt.subplots(figsize=(4, 5))
years = ds["year"].values
for i in (0, -1):
    ax.plot(point["magt"].isel(year=i).values, point["depth"].values, marker="o", label=str(years[i]))
ax.axvline(0, color="0.5", lw=0.8)
ax.invert_yaxis()
ax.set_xlabel("mean annual ground temperature (°C)")
ax.set_ylabel("depth (m)")
ax.legend()
assert point["magt"].notnull().all()'''),
    nbf.v4.new_code_cell('''point["magt"].plot.line(x="year", hue="depth", figsize=(7, 3.5))
plt.axhline(0, color="0.5", lw=0.8)
plt.title("RCP8.5 ensemble: MAGT at the four ERA5-Land layers")'''),
]

spatial = nbf.v4.new_notebook()
spatial.cells = [
    nbf.v4.new_markdown_cell("# Spatial analysis of projected thaw\n\nZonal statistics over regions with geopandas, "
                             "area above 0 °C through time, and a custom map."),
    nbf.v4.new_code_cell(SETUP),
    nbf.v4.new_code_cell('''import geopandas as gpd
import numpy as np
from shapely.geometry import box

from geothaw.domain import Domain, alaska_boundary

ds = xr.open_dataset(run_dir / "products" / "ensemble_rcp85.nc")
# Regions in the grid's continuous longitudes, clipped to the Alaska polygon.
ak = alaska_boundary("50m", continuous_lon=True).dissolve()
regions = gpd.GeoDataFrame(
    {"region": ["North Slope", "Interior", "South"]},
    geometry=[box(150, 68, 240, 75), box(150, 62, 240, 68), box(150, 48, 240, 62)], crs="EPSG:4326",
).clip(ak)
regions'''),
    nbf.v4.new_code_cell('''lon2d, lat2d = np.meshgrid(ds["longitude"].values, ds["latitude"].values)
cells = gpd.GeoDataFrame({"row": np.repeat(np.arange(ds.sizes["latitude"]), ds.sizes["longitude"]),
                          "col": np.tile(np.arange(ds.sizes["longitude"]), ds.sizes["latitude"])},
                         geometry=gpd.points_from_xy(lon2d.ravel(), lat2d.ravel()), crs="EPSG:4326")
joined = gpd.sjoin(cells, regions, predicate="within")
magt = ds["magt"].sel(depth=0.64, method="nearest").values  # (year, lat, lon)
rows = []
for name, g in joined.groupby("region"):
    series = np.nanmean(magt[:, g["row"].values, g["col"].values], axis=1)
    rows.append({"region": name, "cells": len(g),
                           **{f"{y0}-{y1}": float(np.nanmean(series[(ds.year.values >= y0) & (ds.year.values <= y1)]))
                              for y0, y1 in ((1991, 2020), (2041, 2070), (2071, 2100))}})
import pandas as pd

zonal = pd.DataFrame(rows).set_index("region").round(2)
zonal'''),
    nbf.v4.new_code_cell('''from geothaw.domain import cell_area_albers_km2

area = cell_area_albers_km2(ds["latitude"].values, ds["longitude"].values,
                            float(abs(ds["latitude"][1] - ds["latitude"][0])))
above = (ds["exceeds_zero"] == 1).values  # (year, depth, lat, lon)
km2 = (above * area[None, None]).sum(axis=(2, 3))
for i, d in enumerate(ds["depth"].values):
    plt.plot(ds["year"], km2[:, i] / 1e3, label=f"{d:g} m")
plt.ylabel("area with MAGT > 0 °C (1000 km²)")
plt.legend(title="depth")
assert km2.max() > 0'''),
    nbf.v4.new_code_cell('''from geothaw.maps import plot_magt

late = ds["magt"].sel(year=slice(2071, 2100)).mean("year").sel(depth=0.64, method="nearest")
png = plot_magt(late, run_dir / "maps" / "notebook_magt_2071-2100.png", title="RCP8.5, 28–100 cm, 2071–2100")
from IPython.display import Image
Image(str(png))'''),
]

for name, nb in (("01_quickstart.ipynb", quick), ("02_spatial_analysis.ipynb", spatial)):
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(nb, HERE / name)
    print("wrote", HERE / name)
