"""Docker's flag value syntaxes -> engine dataclasses. Every error names the flag and the fix."""

from __future__ import annotations

import os
import re
import shlex

from runtime.engine import HealthCheck, MountSpec, PortBinding, RestartPolicy, Ulimit
from runtime.errors import InvalidArgument

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.I)
_DUR = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_bytes(value: str, flag: str) -> int:
    """`512m`, `1g`, `1.5GB`, `100000` -> bytes (docker's RAMInBytes)."""
    m = _SIZE.match(value)
    if not m:
        raise InvalidArgument(f"invalid size {value!r} for {flag}",
                              hint="use a number with an optional unit b, k, m, g (e.g. 512m)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_duration(value: str, flag: str) -> float:
    """Go durations (`30s`, `1m30s`, `500ms`); a bare number means seconds."""
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    parts = _DUR.findall(v)
    if not parts or "".join(a + b for a, b in parts) != v:
        raise InvalidArgument(f"invalid duration {value!r} for {flag}", hint="use e.g. 30s, 1m30s, 500ms")
    return sum(float(a) * _DUR_UNITS[b] for a, b in parts)


def parse_port_range(s: str, flag: str) -> list[int]:
    lo, sep, hi = s.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise InvalidArgument(f"invalid port {s!r} in {flag}", hint="use [ip:][hostPort:]containerPort[/tcp|udp]"
                              ) from None
    if not (0 < a <= b <= 65535):
        raise InvalidArgument(f"invalid port {s!r} in {flag}", hint="ports are 1-65535")
    return list(range(a, b + 1))


def parse_publish(value: str) -> list[PortBinding]:
    """`-p [ip:][hostPort:]containerPort[/proto]`, with ranges."""
    flag = f"-p {value}"
    rest, _, proto = value.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in {flag}", hint="use tcp or udp")
    if rest.startswith("["):  # [ipv6]:host:container
        ip, _, rest = rest[1:].partition("]")
        rest = rest.lstrip(":")
        parts = [ip, *rest.split(":")]
    else:
        parts = rest.split(":")
    if len(parts) == 1:
        ip, host, cont = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, cont = "", parts[0], parts[1]
    elif len(parts) == 3:
        ip, host, cont = parts
    else:
        raise InvalidArgument(f"invalid port spec {value!r}", hint="use [ip:][hostPort:]containerPort[/tcp|udp]")
    cports = parse_port_range(cont, flag)
    hports = parse_port_range(host, flag) if host else [0] * len(cports)
    if len(hports) == 1 and len(cports) > 1:
        hports = hports * len(cports)
    if len(hports) != len(cports):
        raise InvalidArgument(f"port ranges of different sizes in {flag}")
    return [PortBinding(container_port=c, protocol=proto, host_ip=ip, host_port=h)
            for c, h in zip(cports, hports, strict=True)]


def parse_env_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"cannot read --env-file {path}: {e.strerror}") from None
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            if not line.replace("_", "a").isalnum():
                raise InvalidArgument(f"invalid variable name {line!r}", where=f"{path}:{n}")
            if line in os.environ:
                out.append(f"{line}={os.environ[line]}")
            continue
        out.append(line)
    return out


def parse_env(values: list[str]) -> list[str]:
    out = []
    for v in values:
        if "=" in v:
            out.append(v)
        elif v in os.environ:  # `-e NAME` passes the caller's value
            out.append(f"{v}={os.environ[v]}")
    return out


def parse_labels(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        k, _, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {v!r}", hint="use --label key=value")
        out[k] = val
    return out


def parse_volume(value: str) -> MountSpec:
    """`-v [name|/host:]/container[:ro|rw|z|Z|shared|rslave|...|nocopy]`."""
    parts = value.split(":")
    if len(parts) == 1:
        return _check_target(MountSpec(type="volume", target=parts[0]), value)
    if len(parts) > 3:
        raise InvalidArgument(f"invalid volume spec {value!r}", hint="use [source:]/container/path[:ro]")
    src, target = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) == 3 else []
    m = MountSpec(type="bind" if src.startswith("/") or src.startswith(".") else "volume",
                  target=target, source=os.path.abspath(src) if src.startswith(".") else src)
    for o in opts:
        if o == "ro":
            m.read_only = True
        elif o in ("rw", "z", "Z", ""):
            pass
        elif o in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
            m.propagation = o
        elif o == "nocopy":
            m.volume_nocopy = True
        else:
            raise InvalidArgument(f"invalid mode {o!r} in -v {value}", hint="use ro, rw, nocopy or a propagation")
    return _check_target(m, value)


def _check_target(m: MountSpec, value: str) -> MountSpec:
    if not m.target.startswith("/"):
        raise InvalidArgument(f"invalid mount target {m.target!r} in {value!r}", hint="it must be an absolute path")
    if m.target == "/":
        raise InvalidArgument(f"invalid mount target '/' in {value!r}", hint="mount on a directory below /")
    return m


def parse_mount(value: str) -> MountSpec:
    """`--mount type=bind|volume|tmpfs,source=..,target=..,readonly,...`."""
    kv: dict[str, str] = {}
    for item in value.split(","):
        k, sep, v = item.partition("=")
        kv[k.strip().lower()] = v if sep else "true"
    typ = kv.pop("type", "volume")
    if typ not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid mount type {typ!r} in --mount {value}", hint="use bind, volume or tmpfs")
    target = kv.pop("target", "") or kv.pop("destination", "") or kv.pop("dst", "")
    src = kv.pop("source", "") or kv.pop("src", "")
    m = MountSpec(type=typ, target=target, source=src)
    for k, v in kv.items():
        if k in ("readonly", "ro"):
            m.read_only = v.lower() in ("true", "1", "")
        elif k == "bind-propagation":
            m.propagation = v
        elif k == "volume-nocopy":
            m.volume_nocopy = v.lower() in ("true", "1")
        elif k == "volume-label":
            lk, _, lv = v.partition("=")
            m.volume_labels[lk] = lv
        elif k == "tmpfs-size":
            m.tmpfs_size = parse_bytes(v, "--mount tmpfs-size")
        elif k == "tmpfs-mode":
            m.tmpfs_mode = int(v, 8)
        elif k not in ("consistency", "volume-driver"):
            raise InvalidArgument(f"unknown option {k!r} in --mount {value}")
    if not target:
        raise InvalidArgument(f"--mount {value}: target is required")
    if typ == "bind":
        if not src:
            raise InvalidArgument(f"--mount {value}: source is required for a bind mount")
        if not os.path.exists(src):
            raise InvalidArgument(f"invalid mount config: bind source path does not exist: {src}")
        m.source = os.path.abspath(src)
    return _check_target(m, value)


def parse_tmpfs(value: str) -> MountSpec:
    target, _, opts = value.partition(":")
    m = MountSpec(type="tmpfs", target=target)
    for o in filter(None, opts.split(",")):
        k, _, v = o.partition("=")
        if k == "size":
            m.tmpfs_size = parse_bytes(v, "--tmpfs size")
        elif k == "mode":
            m.tmpfs_mode = int(v, 8)
        elif k == "ro":
            m.read_only = True
    return _check_target(m, value)


def parse_restart(value: str) -> RestartPolicy:
    name, _, count = value.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy {value!r}",
                              hint="use no, always, unless-stopped or on-failure[:max-retries]")
    if count and (name != "on-failure" or not count.isdigit()):
        raise InvalidArgument(f"invalid restart policy {value!r}",
                              hint="only on-failure takes a maximum retry count, e.g. on-failure:3")
    return RestartPolicy(name=name, maximum_retry_count=int(count or 0))


def parse_ulimit(value: str) -> Ulimit:
    name, _, lim = value.partition("=")
    soft, _, hard = lim.partition(":")
    names = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
             "rss", "rtprio", "rttime", "sigpending", "stack", "as")
    try:
        s = int(soft)
        h = int(hard) if hard else s
    except ValueError:
        raise InvalidArgument(f"invalid ulimit {value!r}", hint="use name=soft[:hard], e.g. nofile=1024:2048"
                              ) from None
    if name not in names:
        raise InvalidArgument(f"invalid ulimit type {name!r}", hint=f"one of {', '.join(names)}")
    if s > h:
        raise InvalidArgument(f"ulimit {value}: soft limit is greater than the hard limit")
    return Ulimit(name=name, soft=s, hard=h)


def parse_cpus(value: str) -> int:
    try:
        v = float(value)
    except ValueError:
        raise InvalidArgument(f"invalid --cpus {value!r}", hint="use a number of CPUs, e.g. 0.5") from None
    if v <= 0 or v > os.cpu_count():
        raise InvalidArgument(f"invalid --cpus {value!r}", hint=f"range is 0.01-{os.cpu_count()}")
    return int(v * 1e9)


def parse_health(cmd: str | None, interval: str | None, timeout: str | None, retries: int | None,
                 start_period: str | None, start_interval: str | None, no_healthcheck: bool
                 ) -> HealthCheck | None:
    if no_healthcheck:
        return HealthCheck(test=["NONE"])
    if cmd is None and not any((interval, timeout, retries, start_period, start_interval)):
        return None
    hc = HealthCheck(test=["CMD-SHELL", cmd] if cmd else [])
    if interval:
        hc.interval = parse_duration(interval, "--health-interval")
    if timeout:
        hc.timeout = parse_duration(timeout, "--health-timeout")
    if retries is not None:
        hc.retries = retries
    if start_period:
        hc.start_period = parse_duration(start_period, "--health-start-period")
    if start_interval:
        hc.start_interval = parse_duration(start_interval, "--health-start-interval")
    return hc


def parse_add_host(value: str) -> str:
    name, sep, ip = value.partition(":") if "=" not in value else value.partition("=")
    if not sep or not name or not ip:
        raise InvalidArgument(f"invalid --add-host {value!r}", hint="use host:ip")
    return f"{name}:{ip}"


def parse_command_json_or_shell(value: str) -> list[str]:
    import json

    if value.strip().startswith("["):
        try:
            out = json.loads(value)
        except ValueError:
            raise InvalidArgument(f"invalid JSON array {value!r}") from None
        return [str(x) for x in out]
    return shlex.split(value)
