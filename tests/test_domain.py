import numpy as np
import pytest

from geothaw.domain import Domain, alaska_boundary, load_basemap_layer, to_pm180, wrap_longitude
from geothaw.errors import ConfigError


def test_grid_matches_era5land(full_domain):
    d = full_domain
    assert d.shape == (211, 591)
    assert d.n_cells == 124_701
    # first/last centres, exact decimal values as in ERA5-Land files
    assert d.latitude[0] == 72.0 and d.latitude[-1] == 51.0
    assert d.longitude[0] == 172.0 and d.longitude[-1] == 231.0
    assert d.latitude[12] == 70.8 and d.longitude[1] == 172.1
    # 0.1° spacing everywhere, latitude descending
    assert np.allclose(np.diff(d.latitude), -0.1)
    assert np.allclose(np.diff(d.longitude), 0.1)


def test_antimeridian_continuity(full_domain):
    lon = full_domain.longitude
    i180 = int(np.argmin(np.abs(lon - 180.0)))
    assert lon[i180] == 180.0
    assert lon[i180 - 1] == 179.9 and lon[i180 + 1] == 180.1  # no gap, no jump
    # -179.9 (west of Attu's opposite side) maps onto the same column as 180.1
    assert full_domain.nearest_cell(-179.9, 60.0)[1] == i180 + 1
    assert full_domain.nearest_cell(173.2, 52.9)[1] == int(np.argmin(np.abs(lon - 173.2)))
    assert np.allclose(to_pm180(wrap_longitude(np.array([-179.9, 179.9, -129.0]), 0.0)), [-179.9, 179.9, -129.0])


def test_albers_transform_of_known_points(full_domain):
    # EPSG:3338 has its origin at 50 N, 154 W with no false easting/northing.
    x, y = full_domain.to_albers(np.array([-154.0, 206.0]), np.array([50.0, 50.0]))
    assert np.allclose(x, 0.0, atol=1e-6) and np.allclose(y, 0.0, atol=1e-6)
    # Points east of the central meridian have positive x, north of 50 N positive y; the same point
    # given as 212.28 E or -147.72 W projects identically.
    x1, y1 = full_domain.to_albers(np.array([-147.72]), np.array([64.84]))
    x2, y2 = full_domain.to_albers(np.array([212.28]), np.array([64.84]))
    assert x1[0] == pytest.approx(x2[0]) and y1[0] == pytest.approx(y2[0])
    # Fairbanks is ~300 km east and ~1,670 km north of the projection origin.
    assert 280e3 < x1[0] < 320e3 and 1.60e6 < y1[0] < 1.72e6
    # Attu (far west, across 180°) has large negative x.
    xa, _ = full_domain.to_albers(np.array([173.18]), np.array([52.9]))
    assert xa[0] < -1.8e6


@pytest.mark.parametrize(
    ("name", "lon", "lat", "is_land"),
    [
        ("Utqiagvik", -156.79, 71.29, True),
        ("Fairbanks", -147.72, 64.84, True),
        ("Juneau", -134.42, 58.30, True),
        ("Attu", 173.18, 52.90, True),
        ("Bering Sea", -175.0, 58.0, False),
        ("Gulf of Alaska", -145.0, 56.0, False),
    ],
)
def test_land_mask_known_points(full_domain, name, lon, lat, is_land):
    mask = full_domain.land_mask()
    r, c = full_domain.nearest_cell(lon, lat)
    assert bool(mask.values[r, c]) is is_land, name


def test_land_mask_totals(full_domain):
    mask = full_domain.land_mask()
    area = float(full_domain.cell_area_km2().where(mask).sum())
    # The domain box holds Alaska (~1.72 million km²) plus parts of Yukon and northern BC.
    assert 1.6e6 < area < 3.2e6
    # Western Aleutians (west of 180°) contribute land cells: nothing was dropped at the antimeridian.
    west = mask.sel(longitude=slice(None, 180.0))
    assert int(west.sum()) > 20


def test_clip_to_alaska_removes_canada():
    d = Domain(clip_to_alaska=True).coarsen(2)
    full = Domain().coarsen(2)
    whitehorse = d.nearest_cell(-135.05, 60.72)
    fairbanks = d.nearest_cell(-147.72, 64.84)
    assert full.land_mask().values[whitehorse] and not d.land_mask().values[whitehorse]
    assert d.land_mask().values[fairbanks]


def test_latitude_bands():
    d = Domain()
    assert d.n_bands == 5
    assert list(d.band_index([51.0, 55.9, 56.0, 63.99, 64.0, 71.9, 72.0])) == [0, 0, 1, 2, 3, 4, 4]
    custom = Domain(band_edges=(51.0, 61.0, 72.0))
    assert custom.n_bands == 2 and custom.band_labels() == ["51–61N", "61–72N"]
    bands = d.coarsen(10).bands()
    assert bands.dims == ("latitude", "longitude") and int(bands.max()) == 4 and int(bands.min()) == 0


def test_bad_domain_rejected():
    with pytest.raises(ConfigError, match="lat_max"):
        Domain(lat_min=60, lat_max=50)
    with pytest.raises(ConfigError, match="antimeridian"):
        Domain(lon_min=172, lon_max=-129)
    with pytest.raises(ConfigError, match="band_edges"):
        Domain(band_edges=(60.0, 55.0))


def test_coarse_grid_stays_on_era5_centres():
    d = Domain().coarsen(5)
    assert d.resolution == 0.5 and d.latitude[0] == 72.0 and d.longitude[-1] == 231.0
    assert np.allclose((d.longitude * 10) % 1, 0)


def test_basemap_layers_are_shipped_and_continuous():
    land = load_basemap_layer("land", "50m")
    assert land.crs.to_epsg() == 4326 and len(land) > 10
    cont = load_basemap_layer("coastline", "50m", continuous_lon=True)
    assert cont.total_bounds[0] >= 165 and cont.total_bounds[2] <= 240
    ak = alaska_boundary("10m")
    assert len(ak) >= 1
