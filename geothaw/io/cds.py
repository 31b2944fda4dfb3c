"""cdsapi requests for ERA5-Land monthly means over the domain (built offline; submitted only on demand).

Area and the antimeridian: CDS/MARS take ``area = [North, West, South, East]`` with longitudes in
−180…180, and an area may wrap around the globe: when West > East the box runs *eastward* from West to
East across 180° (ECMWF MARS "area" keyword: "Areas can be defined to wrap around the globe, e.g. …
area=75/60/10/-20"). The default Alaska domain (172 → 231 °E) is therefore requested as
``[72, 172, 51, -129]``, and the file comes back with longitudes 172…179.9 and −180…−129 — which the
readers put back on the domain's continuous axis. Coordinates are grid points, not cell edges.

Invariants (land-sea mask, geopotential, soil type): not part of the monthly-means dataset. They are
requested from ``reanalysis-era5-single-levels`` (one time step; ``grid`` 0.1° regrids ERA5's 0.25° fields
onto the ERA5-Land grid with MIR). ERA5-Land's own 0.1° ``lsm``/geopotential files are also linked from
ECMWF's "ERA5-Land: data documentation" page; either loads with ``open_era5land(..., invariants=...)``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..domain import Domain, to_pm180
from ..errors import ConfigError, GeothawError
from .atomic import atomic_path, write_text_atomic

DATASET = "reanalysis-era5-land-monthly-means"
INVARIANT_DATASET = "reanalysis-era5-single-levels"
NATIVE_RESOLUTION = 0.1
FIRST_YEAR = 1950
DEFAULT_VARIABLES: tuple[str, ...] = (
    "2m_temperature", "total_precipitation", "snow_depth_water_equivalent", "snow_depth", "snow_density",
    *(f"soil_temperature_level_{i}" for i in range(1, 5)),
    *(f"volumetric_soil_water_layer_{i}" for i in range(1, 5)),
)
INVARIANT_VARIABLES: tuple[str, ...] = ("land_sea_mask", "geopotential", "soil_type")
# CDS long name → short name in the files (REFERENCE §1); also the list of variables we accept.
SHORT_NAMES: dict[str, str] = {
    "2m_temperature": "t2m", "total_precipitation": "tp", "snow_depth_water_equivalent": "sd", "snow_depth": "sde",
    "snow_density": "rsn", "snow_cover": "snowc", "snowfall": "sf", "skin_temperature": "skt",
    "2m_dewpoint_temperature": "d2m", "surface_net_solar_radiation": "ssr",
    **{f"soil_temperature_level_{i}": f"stl{i}" for i in range(1, 5)},
    **{f"volumetric_soil_water_layer_{i}": f"swvl{i}" for i in range(1, 5)},
}


def request_area(domain: Domain) -> list[float]:
    """``[N, W, S, E]`` in −180…180; W > E when the domain crosses 180° (CDS wraps eastward)."""
    west = float(to_pm180(domain.lon_min))
    east = float(to_pm180(domain.lon_max))
    if east == -180.0:  # a domain ending exactly on 180° E
        east = 180.0
    return [round(domain.lat_max, 6), round(west, 6), round(domain.lat_min, 6), round(east, 6)]


def _common(domain: Domain) -> dict:
    req: dict = {"area": request_area(domain), "data_format": "netcdf", "download_format": "unarchived"}
    if abs(domain.resolution - NATIVE_RESOLUTION) > 1e-9:
        # A coarser domain (e.g. Domain.coarsen(5)): let CDS interpolate so the files match the grid.
        req["grid"] = [domain.resolution, domain.resolution]
    return req


def build_requests(
    domain: Domain,
    start_year: int,
    end_year: int,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    *,
    invariants: bool = True,
) -> list[dict]:
    """One cdsapi request per year (all months, 00:00) plus, optionally, the invariants request.

    Each item is ``{"dataset": ..., "request": {...}, "target": "<file name>"}``, i.e. the arguments of
    ``cdsapi.Client().retrieve(dataset, request, target)``.
    """
    if start_year > end_year:
        raise ConfigError(f"start year {start_year} is after end year {end_year}")
    if start_year < FIRST_YEAR:
        raise ConfigError(f"ERA5-Land starts in {FIRST_YEAR}; got start year {start_year}")
    unknown = [v for v in variables if v not in SHORT_NAMES]
    if unknown:
        raise ConfigError(f"unknown ERA5-Land variable '{unknown[0]}'; known: {', '.join(SHORT_NAMES)}")
    if not variables:
        raise ConfigError("no ERA5-Land variables requested")
    out = []
    for year in range(start_year, end_year + 1):
        request = {
            "product_type": ["monthly_averaged_reanalysis"],
            "variable": list(variables),
            "year": [f"{year:04d}"],
            "month": [f"{m:02d}" for m in range(1, 13)],
            "time": ["00:00"],
            **_common(domain),
        }
        out.append({"dataset": DATASET, "request": request, "target": f"era5land_monthly_{year:04d}.nc"})
    if invariants:
        request = {
            "product_type": ["reanalysis"],
            "variable": list(INVARIANT_VARIABLES),
            "year": ["2000"], "month": ["01"], "day": ["01"], "time": ["00:00"],
            **_common(domain),
        }
        request.setdefault("grid", [NATIVE_RESOLUTION, NATIVE_RESOLUTION])
        out.append({"dataset": INVARIANT_DATASET, "request": request, "target": "era5land_invariants.nc"})
    return out


def write_requests(requests: Sequence[dict], folder: str | os.PathLike) -> list[Path]:
    """Write each request as ``<target stem>.json`` (atomically), for review or for another machine."""
    folder = Path(folder)
    paths = []
    for item in requests:
        path = folder / (Path(item["target"]).stem + ".json")
        write_text_atomic(path, json.dumps(item, indent=2) + "\n")
        paths.append(path)
    return paths


def cdsapirc_path() -> Path:
    return Path(os.path.expanduser("~")) / ".cdsapirc"


def submit_requests(requests: Sequence[dict], folder: str | os.PathLike) -> list[Path]:
    """Retrieve each request into ``folder`` with cdsapi (needs ``~/.cdsapirc``); existing files are kept."""
    rc = cdsapirc_path()
    if not rc.is_file():
        raise ConfigError(f"no CDS credentials: {rc} does not exist; create it (see "
                          "https://cds.climate.copernicus.eu/how-to-api) or use --dry-run to only write the requests")
    try:
        import cdsapi  # only needed here: tests and dry runs never import it
    except ImportError as exc:
        raise GeothawError("submitting CDS requests needs the 'cdsapi' package: pip install cdsapi") from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    client = cdsapi.Client()
    out = []
    for item in requests:
        target = folder / item["target"]
        if not target.exists():  # a re-run resumes where a killed one stopped
            with atomic_path(target) as tmp:
                client.retrieve(item["dataset"], item["request"], str(tmp))
        out.append(target)
    return out


def download(
    domain: Domain,
    start: int,
    end: int,
    out: str | os.PathLike,
    dry_run: bool = False,
    *,
    variables: Sequence[str] = DEFAULT_VARIABLES,
    invariants: bool = True,
) -> list[Path]:
    """Build the requests, write them to ``out/requests/*.json`` and, unless ``dry_run``, download into ``out``.

    Returns the JSON paths on a dry run, else the downloaded files.
    """
    requests = build_requests(domain, start, end, variables, invariants=invariants)
    written = write_requests(requests, Path(out) / "requests")
    if dry_run:
        return written
    return submit_requests(requests, out)
