"""JSON Schemas: they accept every shipped file, reject the schema-level invalid cases, and are current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from engine.cli import main
from engine.config.load import kind_of
from engine.config.models import KINDS
from engine.config.schema import json_schema
from tests.config.test_cases import INVALID, VALID, expected_errors
from tests.conftest import ROOT

SHIPPED = sorted([*ROOT.glob("strategies/*.yaml"), *ROOT.glob("rules/*.yaml"), ROOT / "schedules.yaml"])


def as_json(path: Path) -> object:
    # JSON has only string keys: round-trip through JSON as an editor's YAML language server does.
    return json.loads(json.dumps(YAML(typ="safe", pure=True).load(path.read_text()), default=str))


def validator(kind: str) -> jsonschema.protocols.Validator:
    schema = json_schema(kind)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("path", SHIPPED + VALID, ids=lambda p: p.name)
def test_schema_accepts_shipped_and_valid_files(path: Path) -> None:
    errors = list(validator(kind_of(str(path))).iter_errors(as_json(path)))
    assert errors == []


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_schema_rejects_invalid_cases_that_are_schema_errors(case: Path) -> None:
    verdict, _ = expected_errors(case)
    if verdict == "skip":
        pytest.skip("not expressible as JSON data (syntax, duplicate keys, cron/timezone semantics)")
    errors = list(validator(kind_of(str(case))).iter_errors(as_json(case)))
    assert bool(errors) == (verdict == "reject"), [e.message for e in errors]


def test_shipped_files_name_their_schema_on_the_first_line() -> None:
    for path in SHIPPED:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target.is_file(), f"{path.name} names {target}, which does not exist"
        assert kind_of(str(path)) == target.name.removesuffix(".schema.json")


def test_committed_schemas_are_up_to_date(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--out", str(tmp_path)]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{k}.schema.json" for k in KINDS)
    for name in written:
        assert (tmp_path / name).read_text() == (ROOT / "schemas" / name).read_text(), f"run `make schema`: {name} is stale"
