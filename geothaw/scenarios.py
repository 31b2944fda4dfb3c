"""The shipped RCP table: yearly global total radiative forcing and CO2 (RCP database, Meinshausen et al. 2011)."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd

from .domain import shipped_data_path
from .errors import ConfigError

SCENARIO_LABELS = {"rcp45": "RCP4.5", "rcp85": "RCP8.5", "rcp26": "RCP2.6", "rcp60": "RCP6.0", "historical": "historical"}


def scenario_label(name: str) -> str:
    """A scenario's display name ("rcp85" → "RCP8.5"; a difference "rcp85-rcp45" → "RCP8.5 − RCP4.5");
    a name it does not know is shown as given."""
    return " − ".join(SCENARIO_LABELS.get(part, part) for part in name.split("-"))


HISTORICAL_END = 2005  # CMIP5 historical runs end in December 2005; every RCP continues that same history


@lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    return pd.read_csv(str(shipped_data_path("rcp_forcing.csv")))


def rcp_forcing(scenario: str, years=None, variable: str = "total_rf_w_m2") -> pd.Series:
    """Yearly ``total_rf_w_m2`` or ``co2_ppm`` for an RCP (historical values up to 2005 are shared).

    ``scenario`` may be ``historical`` (returns the RCP4.5 table, identical to all RCPs until 2005).
    """
    df = _table()
    name = "rcp45" if scenario == "historical" else scenario
    if name not in set(df["scenario"]):
        raise ConfigError(f"unknown scenario '{scenario}' (known: historical, {', '.join(sorted(set(df['scenario'])))})")
    s = df[df["scenario"] == name].set_index("year")[variable]
    return s if years is None else s.reindex(list(years))
