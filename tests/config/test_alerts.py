"""rules/alerts.yaml: optional, validated with the other files, routes by level, rule and strategy, and
leaves the rules version alone (it changes where alerts go, not what the engine decides)."""

from __future__ import annotations

from engine.config import load_texts
from engine.config.models import AlertRouting

MINIMAL = {
    "strategies/solo.yaml": "name: solo\nallocation: {target: 1.0, min: 1.0, max: 1.0}\ndefaults: {stop_loss: 0.01, take_profit: 0.02}\n",
    "rules/limits.yaml": "daily_loss: {max: 0.02}\n",
}
ROUTING = """\
sinks:
  desk: {kind: slack, url_env: DESK_URL}
  pager: {kind: webhook, url: "https://pager.example.com/hook"}
  solo_team: {kind: telegram, token_env: BOT_TOKEN, chat_id: "42"}
routes:
  warning: [desk]
  critical: [desk, pager]
by_rule:
  daily_loss: [pager]
by_strategy:
  solo: [solo_team]
"""


def test_without_alerts_yaml_nothing_is_routed_and_with_it_the_version_is_the_same() -> None:
    bare = load_texts(MINIMAL)
    routed = load_texts({**MINIMAL, "rules/alerts.yaml": ROUTING})
    assert bare.ok and routed.ok, routed.problems
    assert bare.ruleset.alerts == AlertRouting() and bare.ruleset.alerts.sinks_for("critical", "daily_loss", None) == []
    assert set(routed.ruleset.alerts.sinks) == {"desk", "pager", "solo_team"}
    assert routed.ruleset.version == bare.ruleset.version


def test_an_alert_goes_to_its_levels_sinks_then_its_rules_then_its_strategys_each_once() -> None:
    routing = load_texts({**MINIMAL, "rules/alerts.yaml": ROUTING}).ruleset.alerts
    assert routing.sinks_for("critical", "daily_loss", None) == ["desk", "pager"]
    assert routing.sinks_for("info", "custom-rule", None) == []
    assert routing.sinks_for("info", "daily_loss", "solo") == ["pager", "solo_team"]
    # an alert without a level (a broker's) is routed as default_level, warning unless told
    assert routing.sinks_for(None, "broker", None) == ["desk"]


def test_by_strategy_names_a_known_strategy_in_a_whole_configuration() -> None:
    result = load_texts({**MINIMAL, "rules/alerts.yaml": ROUTING.replace("  solo: [solo_team]", "  sol: [solo_team]")})
    [problem] = result.problems
    assert (problem.file, problem.line, problem.column) == ("rules/alerts.yaml", 11, 3)
    assert problem.message == "expected a strategy name (solo), found 'sol'; did you mean 'solo'?"


def test_the_documented_example_is_a_valid_alerts_file() -> None:
    import re

    from engine.config import validate_text
    from tests.conftest import ROOT

    section = (ROOT / "docs" / "rules.md").read_text().split("## rules/alerts.yaml", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    result = validate_text(example, "alerts", "docs/rules.md")
    assert result.problems == []
    routing = load_texts({**MINIMAL, "rules/alerts.yaml": example.replace("arbitrage:", "solo:")}).ruleset.alerts
    assert routing.sinks_for("critical", "daily_loss", "solo") == ["desk_slack", "oncall", "desk_telegram"]
