"""NetworkManager (contract 3): networks, per-container netns, endpoints, published ports, /etc files.

State: <root>/network (store.py). Host objects: a bridge per network (Wharf's link group),
a veth per endpoint ("whv" + 10 hex, derived from container + network ids so a leftover is
found and replaced), nft tables (firewall.py), a netns file per container (netns.py) and,
for user-defined networks, the embedded DNS daemon (dns.py).
"""

from __future__ import annotations

import hashlib
import os
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from runtime.engine import EndpointInfo, EndpointSpec, NetworkInfo, NetworkSpec, PortBinding
from runtime.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from runtime.network import etcfiles, ipam
from runtime.network import netns as netns_mod
from runtime.network.netspec import (
    DEFAULT_NAME,
    ENV_DEFAULT_IP,
    OPT_BRIDGE,
    OPT_HOST_IP,
    default_spec,
    new_record,
    spec_config,
)
from runtime.network.store import NetStore
from runtime.util.labels import match_labels

RELEASE_GRACE = 10.0  # seconds a released veth may live before the next attach deletes it itself


def userland_proxy() -> bool:
    """Published ports through a proxy process instead of DNAT (WHARF_USERLAND_PROXY=1); DNAT is faster."""
    return os.environ.get("WHARF_USERLAND_PROXY", "").lower() in ("1", "true", "yes")


def _veth_name(container_id: str, net_id: str) -> str:
    return "whv" + hashlib.sha256(f"{container_id}/{net_id}".encode()).hexdigest()[:10]


class NetworkManager:
    def __init__(self, root: Path | None = None) -> None:
        self.store = NetStore(root)

    # ------------------------------------------------------------ networks

    def create(self, spec: NetworkSpec) -> NetworkInfo:
        rec = new_record(spec)
        with self.store.lock():
            if any(n["name"] == spec.name for n in self.store.networks()):
                raise Conflict(f"network with name {spec.name} already exists",
                               hint="pick another name or remove the existing network")
            rec = self._create_locked(rec, spec.subnet)
        if not rec["default"]:
            self._sync_dns()
        return self._info(rec, self.store.endpoints())

    def _create_locked(self, rec: dict[str, Any], user_subnet: str | None) -> dict[str, Any]:
        from runtime.network import links, rtnl

        with self.store.host_lock():
            existing = links.exists(rec["bridge"])
            if existing and not (rec["default"] and links.is_wharf_bridge(rec["bridge"])):
                raise Conflict(f"device {rec['bridge']} already exists on the host",
                               hint=f"pick another bridge name with -o {OPT_BRIDGE}=NAME")
            other = links.owner(rec["bridge"]) if existing else ""
            if other and other != str(self.store.dir) and os.path.isdir(other):
                raise Conflict(f"bridge {rec['bridge']} belongs to the Wharf state in {other}",
                               hint="set WHARF_BRIDGE to another device name for this WHARF_ROOT")
            ours = [(n["name"], IPv4Network(n["subnet"])) for n in self.store.networks() if n.get("subnet")]
            ipr = rtnl.iproute()
            try:
                adopted = links.bridge_subnet(ipr, rec["bridge"]) if existing else None
                if existing:  # the default bridge survived a lost state dir: drop the old owner's rules
                    from runtime.network import firewall
                    from runtime.network.netlink import Netlink

                    firewall.remove_tables_of_bridge(rec["bridge"])
                    if user_subnet and adopted != IPv4Network(rec["subnet"]):  # ... and its old subnet
                        with Netlink() as nl:
                            links.delete(nl, rec["bridge"])
                        adopted = None
                host = links.host_subnets(ipr)
            finally:
                ipr.close()
            if adopted is not None:  # keep the surviving bridge's subnet
                subnet = adopted
            elif user_subnet:
                subnet = IPv4Network(rec["subnet"])
                for name, net in ours:
                    if net.overlaps(subnet):
                        raise Conflict(f"subnet {subnet} overlaps with network {name} ({net})",
                                       hint="pick a --subnet that does not overlap")
                for net in host:
                    if net.overlaps(subnet):
                        raise Conflict(f"subnet {subnet} overlaps with {net}, already routed on this host",
                                       hint="pick a --subnet that does not overlap")
            else:
                subnet = ipam.pick_subnet([n for _, n in ours] + host)
            rec["subnet"] = str(subnet)
            rec["gateway"] = rec["gateway"] or str(next(subnet.hosts()))
            self.store.save_network(rec)
            try:
                self._setup_host(rec)
            except BaseException:
                self._teardown_host(rec)
                self.store.delete_network(rec["id"])
                raise
        _event("create", rec)
        return rec

    def _setup_host(self, rec: dict[str, Any]) -> None:
        from runtime.network import firewall, links, rtnl
        from runtime.network.netlink import Netlink

        firewall.apply_network(rec)
        if os.environ.get("WHARF_IP_FORWARD") != "false":  # `wharf serve --ip-forward=false` leaves it alone
            rtnl.sysctl_write("net.ipv4.ip_forward", "1")
        with Netlink() as nl:
            links.ensure_bridge(nl, rec["bridge"], rec["gateway"], IPv4Network(rec["subnet"]).prefixlen,
                                rec.get("mtu"), str(self.store.dir))

    def _teardown_host(self, rec: dict[str, Any]) -> None:
        from runtime.network import firewall, links
        from runtime.network.netlink import Netlink

        with Netlink() as nl:
            links.delete(nl, rec["bridge"])
        firewall.remove_network(rec["id"])

    def _ensure_host(self, rec: dict[str, Any]) -> None:
        """Repair: re-create a network's bridge and rules if they are gone (reboot, crash mid-create)."""
        from runtime.network import links

        if not links.exists(rec["bridge"]):
            with self.store.host_lock():
                self._setup_host(rec)

    def ensure_default(self) -> NetworkInfo:
        """The default bridge network, created on first use as the daemon's flags ask (default_spec).
        Flags that differ from the existing network's re-create it once no container uses it;
        without flags the existing one is kept as it is."""
        spec = default_spec()
        config = spec_config(spec)
        with self.store.lock():
            rec = next((n for n in self.store.networks() if n["name"] == DEFAULT_NAME), None)
            if rec is not None and any(config.values()) and rec.get("config") != config:
                users = [e.get("name") or e["id"][:12] for e in self.store.endpoints() if rec["id"] in e["networks"]]
                if users:
                    raise Conflict(f"the default bridge network is in use ({', '.join(sorted(users))}) with "
                                   f"other settings than the daemon's (--bip/--fixed-cidr/--mtu/--icc/--ip-masq)",
                                   hint="stop those containers: the network is re-created with the new settings")
                self._remove_locked(rec)
                rec = None
            if rec is None:
                rec = new_record(spec)
                rec["config"] = config
                rec = self._create_locked(rec, spec.subnet)
                return self._info(rec, self.store.endpoints())
        self._ensure_host(rec)
        return self._info(rec, self.store.endpoints())

    def _find(self, ref: str) -> dict[str, Any]:
        nets = self.store.networks()
        for key in ("id", "name"):
            for n in nets:
                if n[key] == ref:
                    return n
        matches = [n for n in nets if ref and n["id"].startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"network id prefix {ref!r} is ambiguous", hint="give more characters or the name")
        raise NotFound(f"network {ref} not found", hint="see `wharf network ls`")

    def inspect(self, ref: str) -> NetworkInfo:
        return self._info(self._find(ref), self.store.endpoints())

    def list(self, filters: dict[str, list[str]] | None = None) -> list[NetworkInfo]:
        eps = self.store.endpoints()
        out = [self._info(n, eps) for n in self.store.networks()]
        return [n for n in out if _matches(n, filters or {})]

    def remove(self, ref: str) -> None:
        with self.store.lock():
            rec = self._find(ref)
            if rec["default"]:
                raise Conflict(f"{rec['name']} is a pre-defined network and cannot be removed")
            self._remove_locked(rec)
        self._sync_dns()

    def _remove_locked(self, rec: dict[str, Any]) -> None:
        users = [e.get("name") or e["id"][:12] for e in self.store.endpoints() if rec["id"] in e.get("networks", {})]
        if users:
            raise Conflict(f"network {rec['name']} has active endpoints ({', '.join(sorted(users))})",
                           hint="stop/disconnect those containers first")
        with self.store.host_lock():
            self._teardown_host(rec)
        self.store.delete_network(rec["id"])
        _event("destroy", rec)

    def prune(self) -> list[str]:
        removed = []
        with self.store.lock():
            used = {nid for e in self.store.endpoints() for nid in e.get("networks", {})}
            for rec in self.store.networks():
                if not rec["default"] and rec["id"] not in used:
                    self._remove_locked(rec)
                    removed.append(rec["name"])
        if removed:
            self._sync_dns()
        return removed

    def teardown(self) -> None:
        """Remove every host object of this WHARF_ROOT: endpoints, netns, networks (also the default), DNS."""
        for ep in self.store.endpoints():
            self.release(ep["id"])
        for cid in netns_mod.leftovers():
            netns_mod.delete(cid)
        self.wait_released()
        with self.store.lock():
            for rec in self.store.networks():
                self._remove_locked(rec)
        self._sync_dns()

    # ------------------------------------------------------------ containers

    def create_netns(self, container_id: str) -> str:
        return netns_mod.create(container_id)

    def delete_netns(self, container_id: str) -> None:
        netns_mod.delete(container_id)

    def attach(self, container_id: str, netns: str, network: str, endpoint: EndpointSpec,
               name: str, hostname: str) -> EndpointInfo:
        from runtime.network import links, rtnl
        from runtime.network.netlink import Netlink

        endpoint = endpoint or EndpointSpec()
        with self.store.lock():
            net = self._find(network)
            self._ensure_host(net)
            rec = self.store.endpoint(container_id) or {"id": container_id, "networks": {}, "ports": []}
            rec.update(name=name, hostname=hostname, netns=netns)
            stale = rec["networks"].get(net["id"])
            if stale is not None:
                if not _crashed(stale):
                    raise Conflict(f"container {name or container_id[:12]} is already connected to network "
                                   f"{net['name']}")
                del rec["networks"][net["id"]]  # a crashed attach of this very endpoint: redo it
            subnet = IPv4Network(net["subnet"])
            gateway = IPv4Address(net["gateway"])
            used = {IPv4Address(ep["ip"]) for e in self.store.endpoints() if e["id"] != container_id
                    for nid, ep in e.get("networks", {}).items() if nid == net["id"]}
            if endpoint.ipv4_address:
                addr = ipam.parse_address(endpoint.ipv4_address, "--ip")
                used |= self._reap_released(net["id"], container_id, claim=str(addr))
                ipam.check_static(addr, subnet, gateway, used, net["name"])
            else:
                held = self._reap_released(net["id"], container_id)
                pool = IPv4Network(net["ip_range"]) if net.get("ip_range") else subnet
                try:
                    addr = ipam.allocate(subnet, gateway, pool, used | held)
                except Conflict:
                    if not held:
                        raise
                    addr = ipam.allocate(subnet, gateway, pool, used)  # full but for released veths:
                    self._reap_released(net["id"], container_id, claim=str(addr))  # take one back now
            taken_if = {ep["ifname"] for ep in rec["networks"].values()}
            ifname = next(f"eth{i}" for i in range(len(taken_if) + 1) if f"eth{i}" not in taken_if)
            ep = {"network": net["name"], "ip": str(addr), "prefix": subnet.prefixlen, "gateway": net["gateway"],
                  "mac": ipam.mac_for(addr), "aliases": list(endpoint.aliases), "ifname": ifname,
                  "veth": _veth_name(container_id, net["id"]), "attaching": os.getpid()}
            rec["networks"][net["id"]] = ep
            self.store.save_endpoint(rec)  # intent first: a crash from here on is repaired by release()
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            self._forget(container_id, net["id"])
            raise RuntimeFailure(f"cannot open the network namespace {netns}: {e.strerror}") from None
        try:
            peer = "wht" + ep["veth"][3:]
            with Netlink() as nl:
                links.delete(nl, ep["veth"])  # a leftover of a crashed attach
                links.add_veth(nl, ep["veth"], peer, fd, net["bridge"], net.get("mtu"),
                               None if net.get("icc", True) else links.NO_ICC_GROUP)
            gw = None if net["internal"] else ep["gateway"]
            rtnl.in_netns(netns, lambda nl: links.configure_peer(nl, peer, ifname, ep["ip"], ep["prefix"],
                                                                 ep["mac"], gw))
        except BaseException:
            self._forget(container_id, net["id"])
            raise
        finally:
            os.close(fd)
        with self.store.lock():
            rec = self.store.endpoint(container_id)
            if rec is not None and net["id"] in rec["networks"]:
                rec["networks"][net["id"]].pop("attaching", None)
                self.store.save_endpoint(rec)
        ep.pop("attaching", None)
        if not net["default"]:
            self._sync_dns()
        _event("connect", net, container_id)
        return self._endpoint_info(net, ep)

    def _forget(self, container_id: str, net_id: str) -> None:
        """Undo a (half-done) attach: veth and the endpoint entry."""
        from runtime.network import links
        from runtime.network.netlink import Netlink

        with self.store.lock():
            rec = self.store.endpoint(container_id)
            if not rec or net_id not in rec["networks"]:
                return
            ep = rec["networks"].pop(net_id)
            with Netlink() as nl:
                links.delete(nl, ep["veth"])
            self.store.save_endpoint(rec)

    def detach(self, container_id: str, network: str) -> None:
        with self.store.lock():
            net = self._find(network)
            rec = self.store.endpoint(container_id)
            if not rec or net["id"] not in rec["networks"]:
                raise NotFound(f"container {container_id[:12]} is not connected to network {net['name']}")
        self._forget(container_id, net["id"])
        _event("disconnect", net, container_id)
        if not net["default"]:
            self._sync_dns()

    def publish(self, container_id: str, ports: list[PortBinding], ip: str) -> list[PortBinding]:
        from runtime.network import firewall
        from runtime.network import ports as ports_mod

        if not ports:
            return []
        with self.store.lock():
            rec = self.store.endpoint(container_id)
            ep = next((e for e in (rec or {}).get("networks", {}).values() if e["ip"] == ip), None)
            if rec is None or ep is None:
                raise NotFound(f"container {container_id[:12]} has no endpoint with address {ip}",
                               hint="attach it to a network before publishing ports")
            subnet = str(IPv4Network(f"{ep['ip']}/{ep['prefix']}", strict=False))
            net = next((n for n in self.store.networks() if n["name"] == ep["network"]), {})
            host_ip = net.get("options", {}).get(OPT_HOST_IP, "") or os.environ.get(ENV_DEFAULT_IP, "")
            if host_ip:  # the network's (or the daemon's --ip) default host IP for bindings that name none
                ports = [PortBinding(p.container_port, p.protocol, p.host_ip or host_ip, p.host_port) for p in ports]
            proxy = userland_proxy()
            with self.store.host_lock():
                self._unpublish(rec)  # publishing again replaces what was published before
                resolved, socks = ports_mod.resolve(ports, container_id, keep=proxy)
                rec.update(ports=ports_mod.as_dicts(resolved), ports_ip=ip, proxy=proxy)
                self.store.save_endpoint(rec)  # intent first (a crash leaves something release() finds)
                try:
                    if proxy:
                        rec["proxy_pid"] = ports_mod.spawn_proxy(socks, resolved, ip, container_id)
                        self.store.save_endpoint(rec)
                    else:
                        firewall.apply_ports(container_id, rec["ports"], ip, subnet)
                except BaseException:
                    rec["ports"] = []
                    self.store.save_endpoint(rec)
                    raise
                finally:
                    for s in socks:
                        s.close()
        return resolved

    @staticmethod
    def _unpublish(rec: dict[str, Any]) -> None:
        """Remove the published ports of an endpoint record (DNAT table or proxy process)."""
        if not (rec.get("proxy") or rec.get("ports") or rec.get("ports_ip")):
            return
        from runtime.network import firewall
        from runtime.network import ports as ports_mod

        if rec.get("proxy"):
            ports_mod.stop_proxy(rec.get("proxy_pid"), rec["id"])
        elif rec.get("ports") or rec.get("ports_ip"):
            firewall.remove_ports(rec["id"])
        rec.update(ports=[], proxy=False, proxy_pid=None)

    def release(self, container_id: str) -> None:
        """Free a container's network: published ports, its netns and (asynchronously) its veths.

        Deleting a veth costs the caller ~30 ms (the kernel waits for an RCU grace period). Instead
        the netns is unmounted: once its last user is gone the kernel's netns cleanup destroys the
        veths in the background (~40 ms later). Until then the endpoint record stays in released/
        and its addresses count as used (_reap_released), so no one gets an address whose old
        interface still answers ARP.
        """
        user_net = False
        nets: dict[str, dict[str, Any]] = {}
        with self.store.lock():
            rec = self.store.endpoint(container_id)
            if rec is not None:
                self._unpublish(rec)
                nets = {n["id"]: n for n in self.store.networks()}
                defaults = {nid for nid, n in nets.items() if n["default"]}
                user_net = any(nid not in defaults for nid in rec["networks"])
                self._reap_released()  # the records of veths the kernel has destroyed since
                if rec["networks"]:
                    self.store.release_endpoint(container_id)
                else:
                    self.store.delete_endpoint(container_id)
            netns_mod.delete(container_id)
        for nid in rec["networks"] if rec is not None else ():
            if nid in nets:
                _event("disconnect", nets[nid], container_id)
        if user_net:
            self._sync_dns()

    def _reap_released(self, net_id: str = "", own: str = "", grace: float | None = None,
                       claim: str = "") -> set[IPv4Address]:
        """Forget released endpoints whose veths are gone; return the addresses on `net_id` still held
        by released veths. Deleted here: veths that outlive `grace` (a process kept the netns alive),
        those of `own` (the same container attaching again: its veth names are the same) and the one
        holding address `claim` on net_id (a static --ip wants it now). The caller holds the store lock."""
        from runtime.network import links
        from runtime.network.netlink import Netlink

        held: set[IPv4Address] = set()
        grace = RELEASE_GRACE if grace is None else grace
        now = time.time()
        for rec, since in self.store.released():
            live = [(nid, ep) for nid, ep in rec["networks"].items() if links.exists(ep["veth"])]
            claimed = any(nid == net_id and ep["ip"] == claim for nid, ep in live)
            if live and (rec["id"] == own or now - since >= grace or claimed):
                with Netlink() as nl:
                    for _, ep in live:
                        links.delete(nl, ep["veth"])
                live = []
            if not live:
                self.store.forget_released(rec["id"])
            held |= {IPv4Address(ep["ip"]) for nid, ep in live if nid == net_id}
        return held

    def wait_released(self, timeout: float = 5.0) -> None:
        """Until the kernel has destroyed every released veth (deleting what is left at the deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.store.lock():
                late = time.monotonic() >= deadline
                self._reap_released(grace=0 if late else None)
                if late or not self.store.released():
                    return
            time.sleep(0.005)

    def container_files(self, container_id: str, hostname: str, networks: dict[str, EndpointInfo],
                        dns: list[str], dns_search: list[str], extra_hosts: list[str],
                        dns_options: list[str] | None = None) -> dict[str, bytes]:
        defaults = {n["name"] for n in self.store.networks() if n["default"]} | {DEFAULT_NAME}
        gateway = next((ep.gateway for name, ep in networks.items()
                        if name not in defaults and ep.network not in defaults and ep.gateway), None)
        return {"/etc/hosts": etcfiles.hosts(hostname, networks, extra_hosts),
                "/etc/resolv.conf": etcfiles.resolv_conf(gateway, dns, dns_search, dns_options or []),
                "/etc/hostname": etcfiles.hostname_file(hostname)}

    # ------------------------------------------------------------ helpers

    def _sync_dns(self) -> None:
        from runtime.network import dnsctl

        dnsctl.sync(self.store)

    @staticmethod
    def _endpoint_info(net: dict[str, Any], ep: dict[str, Any]) -> EndpointInfo:
        return EndpointInfo(network=net["name"], network_id=net["id"], ip_address=ep["ip"], prefix_len=ep["prefix"],
                            gateway="" if net["internal"] else ep["gateway"], mac_address=ep["mac"],
                            aliases=list(ep.get("aliases", [])))

    def _info(self, rec: dict[str, Any], endpoints: list[dict[str, Any]]) -> NetworkInfo:
        containers = {e["id"]: self._endpoint_info(rec, e["networks"][rec["id"]])
                      for e in endpoints if rec["id"] in e.get("networks", {})}
        options = dict(rec.get("options", {}))
        options.setdefault(OPT_BRIDGE, rec["bridge"])
        return NetworkInfo(id=rec["id"], name=rec["name"], driver=rec["driver"], subnet=rec["subnet"],
                           gateway=rec["gateway"], internal=rec["internal"], labels=dict(rec.get("labels", {})),
                           options=options, containers=containers, created=rec.get("created", ""))


def _event(action: str, net: dict[str, Any], container_id: str = "") -> None:
    """Docker's network events: create/destroy, connect/disconnect (with the container's id)."""
    from runtime.util.events import emit

    attrs = {"name": net["name"], "type": net.get("driver", "bridge")}
    if container_id:
        attrs["container"] = container_id
    emit("network", action, net["id"], attrs)


def _crashed(ep: dict[str, Any]) -> bool:
    """An endpoint whose attach never finished and whose attaching process is gone."""
    pid = ep.get("attaching")
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _matches(n: NetworkInfo, filters: dict[str, list[str]]) -> bool:
    for key, wanted in filters.items():
        if not wanted:
            continue
        if key == "name" and not any(w in n.name for w in wanted):
            return False
        if key == "id" and not any(n.id.startswith(w) for w in wanted):
            return False
        if key == "driver" and n.driver not in wanted:
            return False
        if key == "label" and not match_labels(n.labels, wanted):
            return False
        if key == "type":
            kind = "builtin" if n.name == DEFAULT_NAME else "custom"
            if kind not in wanted:
                return False
        if key not in ("name", "id", "driver", "label", "type"):
            raise InvalidArgument(f"invalid filter {key!r}", hint="use name, id, label, driver or type")
    return True


