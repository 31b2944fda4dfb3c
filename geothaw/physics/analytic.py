"""Closed-form soil-thermal solutions used to test the numerical solver and as cheap baselines.

All functions are plain numpy and broadcast over their arguments.  Units are SI unless a name says
otherwise (temperatures in °C, times in seconds, depths in metres).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: volumetric latent heat of fusion of water, J m-3 (per unit volume of water)
LATENT_HEAT_VOLUMETRIC = 3.34e8
#: one year in seconds (365-day year)
SECONDS_PER_YEAR = 365.0 * 86400.0
#: heat capacity of ice per unit mass, J kg-1 K-1 (snow sensible heat in Kudryavtsev)
_ICE_SPECIFIC_HEAT = 2090.0


def damping_depth(diffusivity: ArrayLike, period: ArrayLike = SECONDS_PER_YEAR) -> np.ndarray:
    """Damping depth d = sqrt(2 kappa / omega) of a periodic surface wave (m)."""
    omega = 2.0 * np.pi / np.asarray(period, dtype=float)
    return np.sqrt(2.0 * np.asarray(diffusivity, dtype=float) / omega)


def annual_sinusoid(
    z: ArrayLike,
    t: ArrayLike,
    mean: ArrayLike,
    amplitude: ArrayLike,
    diffusivity: ArrayLike,
    period: ArrayLike = SECONDS_PER_YEAR,
) -> np.ndarray:
    """Periodic half-space solution T = mean + A exp(-z/d) sin(omega t - z/d).

    The surface temperature is ``mean + amplitude * sin(omega * t)``; ``t`` and ``period`` in seconds,
    ``diffusivity`` in m2 s-1, ``z`` in m (positive down).
    """
    z = np.asarray(z, dtype=float)
    d = damping_depth(diffusivity, period)
    omega = 2.0 * np.pi / np.asarray(period, dtype=float)
    return mean + amplitude * np.exp(-z / d) * np.sin(omega * np.asarray(t, dtype=float) - z / d)


def annual_sinusoid_interval_mean(
    z: ArrayLike,
    t0: ArrayLike,
    t1: ArrayLike,
    mean: ArrayLike,
    amplitude: ArrayLike,
    diffusivity: ArrayLike,
    period: ArrayLike = SECONDS_PER_YEAR,
) -> np.ndarray:
    """Exact time mean of :func:`annual_sinusoid` over ``[t0, t1]`` (e.g. a monthly mean)."""
    z = np.asarray(z, dtype=float)
    t0 = np.asarray(t0, dtype=float)
    t1 = np.asarray(t1, dtype=float)
    d = damping_depth(diffusivity, period)
    omega = 2.0 * np.pi / np.asarray(period, dtype=float)
    phase0 = omega * t0 - z / d
    phase1 = omega * t1 - z / d
    wave = (np.cos(phase0) - np.cos(phase1)) / (omega * (t1 - t0))
    return mean + amplitude * np.exp(-z / d) * wave


def stefan_thaw_depth(
    k_thawed: ArrayLike,
    thawing_index_degC_s: ArrayLike,
    water_content: ArrayLike,
    n_t: ArrayLike = 1.0,
) -> np.ndarray:
    """Stefan thaw depth Z = sqrt(2 k n_t I / (L theta)) in m.

    ``thawing_index_degC_s`` is the surface thawing index in °C·s (degree-days × 86400).  Stefan ignores
    sensible heat, so it slightly over-predicts a full conduction solution.
    """
    latent = LATENT_HEAT_VOLUMETRIC * np.asarray(water_content, dtype=float)
    index = np.maximum(np.asarray(thawing_index_degC_s, dtype=float), 0.0)
    return np.sqrt(2.0 * np.asarray(k_thawed, dtype=float) * np.asarray(n_t, dtype=float) * index / latent)


def sturm_snow_conductivity(density_kg_m3: ArrayLike) -> np.ndarray:
    """Effective snow thermal conductivity (W m-1 K-1), Sturm et al. (1997) quadratic in g cm-3."""
    rho = np.asarray(density_kg_m3, dtype=float) / 1000.0
    return 0.138 - 1.01 * rho + 3.233 * rho**2


def kudryavtsev_alt(
    mean_air_temperature: ArrayLike,
    air_amplitude: ArrayLike,
    snow_depth: ArrayLike,
    *,
    k_thawed: ArrayLike,
    k_frozen: ArrayLike,
    c_thawed: ArrayLike,
    water_content: ArrayLike,
    snow_density: ArrayLike = 250.0,
    period: float = SECONDS_PER_YEAR,
) -> dict[str, np.ndarray]:
    """Kudryavtsev active-layer thickness and TTOP (Anisimov et al. 1997; Romanovsky & Osterkamp 1997).

    Returns a dict with ``surface_mean`` and ``surface_amplitude`` (after the snow correction), ``ttop``
    (mean temperature at the top of permafrost, °C), ``amplitude_at_table`` and ``alt`` (m).  Where
    ``ttop > 0`` there is no permafrost and ``alt`` is the seasonal freezing/thawing depth estimate;
    callers decide how to use it.  The TTOP term uses sqrt(1 - T_s^2/A_s^2) (the correct form).
    """
    t_air = np.asarray(mean_air_temperature, dtype=float)
    a_air = np.asarray(air_amplitude, dtype=float)
    h_snow = np.asarray(snow_depth, dtype=float)
    k_t = np.asarray(k_thawed, dtype=float)
    k_f = np.asarray(k_frozen, dtype=float)
    c = np.asarray(c_thawed, dtype=float)
    q_l = LATENT_HEAT_VOLUMETRIC * np.asarray(water_content, dtype=float)

    # snow warms the mean and damps the amplitude of the surface wave (exponential attenuation)
    rho_snow = np.asarray(snow_density, dtype=float)
    k_snow = sturm_snow_conductivity(rho_snow)
    c_snow = rho_snow * _ICE_SPECIFIC_HEAT
    delta_a = a_air * (1.0 - np.exp(-h_snow * np.sqrt(np.pi * c_snow / (k_snow * period))))
    t_s = t_air + 2.0 / np.pi * delta_a
    a_s = a_air - delta_a

    # thermal offset: TTOP from the surface wave, asymmetric conductivity of thawed vs frozen ground
    ratio = np.clip(t_s / a_s, -1.0, 1.0)
    offset = a_s * (k_t - k_f) / np.pi * (ratio * np.arcsin(ratio) + np.sqrt(1.0 - ratio**2))
    numerator = 0.5 * t_s * (k_f + k_t) + offset
    ttop = numerator / np.where(numerator < 0.0, k_f, k_t)

    # amplitude at the permafrost table, then the ALT itself (these use |TTOP|)
    t_abs = np.abs(ttop)
    half = q_l / (2.0 * c)
    a_z = (a_s - t_abs) / np.log((a_s + half) / (t_abs + half)) - half
    root_ct = np.sqrt(k_t * period * c / np.pi)
    root_kc = np.sqrt(k_t * period / (np.pi * c))
    denom = 2.0 * a_z * c + q_l
    z_c = 2.0 * (a_s - t_abs) * root_ct / denom
    corr = (2.0 * a_z * c * z_c + q_l * z_c) * q_l * root_kc
    corr = corr / (2.0 * a_z * c * z_c + q_l * z_c + (2.0 * a_z * c + q_l) * root_kc)
    alt = (2.0 * (a_s - t_abs) * root_ct + corr) / denom
    return {
        "surface_mean": t_s,
        "surface_amplitude": a_s,
        "ttop": ttop,
        "amplitude_at_table": a_z,
        "alt": alt,
    }
