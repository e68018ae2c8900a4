"""A container's network at start: host / none / container:X here, bridge and user networks
through the NetworkManager (contract 3). Also /etc/hosts, /etc/resolv.conf, /etc/hostname.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from runtime.containers.codec import to_dict
from runtime.containers.lean import write_regenerated
from runtime.containers.store import ContainerStore
from runtime.engine import ContainerSpec, EndpointSpec, PortBinding
from runtime.errors import Conflict, InvalidArgument

ETC = ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname")


@dataclass
class NetResult:
    netns: str | None = None  # None: a fresh netns; "host": the host's; else a path
    share_uts: bool = False
    ports: list[dict[str, Any]] = field(default_factory=list)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    etc_files: dict[str, str] = field(default_factory=dict)
    needs_release: bool = False


def network_manager():
    """The NetworkManager, or None while runtime/network has not landed (bridge then acts as none)."""
    try:
        from runtime.network.manager import NetworkManager
    except ImportError:
        return None
    return NetworkManager()


def uses_manager(spec: ContainerSpec) -> bool:
    """bridge, user networks and none (its netns, with lo up, comes from the NetworkManager too)."""
    mode = spec.network_mode or "bridge"
    return mode != "host" and not mode.startswith("container:")


def _host_resolv() -> bytes:
    try:
        with open("/etc/resolv.conf", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _own_files(spec: ContainerSpec, hostname: str, host_mode: bool) -> dict[str, bytes]:
    if host_mode:
        with open("/etc/hosts", "rb") as f:
            hosts = f.read()
    else:
        hosts = (b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                 b"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                 b"ff02::2\tip6-allrouters\n")
    for entry in spec.extra_hosts:
        name, _, ip = entry.partition(":") if entry.count(":") == 1 else entry.partition("=")
        hosts += f"{ip}\t{name}\n".encode()
    resolv = _host_resolv()
    if spec.dns or spec.dns_search or spec.dns_options:
        lines = [f"nameserver {d}" for d in spec.dns] or [
            ln for ln in resolv.decode(errors="replace").splitlines() if ln.startswith("nameserver")]
        if spec.dns_search:
            lines.append("search " + " ".join(spec.dns_search))
        if spec.dns_options:
            lines.append("options " + " ".join(spec.dns_options))
        resolv = ("\n".join(lines) + "\n").encode()
    return {"/etc/hosts": hosts, "/etc/resolv.conf": resolv, "/etc/hostname": f"{hostname}\n".encode()}


def _write_files(store: ContainerStore, cid: str, files: dict[str, bytes]) -> dict[str, str]:
    out = {}
    for dest in ETC:
        if dest in files:
            path = store.dir(cid) / os.path.basename(dest)
            write_regenerated(str(path), files[dest])
            out[dest] = str(path)
    return out


def wanted_ports(spec: ContainerSpec, image_cfg: dict[str, Any]) -> list[PortBinding]:
    ports = list(spec.ports)
    if spec.publish_all:
        seen = {(p.container_port, p.protocol) for p in ports}
        for key in list((image_cfg.get("ExposedPorts") or {}).keys()) + spec.exposed_ports:
            num, _, proto = key.partition("/")
            if (int(num), proto or "tcp") not in seen:
                ports.append(PortBinding(container_port=int(num), protocol=proto or "tcp"))
                seen.add((int(num), proto or "tcp"))
    return ports


def setup(store: ContainerStore, rec: dict[str, Any], spec: ContainerSpec, hostname: str) -> NetResult:
    cid = rec["id"]
    mode = spec.network_mode or "bridge"
    if mode == "host":
        return NetResult(netns="host", share_uts=True,
                         etc_files=_write_files(store, cid, _own_files(spec, os.uname().nodename, True)))
    if mode == "none":
        files = _write_files(store, cid, _own_files(spec, hostname, False))
        nm = network_manager()
        if nm is None:
            return NetResult(etc_files=files)
        return NetResult(netns=nm.create_netns(cid), etc_files=files, needs_release=True)  # lo up, as docker
    if mode.startswith("container:"):
        other = store.resolve(mode.split(":", 1)[1])
        st = store.load_state(other)
        if st.get("status") not in ("running", "paused") or not st.get("pid"):
            raise Conflict(f"cannot join the network of container {mode.split(':', 1)[1]}: it is not running",
                           hint="start that container first")
        files = {d: str(store.dir(other) / os.path.basename(d)) for d in ETC
                 if (store.dir(other) / os.path.basename(d)).exists()}
        return NetResult(netns=f"/proc/{st['pid']}/ns/net", etc_files=files)
    nm = network_manager()
    if nm is None:  # runtime/network not there yet: bridge behaves like none
        return NetResult(etc_files=_write_files(store, cid, _own_files(spec, hostname, False)))
    networks = dict(spec.networks) or {mode: EndpointSpec()}
    if "bridge" in networks:
        nm.ensure_default()
    netns = nm.create_netns(cid)
    try:
        eps = {}
        for name, ep in networks.items():
            eps[name] = nm.attach(cid, netns, name, ep, rec["name"], hostname)
        first = next(iter(eps.values()))
        ports = wanted_ports(spec, rec.get("image_config", {}))
        published = nm.publish(cid, ports, first.ip_address) if ports else []
        files = nm.container_files(cid, hostname, eps, spec.dns, spec.dns_search, spec.extra_hosts)
    except BaseException:
        nm.release(cid)
        raise
    return NetResult(netns=netns, ports=[to_dict(p) for p in published],
                     networks={k: to_dict(v) for k, v in eps.items()},
                     etc_files=_write_files(store, cid, files), needs_release=True)


def teardown(cid: str, spec: ContainerSpec) -> None:
    if not uses_manager(spec):
        return
    nm = network_manager()
    if nm is not None:
        nm.release(cid)


def check_mode(spec: ContainerSpec) -> None:
    mode = spec.network_mode or "bridge"
    if mode.startswith("container:") and not mode.split(":", 1)[1]:
        raise InvalidArgument("--network container: needs a container name or id")
    if mode in ("host", "none") and spec.ports:
        spec.ports = []  # docker ignores published ports there
