"""Validation of the merged data: pydantic errors -> `file:line:col: path: message`,
unsupported keys, and the cross-references pydantic cannot see (depends_on, cycles,
networks, volumes, configs, secrets, env files)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from runtime.errors import InvalidArgument

from .envfile import read_env_file
from .yamlmarks import format_path, mark_of, plain


def _where(raw: Any, loc: tuple[Any, ...]) -> str:
    m = mark_of(raw, loc)
    return f"{m}: {format_path(loc)}" if m else format_path(loc)


def _data_loc(raw: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The part of a pydantic loc that names real keys of the data (drops union/validator tags)."""
    out, cur = [], raw
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(cur, (dict, list)) and isinstance(part, str) and ("[" in part or part in
                                                                           ("str", "int", "list", "dict")):
            continue
        else:
            out.append(part)
            cur = None
    return tuple(out)


def _unsupported_kind(loc: tuple[Any, ...]) -> str:
    from .loader import COMPOSE_OTHER_KEYS, COMPOSE_SERVICE_KEYS, COMPOSE_TOP_KEYS

    key = loc[-1]
    known = (COMPOSE_TOP_KEYS if len(loc) == 1 else
             COMPOSE_SERVICE_KEYS if len(loc) == 3 and loc[0] == "services" else COMPOSE_OTHER_KEYS)
    return "not supported by Wharf" if key in known else "unknown key"


def validate_model(raw: Any, ignore_unsupported: bool, warn: Callable[[str], None]) -> Any:
    from pydantic import ValidationError

    from .models import Project

    data = plain(raw)
    _precheck_items(data, raw)
    for _ in range(100):
        try:
            return Project.model_validate(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            extras = [e for e in errors if e["type"] == "extra_forbidden"]
            first = extras[0] if extras else errors[0]
            loc = _data_loc(data, tuple(first["loc"]))
            if first["type"] == "extra_forbidden":
                kind = _unsupported_kind(loc)
                msg = f"{'unsupported' if kind.startswith('not') else 'unknown'} key {loc[-1]!r} ({kind})"
                if not ignore_unsupported or kind == "unknown key":
                    hint = ("remove it, or pass --ignore-unsupported to skip it with a warning"
                            if kind.startswith("not") else "check the spelling (compose specification)")
                    raise InvalidArgument(msg, where=_where(raw, loc), hint=hint) from None
                warn(f"{_where(raw, loc)}: {msg}: ignored")
                parent = data
                for p in loc[:-1]:
                    parent = parent[p]
                del parent[loc[-1]]
                continue
            raise InvalidArgument(_message(first), where=_where(raw, loc)) from None
    raise InvalidArgument("too many unsupported keys")


def _precheck_items(data: Any, raw: Any) -> None:
    """Short-syntax list items parsed one by one, so that errors name the item index."""
    from . import units

    services = data.get("services") if isinstance(data, dict) else None
    for name, svc in (services or {}).items() if isinstance(services, dict) else ():
        if not isinstance(svc, dict):
            continue
        for key, parse in (("ports", units.parse_port), ("volumes", units.parse_volume)):
            items = svc.get(key)
            for i, item in enumerate(items if isinstance(items, list) else ()):
                try:
                    parse(item)
                except ValueError as e:
                    raise InvalidArgument(str(e), where=_where(raw, ("services", name, key, i))) from None


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] in ("missing",):
        return f"required key {err['loc'][-1]!r} is missing"
    if err["type"] == "literal_error" or err["type"].endswith("_type") or err["type"].endswith("_parsing"):
        return f"{msg} (got {err.get('input')!r})"
    return msg


def check_references(project: Any, raw: Any, env: Mapping[str, str], watched: set[Path]) -> dict[str, str]:
    """Cross-reference checks; also resolves env_file + bare environment keys. Returns
    sha256 digests of config/secret contents (for the config hash)."""
    services = project.services
    for name, svc in services.items():
        base = ("services", name)
        for dep, cond in list(svc.depends_on.items()):
            if dep not in services:
                if not cond.required:
                    del svc.depends_on[dep]
                    continue
                raise InvalidArgument(f"depends on unknown service {dep!r}" + (
                    " (disabled by profiles?)" if dep in (plain(raw).get("services") or {}) else ""),
                    where=_where(raw, (*base, "depends_on", dep)),
                    hint=f"services are: {', '.join(sorted(services))}")
        for net in svc.networks:
            if net != "default" and net not in project.networks:
                raise InvalidArgument(f"network {net!r} is not declared under top-level networks",
                                      where=_where(raw, (*base, "networks", net)))
        mode = svc.network_mode
        if mode and mode.startswith("service:") and mode[8:] not in services:
            raise InvalidArgument(f"network_mode refers to unknown service {mode[8:]!r}",
                                  where=_where(raw, (*base, "network_mode")))
        if mode and mode.startswith("service:"):
            raise InvalidArgument("network_mode 'service:NAME' is not supported by Wharf",
                                  where=_where(raw, (*base, "network_mode")))
        for i, vol in enumerate(svc.volumes):
            if vol.type == "volume" and vol.source and vol.source not in project.volumes:
                raise InvalidArgument(f"volume {vol.source!r} is not declared under top-level volumes",
                                      where=_where(raw, (*base, "volumes", i)),
                                      hint="declare it, or use ./path for a bind mount")
        for kind in ("secrets", "configs"):
            for i, ref in enumerate(getattr(svc, kind)):
                if ref.source not in getattr(project, kind):
                    raise InvalidArgument(f"{kind[:-1]} {ref.source!r} is not declared under top-level {kind}",
                                          where=_where(raw, (*base, kind, i)))
        if svc.container_name and svc.replicas > 1:
            raise InvalidArgument(f"container_name {svc.container_name!r} cannot be used with "
                                  f"{svc.replicas} replicas", where=_where(raw, (*base, "container_name")))
        # environment: env_file values first, then `environment`; bare keys from the environment
        merged: dict[str, str | None] = {}
        for i, ef in enumerate(svc.env_file):
            p = Path(ef.path)
            watched.add(p)
            if not p.is_file():
                if ef.required:
                    raise InvalidArgument(f"env file {p} not found", where=_where(raw, (*base, "env_file", i)),
                                          hint="create it or mark it `required: false`")
                continue
            merged.update(read_env_file(p, env, raw=ef.format == "raw"))
        merged.update(svc.environment)
        svc.environment = {k: (v if v is not None else env.get(k)) for k, v in merged.items()
                           if v is not None or k in env}
    _check_cycles(services, raw)
    digests: dict[str, str] = {}
    for kind in ("configs", "secrets"):
        for name, obj in getattr(project, kind).items():
            where = _where(raw, (kind, name))
            if obj.file is not None:
                p = Path(obj.file)
                watched.add(p)
                if not p.exists():
                    raise InvalidArgument(f"{kind[:-1]} file {p} not found", where=where)
                data = p.read_bytes() if p.is_file() else b""
            elif obj.environment is not None:
                if obj.environment not in env:
                    raise InvalidArgument(f"variable {obj.environment} is not set", where=where)
                data = env[obj.environment].encode()
                obj.content, obj.environment = env[obj.environment], None
            else:
                data = (obj.content or "").encode()
            digests[f"{kind}.{name}"] = hashlib.sha256(data).hexdigest()
    return digests


def _check_cycles(services: dict[str, Any], raw: Any) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in services[name].depends_on:
            if state.get(dep) == 1:
                cycle = path[path.index(dep):] + [dep] if dep in path else [name, dep]
                raise InvalidArgument(f"dependency cycle: {' -> '.join(cycle)}",
                                      where=_where(raw, ("services", name, "depends_on", dep)))
            if state.get(dep) is None:
                visit(dep, [*path, dep])
        state[name] = 2

    for n in sorted(services):
        if n not in state:
            visit(n, [n])
