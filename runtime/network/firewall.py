"""nftables rules: per network (masquerade, isolation, --internal, enable_icc=false) and per container
(published ports).

Tables: `ip wharf_n<network id>` and `ip wharf_p<container id>`; each object's rules live in its own
table, so they go away with one `delete table`, and concurrent Wharf processes never edit the same table.
A network with enable_icc=false also has `bridge wharf_n<network id>`: frames the bridge forwards from
one container's port to another's are dropped there (its veths are in links.NO_ICC_GROUP; this kernel
has no bridge-name match), whatever br_netfilter is set to, except published-port connections
(HAIRPIN_MARK, set in the ip table: br_netfilter bridges a DNAT-ed hairpin instead of routing it).
"""

from __future__ import annotations

import json
from typing import Any

from runtime.network import nft
from runtime.network.links import NO_ICC_GROUP, WHARF_GROUP

PORT_TABLE_PREFIX = "wharf_p"


HAIRPIN_MARK = 0x2000000  # packet mark: a published-port (DNAT) connection on a bridge with enable_icc=false


def network_table(net_id: str) -> str:
    return f"wharf_n{net_id[:16]}"


def port_table(container_id: str) -> str:
    return f"{PORT_TABLE_PREFIX}{container_id[:16]}"


def network_rules(bridge: str, subnet: str, internal: bool, gateway: str = "", masquerade: bool = True,
                  icc: bool = True) -> str:
    br = f'"{bridge}"'
    if icc:
        forward = [f"iifname {br} oifname {br} accept"]
    else:  # routed between two containers of the bridge: only a published port (hairpin)
        forward = [f"iifname {br} oifname {br} ct status dnat accept", f"iifname {br} oifname {br} drop"]
    if internal:  # no way in or out except the bridge itself
        forward += [f"iifname {br} drop", f"oifname {br} drop"]
    forward += [
        "ct state established,related accept",
        "ct status dnat accept",  # published ports are reachable from everywhere, also from other networks
        f"iifname {br} oifgroup {WHARF_GROUP} drop",  # isolation from the other Wharf networks
        f"oifname {br} iifgroup {WHARF_GROUP} drop",
    ]
    body = ["chain forward {", "type filter hook forward priority filter; policy accept;", *forward, "}"]
    if not icc:  # with br_netfilter a hairpin to a published port is bridged, not routed: let NO_ICC_RULES know
        body += ["chain prerouting {", "type filter hook prerouting priority dstnat + 10; policy accept;",
                 f"iifname {br} ct status dnat meta mark set meta mark | {HAIRPIN_MARK:#x}", "}"]
    if gateway:  # the embedded DNS on the gateway answers the bridge (and the host), nobody else
        body += ["chain input {", "type filter hook input priority filter; policy accept;",
                 f'ip daddr {gateway} iifname != {{ {br}, "lo" }} meta l4proto {{ tcp, udp }} th dport 53 drop',
                 "}"]
    if masquerade and not internal:
        body += ["chain postrouting {", "type nat hook postrouting priority srcnat; policy accept;",
                 f"ip saddr {subnet} oifname != {br} masquerade", "}"]
    return "\n".join(body)


NO_ICC_RULES = "\n".join([
    "chain forward {", "type filter hook forward priority filter; policy accept;",
    f"iifgroup {NO_ICC_GROUP} oifgroup {NO_ICC_GROUP} meta mark & {HAIRPIN_MARK:#x} != 0 accept",
    f"iifgroup {NO_ICC_GROUP} oifgroup {NO_ICC_GROUP} ether type {{ ip, ip6 }} drop",  # ARP still passes
    "}"])


def apply_network(net: dict[str, Any]) -> None:
    masq = net.get("options", {}).get("com.docker.network.bridge.enable_ip_masquerade", "true")
    icc = net.get("icc", True)
    rules = network_rules(net["bridge"], net["subnet"], net["internal"],
                          "" if net.get("default") else net["gateway"], masq.lower() not in ("false", "0"), icc)
    table = network_table(net["id"])
    script = nft.replace_script(table, rules)
    script += nft.delete_script(table, "bridge") if icc else nft.replace_script(table, NO_ICC_RULES, "bridge")
    nft.apply(script, f"network {net['name']}")


def remove_network(net_id: str) -> None:
    table = network_table(net_id)
    nft.apply(nft.delete_script(table) + nft.delete_script(table, "bridge"), f"table {table}")


def remove_tables_of_bridge(bridge: str) -> None:
    """Delete every Wharf network table with rules on `bridge` (a leftover whose state is gone)."""
    needle = f'"{bridge}"'
    for item in nft.list_ruleset():
        rule = item.get("rule")
        if rule and rule.get("table", "").startswith("wharf_n") and needle in json.dumps(rule):
            remove_network(rule["table"][len("wharf_n"):])
            return remove_tables_of_bridge(bridge)


def port_comment(proto: str, host_port: int, host_ip: str) -> str:
    return f"{proto}:{host_port}:{host_ip or '0.0.0.0'}"


def port_rules(ports: list[dict[str, Any]], container_ip: str, subnet: str) -> str:
    dnat = []
    for p in ports:
        match = f"ip daddr {p['host_ip']}" if p["host_ip"] not in ("", "0.0.0.0") else "fib daddr type local"
        # the port first: the other containers' rules then cost new connections no fib lookup
        dnat.append(f"{p['protocol']} dport {p['host_port']} {match} dnat to {container_ip}:{p['container_port']}"
                    f' comment "{port_comment(p["protocol"], p["host_port"], p["host_ip"])}"')
    return "\n".join([
        "chain prerouting {", "type nat hook prerouting priority dstnat; policy accept;", *dnat, "}",
        "chain output {", "type nat hook output priority -100; policy accept;", *dnat, "}",
        "chain postrouting {", "type nat hook postrouting priority srcnat; policy accept;",
        # from the host's 127.0.0.1 (route_localnet on the bridge) and hairpin from the same network:
        # the container must answer through the host so conntrack can undo the DNAT
        f"ip daddr {container_ip} ct status dnat ip saddr 127.0.0.0/8 masquerade",
        f"ip daddr {container_ip} ct status dnat ip saddr {subnet} masquerade",
        "}",
    ])


def apply_ports(container_id: str, ports: list[dict[str, Any]], container_ip: str, subnet: str) -> None:
    nft.replace_table(port_table(container_id), port_rules(ports, container_ip, subnet),
                      f"published ports of {container_id[:12]}")


def remove_ports(container_id: str) -> None:
    nft.delete_table(port_table(container_id))


def published_elsewhere() -> dict[tuple[str, int], list[tuple[str, str]]]:
    """(proto, host port) -> [(host ip, table)] for every port Wharf publishes on this host (all roots)."""
    out: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for table, comment in nft.rule_comments(PORT_TABLE_PREFIX):
        parts = comment.split(":")
        if len(parts) == 3 and parts[1].isdigit():
            out.setdefault((parts[0], int(parts[1])), []).append((parts[2], table))
    return out
