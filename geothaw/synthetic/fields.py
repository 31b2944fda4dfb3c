"""Smooth deterministic spatial fields: random Fourier features, polyline ridges and planar coordinates.

Everything here is an analytic function of position, so the same field can be evaluated on the 0.1°
domain, on a coarse GCM grid or on one block of land cells and always agrees.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

EARTH_KM_PER_DEG = 111.195


@lru_cache(maxsize=4)
def _to_albers():
    from pyproj import Transformer

    return Transformer.from_crs(4326, 3338, always_xy=True)


def albers_km(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alaska Albers (EPSG:3338) coordinates in km; longitudes in any convention.

    A real equal-area plane gives true distances for ridges and correlation lengths, and it is
    continuous across the antimeridian, unlike raw longitudes.
    """
    lon = (np.asarray(lon, dtype="float64") + 180.0) % 360.0 - 180.0
    x, y = _to_albers().transform(lon, np.asarray(lat, dtype="float64"))
    return np.asarray(x) / 1000.0, np.asarray(y) / 1000.0


def random_fourier_field(x_km: np.ndarray, y_km: np.ndarray, length_km: float, seed: int,
                         n_features: int = 96) -> np.ndarray:
    """A zero-mean, unit-variance Gaussian random field with squared-exponential correlation length.

    Random Fourier features: the field is a sum of cosines with wave vectors drawn from the kernel's
    spectrum, so it can be evaluated at any point set and is identical wherever it is evaluated.
    """
    rng = np.random.default_rng(seed)
    k = rng.normal(0.0, 1.0 / length_km, size=(n_features, 2))
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n_features)
    x = np.asarray(x_km, dtype="float64")
    y = np.asarray(y_km, dtype="float64")
    out = np.zeros(x.shape)
    for j in range(n_features):  # loop over features (≤ ~100), vectorised over all points
        out += np.cos(k[j, 0] * x + k[j, 1] * y + phase[j])
    return out * np.sqrt(2.0 / n_features)


def polyline_distance(x_km: np.ndarray, y_km: np.ndarray, vx: np.ndarray, vy: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Distance (km) from points to a polyline and the fractional vertex position of the nearest point.

    Returns ``(distance, s)`` where ``s`` in ``[0, n_vertices-1]`` lets callers interpolate per-vertex
    attributes (crest height, width) along the line.
    """
    x = np.asarray(x_km, dtype="float64")[..., None]
    y = np.asarray(y_km, dtype="float64")[..., None]
    ax, ay, bx, by = vx[:-1], vy[:-1], vx[1:], vy[1:]
    dx, dy = bx - ax, by - ay
    seg2 = np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / seg2, 0.0, 1.0)
    d = np.hypot(x - (ax + t * dx), y - (ay + t * dy))
    j = np.argmin(d, axis=-1)
    dist = np.take_along_axis(d, j[..., None], axis=-1)[..., 0]
    s = j + np.take_along_axis(t, j[..., None], axis=-1)[..., 0]
    return dist, s


def interp_along(s: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear interpolation of per-vertex ``values`` at fractional vertex positions ``s``."""
    return np.interp(s, np.arange(len(values), dtype="float64"), np.asarray(values, dtype="float64"))


def west(lon_w: float) -> float:
    """Degrees west → degrees east on the continuous 0–360 axis (e.g. 147.7 W → 212.3)."""
    return 360.0 - lon_w
