"""The small part of Go templates that `--format` users write: {{.A.B}}, {{json .X}}, {{.X}}\t{{.Y}}."""

from __future__ import annotations

import json
import re
from typing import Any

_EXPR = re.compile(r"{{\s*(json\s+)?\.([\w.]*)\s*}}")


def _get(obj: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def render(fmt: str, obj: dict[str, Any]) -> str:
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")

    def sub(m: re.Match) -> str:
        v = _get(obj, m.group(2))
        if m.group(1):
            return json.dumps(v)
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, dict | list):
            return json.dumps(v)
        return "<no value>" if v is None else str(v)

    return _EXPR.sub(sub, fmt)


def columns(fmt: str) -> list[tuple[str, str]]:
    """`table {{.ID}}\\t{{.Names}}` -> [(header, key)] for views.table."""
    keys = [m.group(2) for m in _EXPR.finditer(fmt)]
    head = {"ID": "CONTAINER ID", "Names": "NAMES", "RunningFor": "CREATED"}
    return [(head.get(k, re.sub(r"(?<!^)([A-Z])", r" \1", k).upper()), k) for k in keys]
