"""Compose value syntaxes: durations, byte sizes, port and volume short syntax."""

from __future__ import annotations

import re
import shlex
from typing import Any

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtb]?)b?\s*$", re.I)
_BYTE_UNIT = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def duration(value: Any) -> float | None:
    """`1m30s`, `10s`, `500ms`, or a number of seconds -> seconds."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else float(value)
    text = str(value).strip()
    if not text:
        raise ValueError("empty duration")
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {text!r} (use e.g. 10s, 1m30s, 500ms)")
    return total


def byte_size(value: Any) -> int | None:
    """`512m`, `1.5G`, `1gb`, or a number of bytes -> bytes."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    m = _BYTES.match(str(value))
    if not m:
        raise ValueError(f"invalid size {value!r} (use e.g. 512m, 1.5g, 1024)")
    return int(float(m.group(1)) * _BYTE_UNIT[m.group(2).lower()])


def command(value: Any) -> list[str] | None:
    """A command as a list; a string is split like a shell would (no shell is run)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise ValueError(f"cannot split command {value!r}: {e}") from None
    if isinstance(value, list):
        return [str(v) for v in value]
    raise ValueError("must be a string or a list of strings")


def _port_range(text: str) -> list[int]:
    text = text.strip()
    if "-" in text:
        a, _, b = text.partition("-")
        lo, hi = _port_number(a), _port_number(b)
        if hi < lo:
            raise ValueError(f"invalid port range {text!r}")
        return list(range(lo, hi + 1))
    return [_port_number(text)]


def _port_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"invalid port {text!r} (1-65535)")
    return int(text)


def parse_port(value: Any) -> list[dict[str, Any]]:
    """Short port syntax `[ip:][published[-range]:]target[-range][/proto]` -> long-syntax dicts."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"invalid port spec {value!r}")
    text = str(value)
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    ip = ""
    if text.startswith("["):  # [::1]:8080:80
        end = text.find("]")
        if end < 0:
            raise ValueError(f"invalid port spec {value!r}")
        ip, text = text[1:end], text[end + 2:]
    parts = text.split(":")
    if len(parts) == 3:
        ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    elif len(parts) == 1:
        published, target = "", parts[0]
    else:
        raise ValueError(f"invalid port spec {value!r} (use [ip:][host:]container[/proto])")
    try:
        targets = _port_range(target)
        pubs = _port_range(published) if published else []
    except ValueError as e:
        raise ValueError(f"invalid port spec {value!r}: {e}") from None
    if pubs and len(pubs) != len(targets):
        raise ValueError(f"invalid port spec {value!r}: host and container ranges differ in size")
    out = []
    for i, t in enumerate(targets):
        d: dict[str, Any] = {"target": t, "protocol": proto}
        if pubs:
            d["published"] = pubs[i]
        if ip:
            d["host_ip"] = ip
        out.append(d)
    return out


def parse_volume(value: Any) -> dict[str, Any]:
    """Short volume syntax `[source:]target[:mode]` -> a long-syntax dict."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise ValueError(f"invalid volume spec {value!r}")
    parts = value.split(":")
    mode = ""
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    if len(parts) == 2:
        if parts[0].startswith(("/", ".", "~")) or parts[0] == "" or not parts[1].startswith("/"):
            if not parts[1].startswith("/"):  # target:mode (anonymous) is not allowed
                raise ValueError(f"invalid volume spec {value!r} (target must be an absolute path)")
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise ValueError(f"invalid volume spec {value!r} (use [source:]target[:ro|rw])")
    if not target.startswith("/"):
        raise ValueError(f"invalid volume spec {value!r}: target {target!r} must be an absolute path")
    d: dict[str, Any] = {"source": source, "target": target}
    d["type"] = "bind" if source.startswith(("/", ".", "~")) else "volume"
    for opt in filter(None, mode.split(",")):
        if opt == "ro":
            d["read_only"] = True
        elif opt == "rw":
            d["read_only"] = False
        elif opt in ("rprivate", "private", "rshared", "shared", "rslave", "slave"):
            d.setdefault("bind", {})["propagation"] = opt
        elif opt == "nocopy":
            d.setdefault("volume", {})["nocopy"] = True
        elif opt in ("z", "Z", "cached", "delegated", "consistent"):
            continue  # SELinux relabel / macOS consistency hints: no effect here
        else:
            raise ValueError(f"invalid volume spec {value!r}: unknown mode {opt!r}")
    return d
