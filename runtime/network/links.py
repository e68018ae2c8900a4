"""Links on the host and inside a container's netns, through pyroute2 (bridges, veth pairs, addresses)."""

from __future__ import annotations

import errno
import os
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from runtime.errors import RuntimeFailure
from runtime.network import rtnl

WHARF_GROUP = 0x77686172  # link group ("whar") marking Wharf's bridges; nft isolates by it


def _code(e: Exception) -> int:
    return getattr(e, "code", 0) or 0


def index(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def host_subnets(ipr: Any) -> list[IPv4Network]:
    """IPv4 subnets the host already routes or has addresses in (default routes excluded)."""
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
    idx = index(ipr, name)
    if idx is None:
        return None
    for a in ipr.get_addr(family=2, index=idx):
        return IPv4Network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
    return None


def ensure_bridge(ipr: Any, name: str, gateway: str, prefix: int, mtu: int | None) -> None:
    """Create bridge `name` (idempotent) in Wharf's link group with the gateway address, up."""
    idx = index(ipr, name)
    if idx is None:
        try:
            kw: dict[str, Any] = {"ifname": name, "kind": "bridge"}
            if mtu:
                kw["mtu"] = mtu
            ipr.link("add", **kw)
        except rtnl.netlink_error() as e:
            if _code(e) != errno.EEXIST:
                raise RuntimeFailure(f"cannot create bridge {name}: {os.strerror(_code(e))}") from None
        idx = index(ipr, name)
        if idx is None:
            raise RuntimeFailure(f"bridge {name} vanished while it was being created")
    # a fixed MAC: otherwise the bridge takes the lowest MAC of its ports and changes it when a port
    # leaves, and the other containers' ARP entries for the gateway go stale for seconds
    from runtime.network.ipam import mac_for

    ipr.link("set", index=idx, group=WHARF_GROUP, address=mac_for(IPv4Address(gateway)))
    have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ipr.get_addr(family=2, index=idx)}
    if (gateway, prefix) not in have:
        try:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefix)
        except rtnl.netlink_error() as e:
            if _code(e) != errno.EEXIST:
                raise RuntimeFailure(f"cannot add {gateway}/{prefix} to bridge {name}: "
                                     f"{os.strerror(_code(e))}") from None
    ipr.link("set", index=idx, state="up")
    for key, value in (("route_localnet", "1"),):
        rtnl.sysctl_write(f"net.ipv4.conf.{name}.{key}", value)


def is_wharf_bridge(ipr: Any, name: str) -> bool:
    idx = index(ipr, name)
    if idx is None:
        return False
    link = ipr.get_links(idx)[0]
    return link.get_attr("IFLA_GROUP") == WHARF_GROUP


def delete(ipr: Any, name: str) -> None:
    """Delete link `name` if it exists (a veth takes its peer with it)."""
    idx = index(ipr, name)
    if idx is None:
        return
    try:
        ipr.link("del", index=idx)
    except rtnl.netlink_error() as e:
        if _code(e) not in (errno.ENODEV, errno.ENOENT):
            raise RuntimeFailure(f"cannot delete link {name}: {os.strerror(_code(e))}") from None


def add_veth(ipr: Any, host_name: str, peer_name: str, netns_fd: int, bridge: str, mtu: int | None) -> None:
    """A veth pair: `host_name` enslaved to `bridge` and up, `peer_name` created inside the netns."""
    br = index(ipr, bridge)
    if br is None:
        raise RuntimeFailure(f"bridge {bridge} is missing")
    kw: dict[str, Any] = {"ifname": host_name, "kind": "veth",
                          "peer": {"ifname": peer_name, "net_ns_fd": netns_fd}}
    if mtu:
        kw["mtu"] = mtu
        kw["peer"]["mtu"] = mtu
    try:
        ipr.link("add", **kw)
    except rtnl.netlink_error() as e:
        raise RuntimeFailure(f"cannot create veth {host_name}: {os.strerror(_code(e))}") from None
    idx = index(ipr, host_name)
    ipr.link("set", index=idx, master=br, state="up")


def configure_peer(ipr: Any, peer_name: str, ifname: str, address: str, prefix: int, mac: str,
                   gateway: str | None) -> None:
    """Inside the netns: rename the veth end, set its MAC and address, up, default route via gateway."""
    idx = index(ipr, peer_name)
    if idx is None:
        raise RuntimeFailure(f"veth end {peer_name} did not arrive in the container's netns")
    ipr.link("set", index=idx, ifname=ifname, address=mac)
    ipr.addr("add", index=idx, address=address, prefixlen=prefix)
    ipr.link("set", index=idx, state="up")
    if gateway:
        try:
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=idx)
        except rtnl.netlink_error() as e:
            if _code(e) != errno.EEXIST:
                raise


def netns_ifnames(ipr: Any) -> list[str]:
    return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]


def has_default_route(ipr: Any) -> bool:
    return any(not r["dst_len"] for r in ipr.get_routes(family=2, table=254))


def lo_up(ipr: Any) -> None:
    ipr.link("set", index=index(ipr, "lo"), state="up")
