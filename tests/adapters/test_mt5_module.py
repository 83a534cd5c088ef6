"""The adapter never needs the Windows-only MetaTrader5 package until it is asked to connect."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.adapters import mt5 as adapter
from engine.adapters.mt5 import INSTALL_HINT, MT5Connection, MT5Error, MT5Unavailable, doctor, load_module
from engine.errors import RiskrailError
from engine.testing import mt5 as fake_module
from tests.conftest import ROOT


def test_importing_the_adapter_and_the_cli_does_not_import_metatrader5() -> None:
    code = ("import sys; import engine.adapters.mt5, engine.cli, engine.testing.mt5; "
            "print('MetaTrader5' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_load_module_without_the_package_says_how_to_install_it_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)  # import fails even where it is installed
    with pytest.raises(MT5Unavailable) as err:
        load_module()
    assert isinstance(err.value, RiskrailError) and isinstance(err.value, MT5Error)
    message = str(err.value)
    assert "pip install 'riskrail[mt5]'" in message and "Windows" in message
    assert message == INSTALL_HINT


def test_classes_load_the_package_lazily_and_fail_plainly_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", None)
    with pytest.raises(MT5Unavailable, match="riskrail\\[mt5\\]"):
        MT5Connection()
    [check] = doctor(None, ["EURUSD"])
    assert (check.name, check.ok) == ("package", False) and "pip install 'riskrail[mt5]'" in check.message


def test_load_module_returns_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MetaTrader5", fake_module)
    assert load_module() is fake_module


def test_the_fake_module_works_in_place_of_the_package() -> None:
    terminal = fake_module.reset(login=42, password="pw-1234", server="Some-Server")
    terminal.add_symbol("EURUSD")
    terminal.tick("EURUSD", 1.1, 1.1002, 1_000)
    conn = MT5Connection(fake_module, env={"MT5_LOGIN": "42", "MT5_PASSWORD": "pw-1234", "MT5_SERVER": "Some-Server"})
    conn.connect()
    assert fake_module.account_info().login == 42
    assert fake_module.symbol_info_tick("EURUSD").time_msc == 1_000
    assert fake_module.TRADE_ACTION_SLTP == 6 and fake_module.TRADE_RETCODE_DONE == 10009
    fake_module.reset()


def test_the_package_exports_what_the_adapter_documents() -> None:
    assert set(adapter.__all__) >= {"MT5Connection", "MT5Feed", "MT5Broker", "Check", "doctor", "load_module", "MT5Unavailable", "step"}
    for name in adapter.__all__:
        assert getattr(adapter, name) is not None


def test_the_mt5_extra_installs_the_package_on_windows_only() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    [requirement] = extras["mt5"]
    assert requirement.startswith("MetaTrader5") and requirement.endswith("sys_platform == 'win32'")
