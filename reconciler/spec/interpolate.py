"""Variable interpolation as the compose spec says (12-interpolation.md).

`$V`, `${V}`, `${V:-default}`, `${V-default}`, `${V:?err}`, `${V?err}`, `${V:+alt}`,
`${V+alt}`, nesting inside the default/error text, `$$` for a literal `$`. Values only,
never keys. An unset variable without a default becomes "" with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from runtime.errors import InvalidArgument

from .yamlmarks import MDict, MList, Override, Reset, format_path

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")


class _Missing(Exception):
    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message


def _braced_end(text: str, start: int) -> int:
    """Index of the `}` closing the `${` whose body starts at `start` (nesting-aware)."""
    depth, i = 1, start
    while i < len(text):
        c = text[i]
        if c == "$" and text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def substitute(text: str, env: Mapping[str, str], warn: Callable[[str], None] | None = None) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            j = text.find("$", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            end = _braced_end(text, i + 2)
            if end < 0:
                raise _Missing("", f"unterminated '${{' in {text!r}")
            out.append(_expand(text[i + 2:end], env, warn))
            i = end + 1
            continue
        m = _NAME.match(text, i + 1)
        if m:
            name = m.group(0)
            out.append(_lookup(name, env, warn))
            i = m.end()
            continue
        out.append("$")  # not a variable: preserved
        i += 1
    return "".join(out)


def _lookup(name: str, env: Mapping[str, str], warn: Callable[[str], None] | None) -> str:
    if name in env:
        return env[name]
    if warn:
        warn(f"variable {name} is not set, using an empty string")
    return ""


def _expand(body: str, env: Mapping[str, str], warn: Callable[[str], None] | None) -> str:
    m = _NAME.match(body)
    if not m:
        raise _Missing("", f"invalid variable reference '${{{body}}}'")
    name, rest = m.group(0), body[m.end():]
    if not rest:
        return _lookup(name, env, warn)
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            break
    else:
        raise _Missing(name, f"unsupported variable syntax '${{{body}}}' (supported: :- - :? ? :+ +)")
    value = env.get(name)
    unset_or_empty = value is None or value == ""
    missing = unset_or_empty if op.startswith(":") else value is None
    if op in (":-", "-"):
        return substitute(arg, env, warn) if missing else value  # type: ignore[return-value]
    if op in (":+", "+"):
        return "" if missing else substitute(arg, env, warn)
    if missing:  # :? and ?
        msg = substitute(arg, env, warn) if arg else ""
        raise _Missing(name, f"required variable {name} is {'unset or empty' if op == ':?' else 'unset'}"
                       + (f": {msg}" if msg else ""))
    return value  # type: ignore[return-value]


def interpolate(data: Any, env: Mapping[str, str], warn: Callable[[str], None] | None = None,
                path: tuple[Any, ...] = ()) -> Any:
    """Interpolate every string value of a loaded YAML tree in place (keys untouched)."""
    if isinstance(data, dict):
        for k in list(data.keys()):
            data[k] = _one(data, k, env, warn, path)
    elif isinstance(data, list):
        for idx in range(len(data)):
            data[idx] = _one(data, idx, env, warn, path)
    return data


def _one(parent: Any, key: Any, env: Mapping[str, str], warn: Callable[[str], None] | None,
         path: tuple[Any, ...]) -> Any:
    value = parent[key]
    sub = (*path, key)
    if isinstance(value, (dict, list)):
        return interpolate(value, env, warn, sub)
    if isinstance(value, (Reset, Override)):
        if isinstance(value.value, (dict, list)):
            interpolate(value.value, env, warn, sub)
        return value
    if not isinstance(value, str) or "$" not in value:
        return value
    mark = None
    if isinstance(parent, MDict):
        mark = parent.marks.get(key)
    elif isinstance(parent, MList):
        mark = parent.marks[key]

    def _warn(msg: str) -> None:
        if warn:
            warn(f"{mark}: {format_path(sub)}: {msg}" if mark else f"{format_path(sub)}: {msg}")

    try:
        return substitute(value, env, _warn)
    except _Missing as e:
        where = f"{mark}: {format_path(sub)}" if mark else format_path(sub)
        raise InvalidArgument(e.message, where=where,
                              hint="set it in the environment or in .env" if e.name else None) from None
