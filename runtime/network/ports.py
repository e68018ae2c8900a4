"""Host ports for `-p`: resolve random ports, refuse ports already taken on the host or by Wharf."""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Any

from runtime.engine import PortBinding
from runtime.errors import Conflict, InvalidArgument
from runtime.network import firewall


def _probe(proto: str, ip: str, port: int) -> socket.socket:
    """A socket bound to (ip, port): proof that nobody on the host holds it. Caller closes."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind)
    if proto == "tcp":  # TIME_WAIT leftovers do not count, a listener does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((ip or "0.0.0.0", port))
    except OSError:
        s.close()
        raise
    return s


def resolve(bindings: list[PortBinding], owner: str, keep: bool = False
            ) -> tuple[list[PortBinding], list[socket.socket]]:
    """Return the bindings with host ports filled in; raise Conflict when one is taken.

    With keep, also the bound sockets, one per binding (TCP ones listening) for a userland proxy;
    else they are closed. The caller holds the host-wide network lock, so two Wharf processes
    cannot pick the same port.
    """
    taken = firewall.published_elsewhere()
    held: list[socket.socket] = []
    kept: list[socket.socket] = []
    mine: set[tuple[str, int]] = set()
    out = []
    try:
        for b in bindings:
            proto = (b.protocol or "tcp").lower()
            if proto not in ("tcp", "udp"):
                raise InvalidArgument(f"unsupported protocol {b.protocol!r} for port {b.container_port}",
                                      hint="use tcp or udp")
            if not 0 < b.container_port <= 65535 or not 0 <= b.host_port <= 65535:
                raise InvalidArgument(f"invalid port mapping {b.host_port}:{b.container_port}/{proto}",
                                      hint="ports are 1-65535 (0 for the host port picks a free one)")
            ip = b.host_ip if b.host_ip not in ("", "0.0.0.0") else ""
            if b.host_port:
                port = b.host_port
                where = f"{ip or '0.0.0.0'}:{port}/{proto}"
                if (proto, port) in mine or any(t != firewall.port_table(owner) and (hip == "0.0.0.0" or not ip
                                                                                   or hip == ip)
                                                for hip, t in taken.get((proto, port), [])):
                    raise Conflict(f"port {where} is already published by another container",
                                   hint="pick another host port, or 0 / leave it out for a free one")
                try:
                    s = _probe(proto, ip, port)
                    held.append(s)
                except OSError as e:
                    if e.errno == errno.EADDRINUSE:
                        raise Conflict(f"port {where} is already in use on the host",
                                       hint="stop what listens there or pick another host port") from None
                    raise InvalidArgument(f"cannot publish on {where}: {e.strerror}",
                                          hint="the host IP must be an address of this host") from None
            else:
                for _ in range(64):
                    s = _probe(proto, ip, 0)
                    port = s.getsockname()[1]
                    held.append(s)
                    if (proto, port) not in mine and (proto, port) not in taken:
                        break
                else:
                    raise Conflict(f"no free host port for {b.container_port}/{proto}")
            mine.add((proto, port))
            kept.append(s)
            out.append(PortBinding(container_port=b.container_port, protocol=proto, host_ip=b.host_ip,
                                   host_port=port))
    except BaseException:
        keep = False
        raise
    finally:
        for s in held:
            if not (keep and s in kept):
                with contextlib.suppress(OSError):
                    s.close()
    if keep:
        for s, b in zip(kept, out, strict=True):
            if b.protocol == "tcp":
                s.listen(512)
    return out, kept if keep else []


def as_dicts(bindings: list[PortBinding]) -> list[dict[str, Any]]:
    return [{"container_port": b.container_port, "protocol": b.protocol, "host_ip": b.host_ip,
             "host_port": b.host_port} for b in bindings]


def spawn_proxy(socks: list[socket.socket], bindings: list[PortBinding], container_ip: str, owner: str) -> int:
    """Start the userland proxy on the already bound sockets; return its pid. `owner` (the container
    id) is in its argv, so a proxy whose pid was never recorded (crash) is still found."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    spec = [{"fd": s.fileno(), "proto": b.protocol, "target": [container_ip, b.container_port]}
            for s, b in zip(socks, bindings, strict=True)]
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "runtime.network.proxy", json.dumps(spec), owner],
                            pass_fds=[s.fileno() for s in socks], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, start_new_session=True, env=env, cwd="/")
    return proc.pid


def stop_proxy(pid: int | None, owner: str) -> None:
    """Stop the proxy of container `owner` (by pid, or found by its argv when the pid was not recorded)."""
    import signal

    from runtime.network import procs

    module = b"runtime.network.proxy"
    pids = [pid] if pid else procs.find(module, owner.encode())
    for p in pids:
        procs.stop(p, module, signal.SIGKILL)
