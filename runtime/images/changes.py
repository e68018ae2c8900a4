"""Docker's `--change` / `-c` instructions for commit and import: `-c 'CMD ["x"]'`, `-c 'ENV A=b'`.

parse_changes(["CMD [\"sh\"]", "ENV A=1"]) -> {"Cmd": ["sh"], "Env": ["A=1"]}
apply_changes(image_config_config, changes) -> a new "config" dict (Env/Labels/ExposedPorts/Volumes merge,
the rest replace).
"""

from __future__ import annotations

import copy
import json
import shlex
from typing import Any

from runtime.errors import InvalidArgument

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")
_MERGED = ("Env", "Labels", "ExposedPorts", "Volumes")


def _bad(change: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid change {change!r}: {why}",
                           hint=f"supported instructions: {', '.join(SUPPORTED)}")


def _json_or_shell(change: str, rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        if rest.rstrip().endswith("]"):
            raise _bad(change, "the JSON array does not parse (use double quotes)")
    return ["/bin/sh", "-c", rest]


def _pairs(change: str, rest: str, instr: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise _bad(change, str(e)) from None
    if not words:
        raise _bad(change, f"{instr} needs at least one key=value")
    if "=" not in words[0] and instr == "ENV":  # legacy `ENV KEY value with spaces`
        key, _, value = rest.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise _bad(change, f"{w!r} is not key=value")
        out.append((key, value))
    return out


def _ports(change: str, rest: str) -> list[str]:
    out = []
    for p in rest.split():
        port, _, proto = p.partition("/")
        proto = (proto or "tcp").lower()
        lo, _, hi = port.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise _bad(change, f"{p!r} is not a port[/tcp|udp|sctp]")
        for n in range(int(lo), int(hi or lo) + 1):
            out.append(f"{n}/{proto}")
    if not out:
        raise _bad(change, "EXPOSE needs a port")
    return out


def parse_change(change: str) -> dict[str, Any]:
    instr, _, rest = change.strip().partition(" ")
    instr, rest = instr.upper(), rest.strip()
    if instr not in SUPPORTED:
        raise _bad(change, f"unknown instruction {instr or '(empty)'!r}")
    if not rest:
        raise _bad(change, f"{instr} needs an argument")
    if instr == "CMD":
        return {"Cmd": _json_or_shell(change, rest)}
    if instr == "ENTRYPOINT":
        return {"Entrypoint": _json_or_shell(change, rest)}
    if instr == "ENV":
        return {"Env": [f"{k}={v}" for k, v in _pairs(change, rest, instr)]}
    if instr == "LABEL":
        return {"Labels": dict(_pairs(change, rest, instr))}
    if instr == "EXPOSE":
        return {"ExposedPorts": {p: {} for p in _ports(change, rest)}}
    if instr == "VOLUME":
        vols = _json_or_shell(change, rest)
        vols = rest.split() if vols[:2] == ["/bin/sh", "-c"] else vols
        return {"Volumes": {v: {} for v in vols}}
    if instr == "USER":
        return {"User": rest}
    if instr == "WORKDIR":
        if not rest.startswith("/"):
            raise _bad(change, "WORKDIR must be an absolute path")
        return {"WorkingDir": rest}
    return {"StopSignal": rest}


def parse_changes(changes: list[str] | None) -> dict[str, Any]:
    """All `-c` strings folded into one dict of image-config keys (later ones win / merge)."""
    out: dict[str, Any] = {}
    for c in changes or []:
        out = _fold(out, parse_change(c))
    return out


def _fold(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(config or {})
    for key, value in changes.items():
        if key == "Env":
            env = list(new.get("Env") or [])
            for item in value:
                name = item.split("=", 1)[0]
                env = [e for e in env if e.split("=", 1)[0] != name] + [item]
            new["Env"] = env
        elif key in _MERGED:
            merged = dict(new.get(key) or {})
            merged.update(value)
            new[key] = merged
        else:
            new[key] = copy.deepcopy(value)
    return new


def merge(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`config` (an image config's "config" object) with `changes` applied; inputs are not modified."""
    new = _fold(config, changes)
    if "Entrypoint" in changes and "Cmd" not in changes:
        new.pop("Cmd", None)  # as Docker: a new ENTRYPOINT resets the inherited CMD
    return new


def apply_changes(config: dict[str, Any], changes: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Accepts either a parsed dict or the raw `-c` strings."""
    if isinstance(changes, list):
        changes = parse_changes(changes)
    return merge(config, changes or {})
