"""Links on the host and inside a container's netns: bridges, veth pairs, addresses, routes.

Per-container work goes through the small netlink client (netlink.py); dumps of the host's
routes and addresses (only when a network is created) through pyroute2 (rtnl.py).
"""

from __future__ import annotations

import errno
import os
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from runtime.errors import RuntimeFailure
from runtime.network.ipam import mac_for
from runtime.network.netlink import Netlink

WHARF_GROUP = 0x77686172  # link group ("whar") marking Wharf's bridges; nft isolates by it
NO_ICC_GROUP = 0x77686173  # the host ends of veths on networks with enable_icc=false (firewall.py)


def exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def is_wharf_bridge(name: str) -> bool:
    try:
        with open(f"/sys/class/net/{name}/netdev_group") as f:
            return int(f.read().strip(), 0) == WHARF_GROUP
    except (OSError, ValueError):
        return False


def owner(name: str) -> str:
    """The Wharf state dir that created bridge `name` (kept in its ifalias), or ""."""
    try:
        with open(f"/sys/class/net/{name}/ifalias") as f:
            alias = f.read().strip()
    except OSError:
        return ""
    return alias[len("wharf:"):] if alias.startswith("wharf:") else ""


def host_subnets(ipr: Any) -> list[IPv4Network]:
    """IPv4 subnets the host already routes or has addresses in (default routes excluded); ipr: pyroute2."""
    nets: list[IPv4Network] = []
    for r in ipr.get_routes(family=2, table=254):
        dst, plen = r.get_attr("RTA_DST"), r["dst_len"]
        if dst and plen:
            nets.append(IPv4Network(f"{dst}/{plen}", strict=False))
    for a in ipr.get_addr(family=2):
        addr = a.get_attr("IFA_ADDRESS")
        if addr and not addr.startswith("127."):
            nets.append(IPv4Network(f"{addr}/{a['prefixlen']}", strict=False))
    return nets


def bridge_subnet(ipr: Any, name: str) -> IPv4Network | None:
    found = ipr.link_lookup(ifname=name)
    for a in ipr.get_addr(family=2, index=found[0]) if found else []:
        return IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
    return None


def _fail(what: str, e: OSError) -> RuntimeFailure:
    return RuntimeFailure(f"{what}: {e.strerror or e}")


def ensure_bridge(nl: Netlink, name: str, gateway: str, prefix: int, mtu: int | None, owner: str) -> None:
    """Create bridge `name` (idempotent) in Wharf's link group with the gateway address, up; `owner`
    (the state dir) goes into its ifalias."""
    from runtime.network import rtnl

    idx = nl.index(name)
    if idx is None:
        try:
            nl.add_bridge(name, mtu)
        except OSError as e:
            if e.errno != errno.EEXIST:
                raise _fail(f"cannot create bridge {name}", e) from None
        idx = nl.index(name)
        if idx is None:
            raise RuntimeFailure(f"bridge {name} vanished while it was being created")
    # a fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes it when a port
    # leaves, and the other containers' ARP entries for the gateway go stale for seconds
    nl.set_link(idx, group=WHARF_GROUP, mac=mac_for(IPv4Address(gateway)), alias=f"wharf:{owner}")
    try:
        nl.add_address(idx, gateway, prefix)
    except OSError as e:
        if e.errno != errno.EEXIST:
            raise _fail(f"cannot add {gateway}/{prefix} to bridge {name}", e) from None
    nl.set_link(idx, up=True)
    rtnl.sysctl_write(f"net.ipv4.conf.{name}.route_localnet", "1")  # DNAT of 127.0.0.1 into the bridge


def delete(nl: Netlink, name: str) -> None:
    """Delete link `name` if it exists (a veth takes its peer with it)."""
    if not exists(name):
        return
    idx = nl.index(name)
    if idx is None:
        return
    try:
        nl.delete(idx)
    except OSError as e:
        if e.errno not in (errno.ENODEV, errno.ENOENT):
            raise _fail(f"cannot delete link {name}", e) from None


def add_veth(nl: Netlink, host_name: str, peer_name: str, netns_fd: int, bridge: str, mtu: int | None,
             group: int | None = None) -> None:
    """A veth pair: `host_name` enslaved to `bridge`, in link `group` and up, `peer_name` created
    inside the netns."""
    br = nl.index(bridge)
    if br is None:
        raise RuntimeFailure(f"bridge {bridge} is missing")
    try:
        nl.add_veth(host_name, peer_name, netns_fd, mtu)
        idx = nl.index(host_name)
        if idx is None:
            raise RuntimeFailure(f"veth {host_name} vanished while it was being created")
        nl.set_link(idx, master=br, up=True, group=group)
    except OSError as e:
        raise _fail(f"cannot create veth {host_name}", e) from None


def configure_peer(nl: Netlink, peer_name: str, ifname: str, address: str, prefix: int, mac: str,
                   gateway: str | None) -> None:
    """Inside the netns: rename the veth end, set its MAC and address, up; default route via gateway
    unless the netns has one already (a second network)."""
    idx = nl.index(peer_name)
    if idx is None:
        raise RuntimeFailure(f"veth end {peer_name} did not arrive in the container's netns")
    try:
        nl.set_link(idx, ifname=ifname, mac=mac)
        nl.add_address(idx, address, prefix)
        nl.set_link(idx, up=True)
        if gateway:
            try:
                nl.add_default_route(gateway, idx)
            except OSError as e:
                if e.errno != errno.EEXIST:
                    raise
    except OSError as e:
        raise _fail(f"cannot configure {ifname} ({address}/{prefix}) in the container's netns", e) from None


def lo_up(nl: Netlink) -> None:
    nl.set_link(nl.index("lo") or 1, up=True)
