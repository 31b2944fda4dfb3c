"""Versions of geothaw and the libraries whose behaviour shapes its outputs (for bug reports and provenance)."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def collect_versions() -> dict[str, str]:
    out = {"geothaw": _v("geothaw"), "python": platform.python_version()}
    for pkg in ("numpy", "xarray", "dask", "torch", "rasterio", "rioxarray", "pyproj", "geopandas", "cartopy", "xsdba", "numba"):
        out[pkg] = _v(pkg)
    try:
        import rasterio

        out["GDAL"] = rasterio.__gdal_version__
    except Exception:  # noqa: BLE001 - reporting only
        out["GDAL"] = "unavailable"
    try:
        import pyproj

        out["PROJ"] = pyproj.proj_version_str
    except Exception:  # noqa: BLE001
        out["PROJ"] = "unavailable"
    return out


def _v(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"
