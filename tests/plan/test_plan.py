"""`riskrail plan`: a dry run of a rule change against recorded history, end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import load_config
from engine.plan.semantic import semantic_diff
from tests.conftest import ROOT, edit

SCALPING = ROOT / "examples" / "scalping"
HISTORY = ("--history", str(ROOT / "examples" / "replay" / "positions.jsonl"),
           "--ticks", str(ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"))


def plan(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", "plan", *args], capture_output=True, text=True, timeout=900, cwd=cwd)


@pytest.fixture
def proposed(tmp_path: Path) -> Path:
    shutil.copytree(SCALPING, tmp_path / "proposed")
    return tmp_path / "proposed"


def test_a_wider_trail_names_exactly_the_positions_whose_exits_moved(proposed: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.0001,", "trailing_distance: 0.00015,")
    proc = plan("--base", str(SCALPING), "--config", str(proposed), *HISTORY, "--format", "json")
    assert proc.returncode == 2, proc.stderr
    report = json.loads(proc.stdout)
    assert report["changes"] == [{"path": "strategies.scalp_trend.trailing.trailing_distance", "base": 0.0001, "proposed": 0.00015}]
    # only T4 ever armed its trail (the other scalp_trend positions closed before): only its exit moves
    assert set(report["positions"]) == {"T4"}
    t4 = report["positions"]["T4"]
    assert t4["strategy"] == "scalp_trend"
    base_close = next(a for a in t4["base"] if a["type"] == "close")
    new_close = next(a for a in t4["proposed"] if a["type"] == "close")
    assert base_close["rule"] == new_close["rule"] == "trailing_stop"
    assert new_close["ts"] > base_close["ts"]  # a wider trail lets the short run longer
    assert t4["pnl"]["delta"] == pytest.approx(t4["pnl"]["proposed"] - t4["pnl"]["base"])
    assert t4["pnl"]["delta"] != 0
    total = report["effects"]["total"]
    assert total["realized_pnl_delta"] == pytest.approx(t4["pnl"]["delta"])
    assert report["effects"]["scalp_revert"]["realized_pnl_delta"] == 0


def test_plot_draws_a_png(proposed: Path, tmp_path: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.0001,", "trailing_distance: 0.00015,")
    out = tmp_path / "plan.png"
    proc = plan("--base", str(SCALPING), "--config", str(proposed), *HISTORY, "--plot", str(out))
    assert proc.returncode == 2, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000


def test_a_comment_only_change_exits_0(proposed: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "name: scalp_trend", "name: scalp_trend   # reviewed 2026-11")
    proc = plan("--base", str(SCALPING), "--config", str(proposed), *HISTORY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "none (the change keeps the meaning of the rules)" in proc.stdout
    assert "No effect" in proc.stdout


def test_base_can_be_a_git_revision(tmp_path: Path) -> None:
    repo = tmp_path / "desk"
    shutil.copytree(SCALPING, repo)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "rules"], check=True)
    edit(repo / "strategies" / "scalp_revert.yaml", "stop_loss: 0.0002", "stop_loss: 0.0001")
    proc = plan("--base", "HEAD", "--config", str(repo), *HISTORY)
    assert proc.returncode == 2, proc.stderr
    assert "strategies.scalp_revert.defaults.stop_loss: 0.0002 -> 0.0001" in proc.stdout
    same = plan("--base", "HEAD", "--config", str(repo), *HISTORY, cwd=repo)
    assert same.returncode == 2
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "--", "."], check=True)
    assert plan("--base", "HEAD", "--config", str(repo), *HISTORY).returncode == 0


def test_invalid_proposed_rules_are_reported_like_validate_and_exit_1(proposed: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.0001,", "trailing_distanse: 0.0001,")
    proc = plan("--base", str(SCALPING), "--config", str(proposed), *HISTORY)
    assert proc.returncode == 1
    assert "unknown key 'trailing_distanse'; did you mean 'trailing_distance'?" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unknown_base_is_a_clear_error(proposed: Path) -> None:
    proc = plan("--base", "no-such-revision", "--config", str(proposed), *HISTORY)
    assert proc.returncode == 1
    assert "neither a folder of rule files nor" in proc.stderr


def test_semantic_diff_ignores_layout_and_lists_meaning(config_copy: Path) -> None:
    base = load_config(str(ROOT))
    edit(config_copy / "rules" / "limits.yaml", "max: 0.02", "max: 0.025   # looser")
    edit(config_copy / "strategies" / "htf.yaml", "label: Higher-timeframe swing", "label:    Higher-timeframe swing")
    changes = semantic_diff(base, load_config(str(config_copy)))
    assert [str(c) for c in changes] == ["limits.daily_loss.max: 0.02 -> 0.025"]


def test_semantic_diff_names_exit_levels_by_their_identity(config_copy: Path) -> None:
    """A level inserted in front and one removed are one level added and one removed, as open positions
    know them (by key), not every level after them edited."""
    base = load_config(str(ROOT))
    path = config_copy / "strategies" / "arbitrage.yaml"
    text = path.read_text()
    head, rest = text.split("exit_levels:", 1)
    comment, levels = rest.split("\n", 1)
    levels = "\n".join(line for line in levels.split("\n") if "profit_target: 0.008" not in line)
    path.write_text(f"{head}exit_levels:{comment}\n  - {{profit_target: 0.003, exit_percentage: 0.1}}\n{levels}")
    changes = [str(c) for c in semantic_diff(base, load_config(str(config_copy)))]
    removed = "removed (was {profit_target: 0.008, exit_percentage: 0.25, sl_adjustment: 0.003})"
    assert changes == ["strategies.arbitrage.exit_levels[profit_target:0.003]: added {profit_target: 0.003, exit_percentage: 0.1}",
                       f"strategies.arbitrage.exit_levels[profit_target:0.008]: {removed}"]
