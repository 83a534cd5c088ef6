"""JSON Schemas of the rule files, so editors complete and check them while they are typed."""

from __future__ import annotations

import json
import os

from pydantic import JsonValue

from engine.config.models import KINDS

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: str) -> dict[str, JsonValue]:
    """Return the JSON Schema of one file kind (a key of ``KINDS``)."""
    model = KINDS[kind]
    schema = model.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": f"{kind}.schema.json", **schema}


def write_schemas(out_dir: str) -> list[str]:
    """Write ``<kind>.schema.json`` for every file kind into ``out_dir``; return the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for kind in KINDS:
        path = os.path.join(out_dir, f"{kind}.schema.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(json_schema(kind), fh, indent=2, sort_keys=True)
            fh.write("\n")
        written.append(path)
    return written
