"""A broker's instrument specifications laid over rules/instruments.yaml: the broker's contract wins, the
file's conventions (pip size, account currency, strategy map) stay, a bad broker entry is refused aloud."""

from __future__ import annotations

from engine.config import load_config
from engine.config.grid import Grid
from engine.config.models import Instruments
from tests.conftest import ROOT

FILE = load_config(str(ROOT / "examples" / "scalping")).instruments
EURUSD = {"base_currency": "EUR", "quote_currency": "USD", "contract_size": 100_000.0, "pip_size": 0.00001, "digits": 5,
          "tick_size": 0.00001, "volume_step": 0.1, "volume_min": 0.1, "volume_max": 50.0, "stops_level": 10}
US500 = {"base_currency": "USD", "quote_currency": "USD", "contract_size": 50.0, "pip_size": 0.01, "digits": 2,
         "tick_size": 0.25, "volume_step": 0.1, "volume_min": 0.1, "volume_max": 50.0, "stops_level": 0}


def test_the_brokers_contract_replaces_the_files_but_the_pip_size_stays_the_rules() -> None:
    merged, problems = FILE.merged({"EURUSD": EURUSD})
    eurusd = merged.instruments["EURUSD"]
    assert problems == []
    assert (eurusd.volume_step, eurusd.volume_min, eurusd.volume_max, eurusd.stops_level) == (0.1, 0.1, 50.0, 10)
    assert eurusd.pip_size == FILE.instruments["EURUSD"].pip_size == 0.0001
    assert merged.instruments["USDJPY"] == FILE.instruments["USDJPY"]  # not offered: the file's entry
    assert (merged.account_currency, merged.strategy_map) == (FILE.account_currency, FILE.strategy_map)


def test_a_symbol_only_the_broker_knows_is_added_on_its_grid() -> None:
    merged, problems = FILE.merged({"US500": US500})
    assert problems == [] and merged.instruments["US500"].prices == Grid(25, 100) and merged.instruments["US500"].lots == Grid(1, 10)
    assert "US500" not in FILE.instruments  # pure: the file's model is untouched


def test_a_broker_entry_that_does_not_validate_is_reported_and_the_files_entry_kept() -> None:
    merged, problems = FILE.merged({"EURUSD": {**EURUSD, "contract_size": 0.0}, "bad name!": US500, "US500": US500})
    assert merged.instruments["EURUSD"] == FILE.instruments["EURUSD"] and "bad name!" not in merged.instruments
    assert "US500" in merged.instruments
    assert problems == [
        "EURUSD: the broker's specification is refused (contract_size: Input should be greater than 0); the file's entry is kept",
        ("bad name!: the broker's specification is refused (name: String should match pattern '^[A-Za-z0-9._#-]{1,32}$'); "
         "the symbol stays unknown"),
    ]


def test_nothing_from_the_broker_changes_nothing() -> None:
    assert FILE.merged({}) == (FILE, []) and Instruments().merged({}) == (Instruments(), [])
