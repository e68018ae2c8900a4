"""The manager's side of the embedded DNS: the records file, and starting/stopping the daemon (dns.py).

<run>/network/dns.json holds {"zones": {gateway ip: {name: [ips]}}, "views": ...}; the daemon listens
on every gateway (UDP+TCP port 53), answers from the zone of the address a query arrived on (and
those of the client's other networks), re-reads the
file when it changes and re-binds its listeners on SIGHUP, then writes <run>/network/dns.loaded.
It exits by itself once no user-defined network is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runtime import paths
from runtime.errors import RuntimeFailure
from runtime.network import procs
from runtime.util.fs import atomic_write, atomic_write_json


def state_dir() -> Path:
    return paths.run_dir() / "network"


def zones(networks: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """gateway -> {lower-case name: [ips]} for the user-defined networks (the default bridge has no DNS)."""
    out: dict[str, dict[str, list[str]]] = {}
    for net in networks:
        if net.get("default"):
            continue
        zone: dict[str, list[str]] = {}
        for e in endpoints:
            ep = e.get("networks", {}).get(net["id"])
            if not ep:
                continue
            names = {e.get("name") or "", e["id"][:12], *ep.get("aliases", [])}
            for name in names:
                if name:
                    ips = zone.setdefault(name.lower().rstrip("."), [])
                    if ep["ip"] not in ips:
                        ips.append(ep["ip"])
        out[net["gateway"]] = zone
    return out


def views(networks: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """gateway -> {container ip on it: [gateways of all its user networks, this one first]}: a container
    connected to several networks resolves the names of all of them (as with Docker)."""
    gw = {n["id"]: n["gateway"] for n in networks if not n.get("default")}
    out: dict[str, dict[str, list[str]]] = {}
    for e in endpoints:
        mine = [(gw[nid], ep["ip"]) for nid, ep in e.get("networks", {}).items() if nid in gw]
        if len(mine) < 2:
            continue
        for g, ip in mine:
            out.setdefault(g, {})[ip] = [g] + [o for o, _ in mine if o != g]
    return out


def listeners_key(gateways: list[str]) -> str:
    return ",".join(sorted(gateways))


def daemon_pid(d: Path) -> int | None:
    try:
        pid = int((d / "dns.pid").read_text())
    except (OSError, ValueError):
        return None
    cmd = procs.cmdline(pid)
    return pid if b"runtime.network.dns" in cmd and os.fsencode(str(d)) in cmd else None


def _wait_loaded(d: Path, key: str, pid: int | None) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if (d / "dns.loaded").read_text() == key:
                return
        if pid is not None and not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.005)
    log = ""
    with contextlib.suppress(OSError):
        log = (d / "dns.log").read_text().strip().splitlines()[-1]
    raise RuntimeFailure(f"the embedded DNS server did not come up{': ' + log if log else ''}",
                         hint=f"see {d / 'dns.log'}")


def sync(store: Any) -> None:
    """Write the records of every user network and make the daemon listen on exactly their gateways."""
    d = state_dir()
    with store.lock():
        data = zones(store.networks(), store.endpoints())
        key = listeners_key(list(data))
        atomic_write_json(d / "dns.json", {"zones": data, "views": views(store.networks(), store.endpoints()),
                                           "listeners": key})
        pid = daemon_pid(d)
        if not data:
            if pid:
                stop()
            return
        with contextlib.suppress(FileNotFoundError):
            if (d / "dns.loaded").read_text() == key and pid:
                return  # records are re-read by the daemon on change; listeners are right
        if pid:
            os.kill(pid, signal.SIGHUP)
        else:
            pid = _start(d)
        _wait_loaded(d, key, pid)


def _start(d: Path) -> int:
    d.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (d / "dns.loaded").unlink()
    log = os.open(d / "dns.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.Popen([sys.executable, "-m", "runtime.network.dns", str(d)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True, close_fds=True,
                                env=env, cwd="/")
    finally:
        os.close(log)
    atomic_write(d / "dns.pid", str(proc.pid))
    return proc.pid


def stop() -> None:
    """Stop this WHARF_RUN's DNS daemon (if it runs) and wait for it to exit."""
    d = state_dir()
    pid = daemon_pid(d)
    if pid is None:
        return
    procs.stop(pid, b"runtime.network.dns")
    for name in ("dns.pid", "dns.loaded"):
        with contextlib.suppress(FileNotFoundError):
            (d / name).unlink()
