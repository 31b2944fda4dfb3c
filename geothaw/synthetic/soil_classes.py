"""Ground classes of the synthetic Alaska and their thermal properties (REFERENCE §3 texture table).

Conductivities are interpolated between the table's dry and wet values by saturation; volumetric heat
capacities are solids (bulk density × specific heat) plus the water (thawed) or ice (frozen) they hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

C_WATER = 4.18e6  # J m-3 K-1
C_ICE = 1.93e6    # J m-3 K-1 (per m3 of water frozen, ice 917 kg m-3 × 2100 J kg-1 K-1)

# texture: bulk density kg m-3, specific heat J kg-1 K-1, k thawed dry/wet, k frozen dry/wet (REFERENCE §3)
TEXTURES: dict[str, tuple[float, float, float, float, float, float]] = {
    "silt": (1400.0, 730.0, 1.05, 1.90, 1.25, 2.40),
    "sand": (1300.0, 690.0, 1.05, 2.15, 1.25, 2.65),
    "clay": (1500.0, 900.0, 0.90, 1.70, 1.15, 2.00),
    "peat": (150.0, 200.0, 0.35, 0.60, 0.80, 2.00),
}


@dataclass(frozen=True)
class GroundClass:
    code: int
    name: str
    texture: str
    water_content: float      # m3 m-3 total water of the mineral soil
    porosity: float
    unfrozen_a: float
    unfrozen_b: float
    organic_thickness: float  # m of peat on top
    bedrock_depth: float      # m (inf = none within the column)
    slt: int                  # ERA5 soil type code (1 coarse … 6 organic)


CLASSES: tuple[GroundClass, ...] = (
    GroundClass(1, "bedrock", "sand", 0.08, 0.35, 0.02, -0.6, 0.02, 0.8, 1),
    GroundClass(2, "coarse_alluvium", "sand", 0.25, 0.40, 0.02, -0.6, 0.05, np.inf, 2),
    GroundClass(3, "silt_loess", "silt", 0.38, 0.48, 0.05, -0.5, 0.15, np.inf, 3),
    GroundClass(4, "organic_peat", "silt", 0.48, 0.52, 0.05, -0.5, 0.60, np.inf, 6),  # lowland moss + peat
    GroundClass(5, "fine_glaciolacustrine", "clay", 0.42, 0.50, 0.10, -0.4, 0.08, np.inf, 4),
)
CLASS_NAMES = {c.code: c.name for c in CLASSES}
SEA = 0


def texture_properties(texture: str, water_content: np.ndarray, porosity: np.ndarray) -> dict[str, np.ndarray]:
    """k (W m-1 K-1) and C (J m-3 K-1), thawed and frozen, from the texture table and saturation."""
    rho_b, c_s, kt_dry, kt_wet, kf_dry, kf_wet = TEXTURES[texture]
    sat = np.clip(np.asarray(water_content) / np.asarray(porosity), 0.0, 1.0)
    solids = rho_b * c_s
    return {
        "k_thawed": kt_dry + sat * (kt_wet - kt_dry),
        "k_frozen": kf_dry + sat * (kf_wet - kf_dry),
        "c_thawed": solids + water_content * C_WATER,
        "c_frozen": solids + water_content * C_ICE,
    }


def peat_properties(water_content: float = 0.70, porosity: float = 0.85) -> dict[str, float]:
    """Organic-layer properties for the solver's ``organic_*`` fields (wet moss/peat)."""
    p = texture_properties("peat", np.asarray(water_content), np.asarray(porosity))
    return {"organic_k_thawed": float(p["k_thawed"]), "organic_k_frozen": float(p["k_frozen"]),
            "organic_c_thawed": float(p["c_thawed"]), "organic_c_frozen": float(p["c_frozen"]),
            "organic_water_content": water_content}


def class_properties(soil_class: np.ndarray, water_scale: np.ndarray | float = 1.0,
                     organic_scale: np.ndarray | float = 1.0) -> dict[str, np.ndarray]:
    """Per-cell solver properties for a class map (sea cells get NaN).

    ``water_scale`` and ``organic_scale`` (per cell, ~1) add within-class spatial variability.
    """
    soil_class = np.asarray(soil_class)
    shape = soil_class.shape
    names = ("k_thawed", "k_frozen", "c_thawed", "c_frozen", "water_content", "unfrozen_a", "unfrozen_b",
             "organic_thickness", "bedrock_depth")
    out = {n: np.full(shape, np.nan) for n in names}
    ws = np.broadcast_to(np.asarray(water_scale, dtype=float), shape)
    os_ = np.broadcast_to(np.asarray(organic_scale, dtype=float), shape)
    for c in CLASSES:
        sel = soil_class == c.code
        if not sel.any():
            continue
        theta = np.clip(c.water_content * ws[sel], 0.03, 0.95 * c.porosity)
        props = texture_properties(c.texture, theta, c.porosity)
        for k, v in props.items():
            out[k][sel] = v
        out["water_content"][sel] = theta
        out["unfrozen_a"][sel] = np.minimum(c.unfrozen_a, 0.5 * theta)
        out["unfrozen_b"][sel] = c.unfrozen_b
        out["organic_thickness"][sel] = c.organic_thickness * os_[sel]
        out["bedrock_depth"][sel] = c.bedrock_depth
    return out


def slt_codes(soil_class: np.ndarray) -> np.ndarray:
    """ERA5 ``slt`` codes (0 over sea) for a class map."""
    lut = np.zeros(max(c.code for c in CLASSES) + 1, dtype="float32")
    for c in CLASSES:
        lut[c.code] = c.slt
    return lut[np.asarray(soil_class, dtype="int64")]
