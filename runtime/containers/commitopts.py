"""`commit -c 'INSTRUCTION args'` -> the image config changes dict ImageStore.commit takes."""

from __future__ import annotations

import json
import shlex

from runtime.errors import InvalidArgument

_SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL")


def _list(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            return [str(x) for x in json.loads(value)]
        except ValueError:
            raise InvalidArgument(f"invalid JSON array {value!r} in --change") from None
    return ["/bin/sh", "-c", value]


def parse_changes(changes: list[str]) -> dict:
    """{"Cmd": [...], "Env": [...], "ExposedPorts": {...}, ...} (OCI image config keys)."""
    out: dict = {}
    for ch in changes:
        word, _, rest = ch.strip().partition(" ")
        word = word.upper()
        if word not in _SUPPORTED:
            raise InvalidArgument(f"{word} is not a valid change command", hint="use " + ", ".join(_SUPPORTED))
        if word == "CMD":
            out["Cmd"] = _list(rest)
        elif word == "ENTRYPOINT":
            out["Entrypoint"] = _list(rest)
        elif word == "ENV":
            k, sep, v = rest.partition("=")
            if not sep:
                k, _, v = rest.partition(" ")
            out.setdefault("Env", []).append(f"{k.strip()}={v.strip()}")
        elif word == "EXPOSE":
            for p in rest.split():
                out.setdefault("ExposedPorts", {})[p if "/" in p else p + "/tcp"] = {}
        elif word == "LABEL":
            for item in shlex.split(rest):
                k, _, v = item.partition("=")
                out.setdefault("Labels", {})[k] = v
        elif word == "USER":
            out["User"] = rest.strip()
        elif word == "VOLUME":
            for v in _list(rest) if rest.strip().startswith("[") else rest.split():
                out.setdefault("Volumes", {})[v] = {}
        elif word == "WORKDIR":
            out["WorkingDir"] = rest.strip()
        elif word == "STOPSIGNAL":
            out["StopSignal"] = rest.strip()
    return out
