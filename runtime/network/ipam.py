"""IP address management: free subnets for new networks, free addresses inside a network.

Pure functions over ip addresses; the caller holds the locks and knows what is in use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

from runtime.errors import Conflict, InvalidArgument


def candidate_subnets() -> Iterator[IPv4Network]:
    """Docker's default pools: 172.17-31.0.0/16, then 192.168.0-255.0/24."""
    for b in range(17, 32):
        yield IPv4Network(f"172.{b}.0.0/16")
    for c in range(256):
        yield IPv4Network(f"192.168.{c}.0/24")


def pick_subnet(used: Iterable[IPv4Network]) -> IPv4Network:
    used = list(used)
    for net in candidate_subnets():
        if not any(net.overlaps(u) for u in used):
            return net
    raise Conflict("no free subnet left in 172.17-31.0.0/16 and 192.168.0.0/16 for a new network",
                   hint="remove unused networks (wharf network prune) or pass --subnet")


def parse_subnet(text: str, field: str = "--subnet") -> IPv4Network:
    if "/" not in text:
        raise InvalidArgument(f"invalid CIDR {text!r} for {field}: the prefix length is missing",
                              hint="use e.g. 10.20.0.0/16")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid CIDR {text!r} for {field}", hint="use e.g. 10.20.0.0/16") from None
    if not isinstance(net, IPv4Network):
        raise InvalidArgument(f"{field} {text}: only IPv4 networks are supported")
    if ipaddress.ip_interface(text).ip != net.network_address:
        raise InvalidArgument(f"invalid {field} {text!r}: host bits are set", hint=f"did you mean {net}?")
    if net.prefixlen > 30:
        raise InvalidArgument(f"{field} {text} is too small", hint="use a prefix of /30 or larger")
    return net


def parse_address(text: str, field: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid IPv4 address {text!r} for {field}") from None


def allocate(subnet: IPv4Network, gateway: IPv4Address, pool: IPv4Network,
             used: set[IPv4Address]) -> IPv4Address:
    """The lowest address of `pool` (within subnet) that is not the network, broadcast, gateway or used."""
    reserved = {subnet.network_address, subnet.broadcast_address, gateway}
    for addr in pool.hosts() if pool.prefixlen < 31 else pool:
        if addr in subnet and addr not in reserved and addr not in used:
            return addr
    raise Conflict(f"no free address left in {pool} of network {subnet}",
                   hint="disconnect or remove containers on it, or use a larger --ip-range")


def check_static(addr: IPv4Address, subnet: IPv4Network, gateway: IPv4Address,
                 used: set[IPv4Address], network: str) -> None:
    if addr not in subnet:
        raise InvalidArgument(f"address {addr} is not in the subnet {subnet} of network {network}")
    if addr in (subnet.network_address, subnet.broadcast_address, gateway):
        raise InvalidArgument(f"address {addr} is reserved in network {network} (network, broadcast or gateway)")
    if addr in used:
        raise Conflict(f"address {addr} is already in use on network {network}",
                       hint="pick another --ip or leave it out to get a free one")


def mac_for(addr: IPv4Address) -> str:
    """Docker's scheme: 02:42 + the four address bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in addr.packed)
