"""Merging compose files (13-merge.md) and `extends` (05-services.md#extends).

Mappings merge key by key; sequences append; `command`, `entrypoint` and
`healthcheck.test` are replaced; `ports`, `volumes`, `secrets`, `configs` merge entries
that share their unique key; `!reset` removes, `!override` replaces. Service keys that
may be written as a list or a mapping (environment, labels, depends_on, networks, ...)
are brought to the mapping form first so that both spellings merge the same way.
"""

from __future__ import annotations

from typing import Any

from runtime.errors import InvalidArgument

from .yamlmarks import MDict, MList, Override, Reset, format_path

_REPLACED = {"command", "entrypoint"}
_UNIQUE = {"ports", "volumes", "secrets", "configs"}
_DEDUP = {"cap_add", "cap_drop", "expose", "security_opt", "dns", "dns_search", "dns_opt", "profiles",
          "external_links", "group_add", "device_cgroup_rules"}
_KV_LISTS = {"environment": "=", "labels": "=", "sysctls": "=", "extra_hosts": None, "annotations": "="}


def _kv_to_map(value: Any, sep: str | None, key: str) -> Any:
    if not isinstance(value, list):
        return value
    out = MDict(mark=getattr(value, "mark", None))
    marks = getattr(value, "marks", [None] * len(value))
    for item, m in zip(value, marks, strict=False):
        if not isinstance(item, str):
            raise InvalidArgument(f"{key} entries must be strings like KEY=VALUE, got {item!r}",
                                  where=str(m) if m else None)
        if sep is None:  # extra_hosts: "host:ip" or "host=ip" (ip may hold ':' for IPv6)
            k, s, v = item.partition("=")
            if not s:
                k, s, v = item.partition(":")
        else:
            k, s, v = item.partition(sep)
        k = k.strip()
        out[k] = v if s else None
        out.marks[k] = m
    return out


def _list_to_map(value: Any, default: Any) -> Any:
    if not isinstance(value, list):
        return value
    out = MDict(mark=getattr(value, "mark", None))
    for item, m in zip(value, value.marks if isinstance(value, MList) else [None] * len(value), strict=False):
        out[item if isinstance(item, str) else str(item)] = default() if callable(default) else default
        out.marks[item if isinstance(item, str) else str(item)] = m
    return out


def normalize_service(svc: Any) -> Any:
    """Bring list-or-mapping service keys to their mapping form (marks kept)."""
    if not isinstance(svc, dict):
        return svc
    for key, sep in _KV_LISTS.items():
        if key in svc and not isinstance(svc[key], (Reset, Override)):
            svc[key] = _kv_to_map(svc[key], sep, key)
    if isinstance(svc.get("depends_on"), list):
        svc["depends_on"] = _list_to_map(svc["depends_on"], lambda: MDict(condition="service_started"))
    if isinstance(svc.get("networks"), list):
        svc["networks"] = _list_to_map(svc["networks"], None)
    if isinstance(svc.get("build"), str):
        svc["build"] = MDict(context=svc["build"], mark=svc.marks.get("build") if isinstance(svc, MDict) else None)
    for key in ("dns", "dns_search", "env_file", "tmpfs", "expose", "profiles"):
        if isinstance(svc.get(key), (str, int)):
            lst = MList(mark=svc.marks.get(key) if isinstance(svc, MDict) else None)
            lst.add(svc[key], lst.mark)
            svc[key] = lst
    return svc


# ---------------------------------------------------------------- unique keys


def port_key(item: Any) -> tuple[Any, ...]:
    if isinstance(item, dict):
        return (str(item.get("host_ip", "")), str(item.get("target", "")), str(item.get("published", "")),
                str(item.get("protocol", "tcp")))
    text = str(item)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        return (parts[0].strip("[]"), parts[2], parts[1], proto)
    if len(parts) == 2:
        return ("", parts[1], parts[0], proto)
    return ("", parts[0], "", proto)


def volume_key(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("target", ""))
    parts = str(item).split(":")
    if len(parts) == 1:
        return parts[0]
    if len(parts) >= 3 and parts[-1] and "/" not in parts[-1]:  # src:dst:mode
        return parts[-2]
    return parts[1] if len(parts) == 2 else parts[-2]


def _target_key(item: Any) -> str:
    if isinstance(item, dict):
        src = str(item.get("source", ""))
        return str(item.get("target") or src)
    return str(item)


def _unique_key(key: str, item: Any) -> Any:
    if key == "ports":
        return port_key(item)
    if key == "volumes":
        return volume_key(item)
    return _target_key(item)


# ---------------------------------------------------------------- merge


def _strip(value: Any) -> Any:
    if isinstance(value, (Reset, Override)):
        value = value.value if isinstance(value, Override) else None
    if isinstance(value, dict):
        return _clean_dict(value)
    if isinstance(value, list):
        out = MList(mark=getattr(value, "mark", None))
        for idx, v in enumerate(value):
            if not isinstance(v, Reset):
                out.add(_strip(v), value.marks[idx] if isinstance(value, MList) else None)
        return out
    return value


def _clean_dict(d: dict) -> MDict:
    out = MDict(mark=getattr(d, "mark", None))
    for k, v in d.items():
        if isinstance(v, Reset):
            continue
        out[k] = _strip(v)
        out.marks[k] = getattr(d, "marks", {}).get(k)
    return out


def merge(base: Any, over: Any, path: tuple[Any, ...] = ()) -> Any:
    """Merge `over` into `base` (neither is modified) following the compose rules."""
    if isinstance(over, Reset):
        return None
    if isinstance(over, Override):
        return _strip(over.value)
    if base is None:
        return _strip(over)
    key = path[-1] if path else None
    in_service = len(path) == 3 and path[0] == "services"
    if isinstance(base, dict) and isinstance(over, dict):
        out = MDict(mark=getattr(base, "mark", None))
        for k, v in base.items():
            if not isinstance(v, (Reset, Override)):
                out[k] = v
                out.marks[k] = getattr(base, "marks", {}).get(k)
        for k, v in over.items():
            if isinstance(v, Reset):
                out.pop(k, None)
                out.marks.pop(k, None)
                continue
            if len(path) == 3 and path[0] == "services" and path[2] == "healthcheck" and k == "test":
                out[k] = _strip(v.value if isinstance(v, Override) else v)
            elif k in out:
                out[k] = merge(out[k], v, (*path, k))
            else:
                out[k] = _strip(v)
            out.marks[k] = getattr(over, "marks", {}).get(k) or out.marks.get(k)
        return out
    if isinstance(base, list) and isinstance(over, list):
        if in_service and key in _REPLACED:
            return _strip(over)
        if in_service and key in _UNIQUE:
            out_l = MList(mark=getattr(base, "mark", None))
            index: dict[Any, int] = {}
            for src in (base, over):
                for idx, item in enumerate(src):
                    if isinstance(item, Reset):
                        continue
                    m = src.marks[idx] if isinstance(src, MList) else None
                    uk = _unique_key(key, item)
                    if uk in index:
                        out_l[index[uk]] = _strip(item)
                        out_l.marks[index[uk]] = m
                    else:
                        index[uk] = len(out_l)
                        out_l.add(_strip(item), m)
            return out_l
        out_l = MList(mark=getattr(base, "mark", None))
        seen: set[Any] = set()
        dedup = in_service and key in _DEDUP
        for src in (base, over):
            for idx, item in enumerate(src):
                if isinstance(item, Reset):
                    continue
                if dedup:
                    h = repr(item)
                    if h in seen:
                        continue
                    seen.add(h)
                out_l.add(_strip(item), src.marks[idx] if isinstance(src, MList) else None)
        return out_l
    if isinstance(base, (dict, list)) != isinstance(over, (dict, list)) and over is not None:
        if not (in_service and key in _REPLACED):
            where = getattr(over, "mark", None)
            raise InvalidArgument(
                f"cannot merge a {type(over).__name__.lstrip('M').lower()} into a "
                f"{type(base).__name__.lstrip('M').lower()}", where=f"{where}: {format_path(path)}" if where
                else format_path(path))
    return _strip(over)


def mapping_values(doc: Any, key: str) -> Any:
    """The values of `doc[key]` when it is a mapping, else nothing: a wrong type is reported by
    the models' validation with its file:line, not by a crash while loading."""
    value = doc.get(key) if isinstance(doc, dict) else None
    return value.values() if isinstance(value, dict) else ()


def merge_files(docs: list[Any]) -> MDict:
    """Merge several loaded compose files, later ones override earlier ones."""
    out: Any = MDict()
    for doc in docs:
        for svc in mapping_values(doc, "services"):
            normalize_service(svc)
        out = merge(out, doc)
    return out if isinstance(out, MDict) else MDict()
