"""Versions of geothaw and the libraries whose behaviour shapes its outputs (for bug reports and provenance)."""

from __future__ import annotations

import platform
from pathlib import Path
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


def cpu_model() -> str:
    """The processor's name and widest vector instructions (timings in reports and benchmarks mean little
    without them; a virtual machine may show only the vendor's family name)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine() or "unknown"
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else ""
    return f"{name} ({isa})" if isa else name


def machine_info() -> dict[str, object]:
    """The machine a run or benchmark ran on: processor, usable cores, operating system."""
    from .cpus import available_cpus

    return {"cpu": cpu_model(), "cores": available_cpus(), "platform": platform.platform()}


def _v(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "not installed"
