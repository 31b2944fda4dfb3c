"""Static fields of the synthetic Alaska: elevation, maritime influence, ground classes, invariants.

Mountain ranges are Gaussian ridges along polylines through their real positions (plus peaks and
correlated noise), so the world has Alaska's geography: Brooks Range, Alaska Range through Denali,
Chugach/St Elias along the Gulf, Wrangells, the Aleutian arc, flat coastal plains and deltas.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from ..domain import Domain
from .fields import EARTH_KM_PER_DEG, albers_km, interp_along, polyline_distance, random_fourier_field
from .soil_classes import CLASS_NAMES, CLASSES, class_properties, slt_codes

GRAVITY = 9.80665

# ridges: name → vertices (deg W, deg N, crest height m, half-width σ km); longitudes west, converted below
RIDGES: dict[str, list[tuple[float, float, float, float]]] = {
    "brooks": [(163.5, 68.2, 800, 30), (161.0, 68.0, 1100, 35), (158.0, 67.9, 1300, 40), (154.0, 68.0, 1500, 42),
               (150.0, 68.1, 1600, 42), (147.0, 68.3, 1650, 42), (144.5, 68.8, 1800, 40), (141.0, 68.9, 1500, 38),
               (138.5, 68.8, 1100, 35)],
    "north_slope_foothills": [(161.0, 68.8, 350, 45), (155.0, 68.9, 450, 50), (150.0, 69.0, 500, 50),
                              (146.0, 69.3, 450, 40), (143.0, 69.5, 350, 30)],
    "alaska_range": [(154.5, 60.2, 1400, 30), (153.2, 61.0, 2200, 35), (152.5, 62.0, 2500, 35), (151.0, 63.0, 2800, 35),
                     (149.0, 63.4, 2500, 35), (147.0, 63.5, 2400, 35), (145.5, 63.4, 2300, 35), (144.0, 63.1, 2000, 35),
                     (142.5, 62.6, 1800, 35), (141.0, 62.2, 1700, 35)],
    "aleutian_range": [(154.5, 59.8, 1200, 30), (155.5, 58.8, 1300, 30), (157.0, 57.6, 1100, 28), (159.0, 56.5, 1000, 25),
                       (161.5, 55.6, 900, 22), (163.5, 54.9, 900, 20), (164.8, 54.5, 800, 18)],
    "aleutian_islands": [(164.8, 54.5, 900, 20), (166.5, 53.9, 900, 18), (168.5, 53.2, 700, 15), (170.5, 52.7, 700, 15),
                         (172.5, 52.3, 600, 15), (174.2, 52.1, 700, 15), (176.0, 51.9, 700, 15), (178.0, 51.85, 600, 15),
                         (180.0, 51.8, 500, 12), (182.4, 52.0, 600, 15), (184.5, 52.3, 500, 12), (187.0, 52.9, 600, 15)],
    "kenai": [(151.0, 59.4, 900, 25), (150.0, 60.0, 1200, 25), (149.2, 60.7, 1300, 25)],
    "chugach": [(149.1, 61.45, 1500, 25), (148.0, 61.3, 2000, 35), (146.5, 61.3, 2000, 35), (145.0, 61.2, 2000, 35),
                (143.5, 61.0, 2200, 35), (142.0, 60.8, 2500, 35)],
    "st_elias": [(142.5, 60.6, 2600, 35), (141.0, 60.4, 3000, 40), (139.5, 60.2, 2800, 40), (138.5, 59.6, 2400, 35),
                 (137.5, 59.0, 2200, 30), (136.5, 58.5, 1800, 25)],
    "coast_mountains": [(135.8, 59.6, 1700, 28), (134.0, 58.9, 1800, 28), (132.6, 57.9, 1700, 30), (131.6, 56.9, 1500, 30),
                        (130.5, 55.9, 1500, 30), (129.3, 55.0, 1500, 30), (128.0, 54.0, 1400, 30)],
    "kuskokwim_mountains": [(159.5, 61.0, 600, 40), (157.5, 62.0, 700, 45), (155.5, 63.0, 700, 45), (154.0, 64.0, 600, 40)],
    "ogilvie": [(141.0, 65.0, 1200, 50), (138.5, 65.0, 1500, 60), (135.5, 64.8, 1400, 60)],
    "richardson": [(136.5, 66.0, 900, 35), (136.0, 67.5, 900, 35)],
    "mackenzie": [(133.0, 62.5, 1600, 70), (131.0, 63.5, 1800, 80), (130.0, 65.0, 1600, 70)],
}
# domes and peaks: (deg W, deg N, height m, σ km)
DOMES: dict[str, tuple[float, float, float, float]] = {
    "denali": (151.0, 63.07, 5600, 11), "foraker": (151.4, 62.96, 5304, 9), "mt_st_elias": (140.93, 60.29, 5489, 11),
    "logan": (140.4, 60.57, 5400, 13), "fairweather": (137.53, 58.9, 4671, 9), "hubbard": (139.07, 60.32, 4557, 9),
    "wrangell_massif": (144.0, 62.0, 2400, 55), "blackburn": (143.43, 61.73, 4996, 11), "sanford": (144.13, 62.21, 4949, 11),
    "talkeetna": (148.5, 62.3, 1600, 45), "ahklun": (160.5, 59.8, 900, 45), "kigluaik": (165.2, 64.9, 800, 25),
    "bendeleben": (163.5, 65.2, 700, 30), "yukon_tanana_upland": (144.0, 65.0, 900, 110), "white_mountains": (147.5, 65.5, 800, 45),
    "ray_mountains": (152.0, 66.0, 700, 50), "yukon_plateau": (135.0, 62.5, 1200, 180), "chukotka": (184.0, 67.0, 800, 150),
    "chukotka_peninsula": (174.0, 65.7, 600, 60), "shishaldin": (163.97, 54.76, 2000, 10), "makushin": (166.93, 53.89, 1500, 9),
}
# rivers (deg W, deg N): carved valleys with coarse alluvium along them
RIVERS: dict[str, list[tuple[float, float]]] = {
    "yukon": [(135.0, 60.7), (137.0, 62.5), (139.4, 64.06), (141.0, 64.8), (144.1, 65.8), (145.3, 66.56), (149.1, 66.0),
              (150.2, 65.5), (152.1, 65.2), (155.5, 64.7), (156.9, 64.7), (158.1, 64.7), (158.7, 64.3), (160.2, 62.65),
              (161.3, 61.8), (163.7, 62.1), (165.0, 62.6)],
    "tanana": [(141.5, 62.9), (143.0, 63.3), (145.7, 64.0), (147.7, 64.8), (149.1, 64.6), (152.1, 65.2)],
    "kuskokwim": [(154.0, 63.3), (155.6, 62.95), (157.7, 61.9), (159.5, 61.6), (161.75, 60.8), (162.3, 60.0)],
    "koyukuk": [(150.5, 67.5), (151.5, 66.9), (154.3, 66.0), (157.7, 65.0), (158.1, 64.7)],
    "colville": [(158.0, 68.9), (154.0, 69.2), (151.5, 70.0), (150.6, 70.4)],
    "noatak": [(156.0, 68.0), (158.0, 68.0), (162.0, 67.6), (162.6, 67.0)],
    "kobuk": [(154.0, 67.0), (158.5, 66.9), (161.5, 66.7)],
    "susitna": [(147.5, 63.1), (149.5, 62.3), (150.5, 61.3)],
    "copper": [(144.5, 62.5), (144.7, 61.5), (145.0, 60.3)],
    "porcupine": [(139.0, 67.5), (141.0, 67.5), (145.3, 66.6)],
    "sagavanirktok": [(149.0, 68.6), (148.4, 70.3)],
    "nushagak": [(157.0, 60.5), (158.5, 58.8)],
}


def _xy(vertices) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype="float64")
    return albers_km(360.0 - v[:, 0], v[:, 1])


def elevation_field(x: np.ndarray, y: np.ndarray, dist_sea_km: np.ndarray, seed: int) -> np.ndarray:
    """Surface elevation (m) at Albers points; ``dist_sea_km`` (0 at the coast) flattens coastal plains."""
    relief = np.zeros(x.shape)
    rough = 1.0 + 0.25 * random_fourier_field(x, y, 25.0, seed + 13)  # rough mountains: texture scales with relief
    for verts in RIDGES.values():
        v = np.asarray(verts, dtype="float64")
        vx, vy = _xy(v)
        d, s = polyline_distance(x, y, vx, vy)
        h, sig = interp_along(s, v[:, 2]), interp_along(s, v[:, 3])
        relief = np.maximum(relief, rough * h * np.exp(-0.5 * (d / sig) ** 2))
    for lon_w, lat, h, sig in DOMES.values():
        px, py = albers_km(360.0 - lon_w, lat)
        relief = np.maximum(relief, h * np.exp(-0.5 * ((x - px) ** 2 + (y - py) ** 2) / sig**2))
    # rolling background that rises inland; plains near the coast stay flat and low
    inland = 1.0 - np.exp(-dist_sea_km / 150.0)
    noise = 140.0 * random_fourier_field(x, y, 120.0, seed + 11) + 60.0 * random_fourier_field(x, y, 35.0, seed + 12)
    base = 20.0 + 260.0 * inland + noise * (0.15 + 0.85 * inland)
    elev = np.maximum(base, 0.0) + relief
    # rivers carve their valleys
    for verts in RIVERS.values():
        vx, vy = _xy([(lon, lat, 0, 0) for lon, lat in verts])
        d, _ = polyline_distance(x, y, vx, vy)
        elev = elev * (1.0 - 0.55 * np.exp(-0.5 * (d / 18.0) ** 2))
    return np.maximum(elev, 1.0)


def river_distance_km(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.full(x.shape, np.inf)
    for verts in RIVERS.values():
        vx, vy = _xy([(lon, lat, 0, 0) for lon, lat in verts])
        out = np.minimum(out, polyline_distance(x, y, vx, vy)[0])
    return out


def _filter_km(field: np.ndarray, lat: np.ndarray, res_deg: float, sigma_km: float) -> np.ndarray:
    """Gaussian smoothing with a true-km width on a lat/lon grid (x width varies with latitude)."""
    dy = res_deg * EARTH_KM_PER_DEG
    out = ndimage.gaussian_filter1d(field, sigma_km / dy, axis=0, mode="nearest")
    for i, la in enumerate(lat):  # per row: the x spacing shrinks with cos(lat)
        dx = dy * np.cos(np.deg2rad(la))
        out[i] = ndimage.gaussian_filter1d(out[i], sigma_km / dx, mode="nearest")
    return out


def ocean_openness(lon_e: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """How ice-free (maritime in winter) each sea cell is: 1 Gulf of Alaska/N Pacific, 0 Arctic pack ice."""
    bering = (lat >= 55.0 + 0.444 * (lon_e - 197.0)) & (lon_e < 206.0)
    w = np.where(bering, np.clip((63.5 - lat) / 6.0, 0.0, 1.0), 1.0)
    return np.where(lat >= 66.0, 0.0, w)


def maritime_indices(lsm: np.ndarray, lat1d: np.ndarray, lon1d: np.ndarray, res_deg: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(open-ocean, ice-covered-ocean) influence in [0, 1]: smoothed weighted sea fractions at two scales."""
    lon2, lat2 = np.meshgrid(lon1d, lat1d)
    sea = 1.0 - lsm
    w = ocean_openness(lon2, lat2)
    out = []
    for weight in (w, 1.0 - w):
        f = sea * weight
        m = 0.45 * _filter_km(f, lat1d, res_deg, 35.0) + 0.55 * _filter_km(f, lat1d, res_deg, 220.0)
        out.append(np.clip(m / 0.75, 0.0, 1.0))
    return out[0], out[1]


def ground_class_map(elev: np.ndarray, slope: np.ndarray, river_km: np.ndarray, lon_e: np.ndarray, lat: np.ndarray,
                     land: np.ndarray) -> np.ndarray:
    """Ground class per cell (0 sea, 1 bedrock, 2 alluvium, 3 silt/loess, 4 organic/peat, 5 glaciolacustrine)."""
    cls = np.full(elev.shape, 3, dtype="int8")  # silt/loess: interior uplands and the default
    lowland = (elev < 90.0) & (slope < 8.0)
    ykd = (lat > 59.8) & (lat < 63.6) & (lon_e > 193.5) & (lon_e < 201.0) & (elev < 120.0)
    north_slope = (lat > 68.9) & (elev < 220.0) & (lon_e > 190.0)
    yukon_flats = ((lon_e - 214.0) / 1.8) ** 2 + ((lat - 66.35) / 0.45) ** 2 < 1.0
    cls[lowland | ykd | north_slope | yukon_flats] = 4
    copper_basin = (((lon_e - 214.3) / 1.4) ** 2 + ((lat - 62.2) / 0.55) ** 2 < 1.0) & (elev < 900)
    cls[copper_basin] = 5
    cls[(river_km < 14.0) & (elev < 700.0) & ~north_slope] = 2
    cls[(elev > 1000.0) | ((slope > 30.0) & (elev > 500.0))] = 1
    cls[~land] = 0
    return cls


def ocean_fraction(domain: Domain, supersample: int = 3) -> np.ndarray:
    """Fraction of each cell that is sea (Natural Earth land polygons, lakes *not* removed)."""
    from affine import Affine
    from rasterio.features import rasterize

    from ..domain import load_basemap_layer

    land = load_basemap_layer("land", "10m", continuous_lon=True)
    ny, nx = domain.shape
    s = supersample
    grid = rasterize(((g, 1) for g in land.geometry), out_shape=(ny * s, nx * s),
                     transform=domain.transform * Affine.scale(1.0 / s), dtype="uint8")
    return 1.0 - grid.reshape(ny, s, nx, s).mean(axis=(1, 3))


def build_statics(domain: Domain, seed: int) -> xr.Dataset:
    """All static fields on ``domain`` (sea cells included, with sea values), deterministic for ``seed``."""
    lat1d, lon1d = domain.latitude, domain.longitude
    lon2, lat2 = np.meshgrid(lon1d, lat1d)
    x, y = albers_km(lon2, lat2)
    lsm = domain.land_fraction().values.astype("float64")
    land = lsm >= 0.5
    ocean = ocean_fraction(domain)  # lakes are water in lsm but are not the sea for climate purposes
    res = domain.resolution
    sampling = (res * EARTH_KM_PER_DEG, res * EARTH_KM_PER_DEG * np.cos(np.deg2rad(62.0)))
    not_sea = ocean < 0.5
    dist_sea = ndimage.distance_transform_edt(not_sea, sampling=sampling) if (~not_sea).any() else np.full(land.shape, 1e3)
    elev = elevation_field(x, y, dist_sea, seed) * np.clip(lsm, 0.0, 1.0)
    gy, gx = np.gradient(elev)
    dxkm = res * EARTH_KM_PER_DEG * np.cos(np.deg2rad(lat2))
    slope = np.hypot(gy / (res * EARTH_KM_PER_DEG), gx / dxkm)  # m per km
    m_open, m_ice = maritime_indices(1.0 - ocean, lat1d, lon1d, res)
    river_km = river_distance_km(x, y)
    cls = ground_class_map(elev, slope, river_km, lon2, lat2, land)
    # within-class variability: wetter/drier ground, thicker organic mats northward (tundra)
    water_scale = 1.0 + 0.12 * random_fourier_field(x, y, 60.0, seed + 21)
    tundra = np.clip((lat2 - 66.0) / 3.0, 0.0, 1.0)
    organic_scale = (1.0 + 0.5 * tundra) * (1.0 + 0.25 * random_fourier_field(x, y, 80.0, seed + 22))
    props = class_properties(cls, np.clip(water_scale, 0.7, 1.3), np.clip(organic_scale, 0.3, 2.5))
    volcanic = np.exp(-0.5 * (np.minimum(*[polyline_distance(x, y, *_xy(RIDGES[k]))[0]
                                           for k in ("aleutian_islands", "aleutian_range")]) / 60.0) ** 2)
    wr = albers_km(360.0 - 144.0, 62.0)
    volcanic = np.maximum(volcanic, np.exp(-0.5 * ((x - wr[0]) ** 2 + (y - wr[1]) ** 2) / 70.0**2))
    qgeo = 0.055 + 0.03 * volcanic + 0.006 * random_fourier_field(x, y, 300.0, seed + 23)
    # boreal forest shades summer ground (n-factor < 1); tundra north of the tree line or above it does not
    forest = (lat2 < 67.6) & (elev < 750.0) & (m_open < 0.55) & ~((lon2 < 198.0) & (lat2 > 59.5))
    n_thaw = np.where(forest, 0.75, 1.0)  # Klene et al. / Kade et al.: boreal summer n-factors 0.6-0.9
    # ERA5-Land's high-vegetation cover, the observable trace of that shading: closed-to-open boreal
    # forest 0.5-0.95, shrub tundra a few per cent
    canopy = random_fourier_field(x, y, 40.0, seed + 24)
    cvh = np.where(forest, np.clip(0.75 + 0.15 * canopy, 0.5, 0.95), np.clip(0.04 + 0.03 * canopy, 0.0, 0.1))

    coords = domain.coords()
    dims = ("latitude", "longitude")

    def da(values, attrs, dtype="float32", sea=np.nan):
        v = np.asarray(values, dtype="float64")
        v = np.where(land, v, sea)
        return xr.DataArray(v.astype(dtype), coords=coords, dims=dims, attrs=attrs)

    ds = xr.Dataset({
        "lsm": xr.DataArray(lsm.astype("float32"), coords=coords, dims=dims,
                            attrs={"units": "1", "long_name": "land-sea mask (land fraction)"}),
        "land": xr.DataArray(land.astype("int8"), coords=coords, dims=dims,
                             attrs={"long_name": "land mask (lsm >= 0.5)", "flag_values": [0, 1], "flag_meanings": "sea land"}),
        "elevation": xr.DataArray(elev.astype("float32"), coords=coords, dims=dims,
                                  attrs={"units": "m", "long_name": "surface elevation (cell mean)"}),
        "slope": da(slope, {"units": "m km-1", "long_name": "surface slope"}),
        "dist_sea": xr.DataArray(dist_sea.astype("float32"), coords=coords, dims=dims,
                                 attrs={"units": "km", "long_name": "distance to the nearest sea cell"}),
        "m_open": xr.DataArray(m_open.astype("float32"), coords=coords, dims=dims,
                               attrs={"units": "1", "long_name": "open-ocean (maritime) influence"}),
        "m_ice": xr.DataArray(m_ice.astype("float32"), coords=coords, dims=dims,
                              attrs={"units": "1", "long_name": "ice-covered-ocean influence"}),
        "soil_class": xr.DataArray(cls, coords=coords, dims=dims, attrs={
            "long_name": "ground / lithology class", "flag_values": [0] + [c.code for c in CLASSES],
            "flag_meanings": " ".join(["sea"] + [CLASS_NAMES[c.code] for c in CLASSES])}),
        "slt": xr.DataArray(slt_codes(cls), coords=coords, dims=dims,
                            attrs={"units": "~", "long_name": "ERA5 soil type code (0 over water)"}),
        "geothermal_flux": da(qgeo, {"units": "W m-2", "long_name": "geothermal heat flux"}),
        "n_factor_thaw": da(n_thaw, {"units": "1", "long_name": "summer n-factor (forest shading)"}),
        "cvh": da(cvh, {"units": "1", "long_name": "high vegetation cover"}, sea=0.0),
    })
    units = {"k_thawed": "W m-1 K-1", "k_frozen": "W m-1 K-1", "c_thawed": "J m-3 K-1", "c_frozen": "J m-3 K-1",
             "water_content": "m3 m-3", "unfrozen_a": "m3 m-3", "unfrozen_b": "1", "organic_thickness": "m",
             "bedrock_depth": "m"}
    for name, vals in props.items():
        ds[name] = da(vals, {"units": units[name], "long_name": name.replace("_", " ")})
    ds.attrs = {"title": "geothaw synthetic Alaska: static fields", "seed": int(seed), "resolution_deg": res,
                "Conventions": "CF-1.8"}
    return ds
