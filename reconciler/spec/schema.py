"""JSON Schema of a Wharf compose file, generated from the pydantic models.

`python -m reconciler.spec.schema` rewrites schemas/compose.schema.json; a test fails
when the checked-in file is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "schemas" / "compose.schema.json"


def json_schema() -> dict[str, Any]:
    from .models import ComposeFile

    schema = ComposeFile.model_json_schema(mode="validation", by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://wharf.invalid/schemas/compose.schema.json"
    schema["title"] = "Wharf compose file"
    for obj in [schema, *schema.get("$defs", {}).values()]:
        if obj.get("additionalProperties") is False:  # x-* extensions are allowed wherever keys are fixed
            obj["patternProperties"] = {"^x-": {}}
    return schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        return 0 if SCHEMA_FILE.exists() and SCHEMA_FILE.read_text() == text else 1
    SCHEMA_FILE.write_text(text)
    print(f"wrote {SCHEMA_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
