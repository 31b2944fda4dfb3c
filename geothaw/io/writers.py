"""Atomic writers for NetCDF (CF) and GeoTIFF products."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from ..domain import Domain
from .atomic import atomic_path


def write_netcdf(ds: xr.Dataset, path: str | Path, **kwargs) -> Path:
    """Write ``ds`` to NetCDF4 atomically (temp file + rename)."""
    with atomic_path(path, suffix=".nc") as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", **kwargs)
    return Path(path)


def write_domain(domain: Domain, path: str | Path) -> Path:
    """Land fraction, land mask, latitude band and cell area on the domain grid, georeferenced (EPSG:4326)."""
    import rioxarray  # noqa: F401 - registers .rio

    ds = xr.Dataset({
        "lsm": domain.land_fraction(),
        "land": domain.land_mask().astype("int8"),
        "band": domain.bands().astype("int8"),
        "cell_area": domain.cell_area_km2().astype("float32"),
    })
    ds["land"].attrs = {"long_name": "land mask (lsm >= 0.5)", "flag_values": [0, 1], "flag_meanings": "sea land"}
    ds.attrs = {"Conventions": "CF-1.8", "title": "geothaw domain", "band_edges": list(domain.band_edges),
                "resolution_deg": domain.resolution}
    ds = ds.rio.set_spatial_dims(x_dim="longitude", y_dim="latitude").rio.write_crs("EPSG:4326")
    ds = ds.rio.write_coordinate_system()
    return write_netcdf(ds, path)
