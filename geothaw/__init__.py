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
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geothaw' has no attribute {name!r}")
