"""The resolved project as YAML or JSON (`wharf config`)."""

from __future__ import annotations

import json
from typing import Any

from runtime.errors import InvalidArgument


def project_dict(project: Any) -> dict[str, Any]:
    return project.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude_none=True) | {
        "name": project.name}


def render_project(project: Any, fmt: str = "yaml") -> str:
    data = project_dict(project)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    raise InvalidArgument(f"unknown format {fmt!r}", hint="use yaml or json")
