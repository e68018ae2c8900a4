"""Values of the metadata instructions: EXPOSE port specs, HEALTHCHECK durations, STOPSIGNAL, ENV lists."""

from __future__ import annotations

import re
import signal

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration ("1m30s", "500ms", "0") -> nanoseconds; ValueError when malformed."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"time: invalid duration {text!r} (e.g. 30s, 1m30s, 500ms)")
    return int(total)


def parse_ports(spec: str) -> list[str]:
    """`80`, `80/udp`, `8000-8010/tcp` -> ["80/tcp"], ... (Docker's nat.ParsePortSpecs for EXPOSE)."""
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid proto: {proto}")
    if ":" in port:
        raise ValueError(f"invalid containerPort: {spec} (EXPOSE takes container ports only; publish with -p)")
    lo, _, hi = port.partition("-")
    try:
        start, end = int(lo), int(hi or lo)
    except ValueError:
        raise ValueError(f"invalid containerPort: {port}") from None
    if not (0 < start <= end <= 65535):
        raise ValueError(f"invalid port range: {port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def check_signal(text: str) -> str:
    """STOPSIGNAL accepts SIGTERM, TERM, 15 (and SIGRTMIN+n)."""
    if text.isdigit():
        return text
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-") or hasattr(signal.Signals, name):
        return text
    raise ValueError(f"invalid signal: {text}")


def set_env(env: list[str], key: str, value: str) -> list[str]:
    """Replace KEY=... in place or append it."""
    out = list(env)
    for i, e in enumerate(out):
        if e.partition("=")[0] == key:
            out[i] = f"{key}={value}"
            return out
    out.append(f"{key}={value}")
    return out


def env_dict(env: list[str]) -> dict[str, str]:
    return {k: v for k, _, v in (e.partition("=") for e in env)}
