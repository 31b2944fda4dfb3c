"""Physics: a vectorised 1-D freeze/thaw heat solver and closed-form references (sinusoid, Stefan, Kudryavtsev)."""

from __future__ import annotations

from geothaw.physics.analytic import (
    annual_sinusoid,
    annual_sinusoid_interval_mean,
    damping_depth,
    kudryavtsev_alt,
    stefan_thaw_depth,
    sturm_snow_conductivity,
)
from geothaw.physics.heat import (
    ERA5_LAYER_BOUNDS,
    ERA5_LAYER_MIDDEPTHS,
    LATENT_HEAT,
    NODE_DEPTHS,
    SoilProperties,
    SolverResult,
    solve_columns,
    solve_columns_daily,
)

__all__ = [
    "ERA5_LAYER_BOUNDS",
    "ERA5_LAYER_MIDDEPTHS",
    "LATENT_HEAT",
    "NODE_DEPTHS",
    "SoilProperties",
    "SolverResult",
    "annual_sinusoid",
    "annual_sinusoid_interval_mean",
    "damping_depth",
    "kudryavtsev_alt",
    "solve_columns",
    "solve_columns_daily",
    "stefan_thaw_depth",
    "sturm_snow_conductivity",
]
