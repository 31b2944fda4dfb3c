"""geothaw: deep-learning projections of Alaskan active-layer soil temperature.

Public API (heavy libraries are imported lazily so ``import geothaw`` and ``geothaw --help`` stay fast).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Domain": "geothaw.domain",
    "load_basemap_layer": "geothaw.domain",
    "alaska_boundary": "geothaw.domain",
    "RunConfig": "geothaw.config",
    "load_config": "geothaw.config",
    "GeothawError": "geothaw.errors",
    "ConfigError": "geothaw.errors",
    "InputDataError": "geothaw.errors",
    "rcp_forcing": "geothaw.scenarios",
    "open_era5land": "geothaw.io.era5land",
    "open_cmip5": "geothaw.io.cmip5",
    "download": "geothaw.io.cds",
    "build_world": "geothaw.synthetic",
    "solve_columns": "geothaw.physics",
    "SoilProperties": "geothaw.physics",
    "derive_snow": "geothaw.snow",
    "BiasAdjustment": "geothaw.biascorrect",
    "train_all": "geothaw.training",
    "load_checkpoint": "geothaw.training",
    "evaluate_run": "geothaw.evaluation",
    "project_products": "geothaw.projection",
    "project_scenarios": "geothaw.projection",
    "yearly_products": "geothaw.products",
    "run_pipeline": "geothaw.pipeline",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geothaw' has no attribute {name!r}")
