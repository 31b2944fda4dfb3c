import pytest

from geothaw.scenarios import rcp_forcing
from geothaw.errors import ConfigError


@pytest.mark.parametrize(("scenario", "rf2100", "co2"), [("rcp26", 2.63, 421), ("rcp45", 4.28, 538),
                                                         ("rcp60", 5.52, 670), ("rcp85", 8.34, 936)])
def test_rcp_table_matches_rcp_database(scenario, rf2100, co2):
    assert rcp_forcing(scenario, [2100]).iloc[0] == pytest.approx(rf2100, abs=0.01)
    assert rcp_forcing(scenario, [2100], variable="co2_ppm").iloc[0] == pytest.approx(co2, abs=1)


def test_history_shared_and_scenarios_diverge():
    h = rcp_forcing("historical", range(1950, 2005))
    assert (h.values == rcp_forcing("rcp85", range(1950, 2005)).values).all()
    assert rcp_forcing("rcp85", [2080]).iloc[0] > rcp_forcing("rcp45", [2080]).iloc[0] + 2
    with pytest.raises(ConfigError, match="unknown scenario"):
        rcp_forcing("ssp585")
