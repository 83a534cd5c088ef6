"""A configuration given as texts loads as the folder holding them does, and the service loads a
stored version from its texts without writing them anywhere."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from engine.config import load_config, load_texts, ruleset_from_texts, validate_config
from engine.config.problems import Problem
from engine.errors import ConfigError
from engine.service.store import Keys, text
from tests.conftest import ROOT, break_arbitrage, edit
from tests.service.conftest import redis_server, start_service  # noqa: F401  (redis_server: a fixture)

MINIMAL = {
    "strategies/solo.yaml": "name: solo\nallocation: {target: 1.0, min: 1.0, max: 1.0}\ndefaults: {stop_loss: 0.01, take_profit: 0.02}\n",
    "rules/limits.yaml": "daily_loss: {max: 0.02}\n",
}


def texts_of(config: Path) -> dict[str, str]:
    """The rule files of a configuration folder by relative path, read here without the loader."""
    files = [*sorted((config / "strategies").glob("*.yaml")), *sorted((config / "rules").glob("*.yaml")), config / "schedules.yaml"]
    return {f.relative_to(config).as_posix(): f.read_text(encoding="utf-8") for f in files}


def located(problems: list[Problem]) -> list[str]:
    return [str(p) for p in problems]


def test_the_shipped_configuration_as_texts_loads_as_the_same_version_as_its_folder() -> None:
    texts = texts_of(ROOT)
    from_texts, from_folder = load_texts(texts), validate_config(str(ROOT))
    assert from_texts.ok and from_folder.ok
    assert from_texts.ruleset.version == from_folder.ruleset.version == load_config(str(ROOT)).version
    assert from_texts.ruleset.canonical() == from_folder.ruleset.canonical()
    assert from_texts.sources == texts  # the texts validated, by the path they were given
    assert ruleset_from_texts(texts).version == from_folder.ruleset.version


def test_a_broken_copy_as_texts_has_the_problems_of_its_folder_at_the_same_file_line_and_column(
        config_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    break_arbitrage(config_copy)
    edit(config_copy / "rules" / "limits.yaml", "max: 0.02", "max: 2")
    edit(config_copy / "schedules.yaml", "cron, hour: 0,", "cron, hour: 25,")
    (config_copy / "rules" / "limit.yaml").write_text("daily_loss: {max: 0.01}\n")
    (config_copy / "strategies" / "htf.yaml").unlink()  # allocation targets no longer sum to 1
    texts = texts_of(config_copy)
    monkeypatch.chdir(config_copy)  # the folder's files are then named as the texts are
    from_folder, from_texts = validate_config("."), load_texts(texts)
    assert len(from_folder.problems) >= 7
    assert located(from_texts.problems) == located(from_folder.problems)
    assert "strategies/arbitrage.yaml:5:16:" in "\n".join(located(from_texts.problems))
    assert from_texts.ruleset is None and from_folder.ruleset is None
    assert from_texts.sources == from_folder.sources
    with pytest.raises(ConfigError) as err:
        ruleset_from_texts(texts)
    assert err.value.problems == from_texts.problems


def test_a_configuration_that_exists_only_as_texts_loads_without_reading_a_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # an empty folder: nothing to find on disk

    def no_files(path: str):
        raise AssertionError(f"read {path}")

    monkeypatch.setattr("engine.config.load._read", no_files)
    monkeypatch.setattr("engine.config.kinds.read_head", no_files)
    rules = ruleset_from_texts(MINIMAL)
    assert list(rules.strategies) == ["solo"] and rules.limits.daily_loss.max == 0.02
    assert rules.files == ("strategies/solo.yaml", "rules/limits.yaml")
    assert rules.version.startswith("rv-")


def test_texts_missing_a_required_file_or_lying_nowhere_are_problems_not_left_out() -> None:
    result = load_texts({**MINIMAL, "notes.txt": "hello", "strategies/old/solo.yaml": "name: old\n"})
    assert located(result.problems) == [
        "notes.txt:1:1: expected a rule file at strategies/NAME.yaml, rules/NAME.yaml or schedules.yaml, found 'notes.txt'",
        (
            "strategies/old/solo.yaml:1:1: expected a rule file at strategies/NAME.yaml, rules/NAME.yaml or schedules.yaml, "
            "found 'strategies/old/solo.yaml'"
        ),
    ]
    result = load_texts({"strategies/solo.yaml": MINIMAL["strategies/solo.yaml"]})
    assert located(result.problems) == ["rules:1:1: expected a rules/ folder (rules/limits.yaml at least), found none"]
    result = load_texts({"strategies/solo.yaml": MINIMAL["strategies/solo.yaml"], "rules/profit.yaml": "{}\n"})
    assert located(result.problems) == ["rules/limits.yaml:1:1: expected rules/limits.yaml, found no such file"]


def test_a_restart_runs_the_stored_version_from_its_texts_without_a_temporary_folder(
        redis_server, config_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    first = start_service(redis_server, config_copy, accounts=())
    version = first.version
    first.stop()
    stored = {text(k): text(v) for k, v in redis_server.hgetall(Keys().rules(version)).items()}
    assert stored == texts_of(config_copy)
    break_arbitrage(config_copy)  # the files on disk are broken now: the restart must run the stored version

    def no_temporary_folders(*args, **kwargs):
        raise AssertionError("a temporary folder was created")

    monkeypatch.setattr(tempfile, "mkdtemp", no_temporary_folders)
    again = start_service(redis_server, config_copy, accounts=())
    try:
        assert again.version == version
        again._rules_cache.clear()  # a takeover of an account whose snapshot names this version
        assert again.rules_for(version).version == version
    finally:
        again.stop()
