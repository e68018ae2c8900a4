"""System routes: /_ping, /version, /info, /events, /system/df, /auth."""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

from runtime.api.http import Reply, Request, Stream
from runtime.api.router import API_VERSION, MIN_API_VERSION, router
from runtime.errors import InvalidArgument, WharfError

# daemon-wide settings (`wharf serve` flags / daemon.json) that answers report
SETTINGS: dict[str, Any] = {}


@router.route("GET", r"/_ping")
def ping(engine, req: Request) -> Reply:
    return Reply(200, b"OK", "text/plain; charset=utf-8",
                 {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"})


def version_info() -> dict[str, Any]:
    from runtime import __version__

    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    details = {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": arch,
               "KernelVersion": platform.release(), "GitCommit": "wharf", "GoVersion": platform.python_version(),
               "BuildTime": ""}
    return {"Platform": {"Name": "Wharf Engine"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__, **details}


@router.route("GET", r"/version")
def version(engine, req: Request) -> dict[str, Any]:
    return version_info()


@router.route("GET", r"/info")
def info(engine, req: Request) -> dict[str, Any]:
    data = dict(engine.info())
    mirrors = SETTINGS.get("registry-mirrors", [])
    data.update({
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "Debug": bool(SETTINGS.get("debug")), "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": _threads(), "SystemTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"InsecureRegistryCIDRs": [], "IndexConfigs": {}, "Mirrors": mirrors,
                           "AllowNondistributableArtifactsCIDRs": [],
                           "AllowNondistributableArtifactsHostnames": []},
        "Swarm": {"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": False},
        "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "tini", "ExperimentalBuild": False,
        "SecurityOptions": ["name=seccomp,profile=default"], "Warnings": [],
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "", "Labels": [],
        "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
    })
    if SETTINGS.get("insecure-registries"):
        data["RegistryConfig"]["InsecureRegistryCIDRs"] = list(SETTINGS["insecure-registries"])
    return data


def _threads() -> int:
    import threading

    return threading.active_count()


def event_json(ev) -> dict[str, Any]:
    """Docker's events message (with the pre-1.22 fields tools still read: status/id for containers
    and images, from for containers)."""
    d: dict[str, Any] = {"Type": ev.type, "Action": ev.action,
                         "Actor": {"ID": ev.id, "Attributes": dict(ev.attributes)},
                         "scope": "local", "time": int(ev.time), "timeNano": int(ev.time * 1e9)}
    if ev.type in ("container", "image"):
        d.update(status=ev.action, id=ev.id)
    if ev.type == "container" and "image" in ev.attributes:
        d["from"] = ev.attributes["image"]
    return d


def _ts(req: Request, name: str) -> float | None:
    v = req.q(name)
    if v in (None, ""):
        return None
    try:
        return float(v)
    except ValueError:
        pass
    from runtime.containers.logs import parse_time

    try:
        return parse_time(v)
    except (ValueError, IndexError):
        raise InvalidArgument(f"{name}={v!r} is not a timestamp", hint="use unix seconds or RFC 3339") from None


@router.route("GET", r"/events")
def events(engine, req: Request) -> Stream:
    from runtime.util.events import read_events

    since, until = _ts(req, "since"), _ts(req, "until")
    filters = req.filters()
    if since is None and until is None:
        since = time.time()
    gone = client_gone_probe(req)

    def gen():
        for ev in read_events(since, until, filters, follow=until is None or until > time.time(), stop=gone):
            yield json.dumps(event_json(ev)).encode() + b"\n"

    return Stream(gen())


def client_gone_probe(req: Request):
    """A callable telling whether the client hung up (for idle streams: events, logs -f)."""
    import select
    import socket

    conn = req.handler.connection

    def gone() -> bool:
        try:
            r, _, _ = select.select([conn], [], [], 0)
            if not r:
                return False
            return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True

    return gone


def client_hung_up_probe(conn):
    """For hijacked connections, where a half-close (end of stdin) is normal: True only when
    the peer closed both ways (POLLHUP) or the socket failed."""
    import select

    def gone() -> bool:
        try:
            p = select.poll()
            p.register(conn, select.POLLHUP | select.POLLERR)
            return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))
        except (OSError, ValueError):
            return True

    return gone


@router.route("GET", r"/system/df")
def system_df(engine, req: Request) -> dict[str, Any]:
    from runtime.containers.sysinfo import disk_usage
    from runtime.images.views import summary

    du = disk_usage(engine)
    sizes = {c["Id"]: c["SizeRw"] for c in du["Containers"]}
    from runtime.api.container_json import summaries

    containers = summaries(engine, all=True)
    for c in containers:
        c["SizeRw"] = sizes.get(c["Id"], 0)
        c["SizeRootFs"] = 0
    store = engine.images.store
    images = [summary(store, i) for i in store.list()]
    for i in images:
        i["Containers"] = sum(1 for c in containers if c["ImageID"] == i["Id"])
    vols = []
    usage = {v["Name"]: v["UsageData"]["Size"] for v in du["Volumes"]}
    from runtime.api.volumes import volume_json

    for v in engine.volumes.list():
        d = volume_json(v)
        d["UsageData"] = {"Size": usage.get(v.name, 0), "RefCount": sum(
            1 for c in containers for m in c.get("Mounts", []) if m.get("Name") == v.name)}
        vols.append(d)
    return {"LayersSize": du["ImagesSize"], "Images": images, "Containers": containers, "Volumes": vols,
            "BuildCache": []}


@router.route("POST", r"/auth")
def auth(engine, req: Request) -> dict[str, Any]:
    from runtime.registry.client import server_domain
    from runtime.registry.transport import Session

    body = req.json()
    user, password = body.get("username"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not user or not password:
        raise InvalidArgument("auth needs a username and a password")
    session = Session(server_domain(body.get("serveraddress") or None), creds=(user, password))
    try:
        session.fetch("GET", "/v2/", what="login")
    except WharfError as e:
        raise _Unauthorized(f"login failed: {e.message}") from None
    finally:
        session.close()
    return {"Status": "Login Succeeded", "IdentityToken": ""}


class _Unauthorized(InvalidArgument):
    http_status = 401
