"""Network specs: validation of `network create` input and the state record it becomes."""

from __future__ import annotations

import os
import re
import secrets
import time
from typing import Any

from runtime.engine import NetworkSpec
from runtime.errors import InvalidArgument
from runtime.network import ipam

DEFAULT_NAME = "bridge"
OPT_BRIDGE = "com.docker.network.bridge.name"
OPT_MTU = "com.docker.network.driver.mtu"
OPT_MASQ = "com.docker.network.bridge.enable_ip_masquerade"
OPT_ICC = "com.docker.network.bridge.enable_icc"
OPT_HOST_IP = "com.docker.network.bridge.host_binding_ipv4"  # default host IP of published ports
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_IFNAME_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")


def default_bridge() -> str:
    """The default network's device: WHARF_BRIDGE (tests set their own), else wharf0."""
    return os.environ.get("WHARF_BRIDGE", "wharf0")


# `wharf serve` flags for the default bridge, exported by runtime/api/daemon.py
ENV_BRIDGE_IP, ENV_FIXED_CIDR, ENV_MTU, ENV_ICC, ENV_IP_MASQ = \
    "WHARF_BRIDGE_IP", "WHARF_FIXED_CIDR", "WHARF_MTU", "WHARF_ICC", "WHARF_IP_MASQ"
ENV_DEFAULT_IP = "WHARF_IP"  # --ip: the host IP of published ports that name none (also -P), on every network


def default_spec() -> NetworkSpec:
    """The default network as the daemon's flags ask for it: --bip (bridge address and subnet),
    --fixed-cidr (the container addresses; the subnet itself without --bip, as docker), --mtu,
    --icc=false, --ip-masq=false. Bad values raise InvalidArgument naming the flag."""
    import ipaddress

    env = os.environ
    options = {OPT_BRIDGE: default_bridge()}
    subnet = gateway = ip_range = None
    bip = env.get(ENV_BRIDGE_IP, "")
    if bip:
        try:
            iface = ipaddress.ip_interface(bip)
        except ValueError:
            iface = None
        if not isinstance(iface, ipaddress.IPv4Interface) or "/" not in bip or iface.network.prefixlen > 30 \
                or iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            raise InvalidArgument(f"invalid --bip {bip!r}", hint="give the bridge's address and prefix, e.g. 10.214.0.1/24")
        subnet, gateway = str(iface.network), str(iface.ip)
    fixed = env.get(ENV_FIXED_CIDR, "")
    if fixed:
        rng = ipam.parse_subnet(fixed, "--fixed-cidr")
        if subnet is None:
            subnet = str(rng)
        elif not rng.subnet_of(ipaddress.IPv4Network(subnet)):
            raise InvalidArgument(f"--fixed-cidr {rng} is not inside the bridge's subnet {subnet} (--bip)")
        ip_range = str(rng)
    if env.get(ENV_MTU, ""):
        options[OPT_MTU] = env[ENV_MTU]
    for var, opt in ((ENV_ICC, OPT_ICC), (ENV_IP_MASQ, OPT_MASQ)):
        if env.get(var, "").lower() in ("false", "0"):
            options[opt] = "false"
    return NetworkSpec(name=DEFAULT_NAME, subnet=subnet, gateway=gateway, ip_range=ip_range, options=options)


def spec_config(spec: NetworkSpec) -> dict[str, Any]:
    """What of a default network's spec comes from the daemon's flags (a change re-creates it)."""
    return {"subnet": spec.subnet or "", "gateway": spec.gateway or "", "ip_range": spec.ip_range or "",
            "options": {k: v for k, v in spec.options.items() if k != OPT_BRIDGE}}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_record(spec: NetworkSpec) -> dict[str, Any]:
    """Validate a NetworkSpec (InvalidArgument naming the field) and make the network's state record."""
    if not _NAME_RE.match(spec.name or ""):
        raise InvalidArgument(f"invalid network name {spec.name!r}",
                              hint="use letters, digits, '_', '.', '-' (starting with a letter or digit)")
    if spec.driver not in ("bridge", ""):
        raise InvalidArgument(f"network driver {spec.driver!r} is not supported", hint="use --driver bridge")
    known = (OPT_BRIDGE, OPT_MTU, OPT_MASQ, OPT_ICC, OPT_HOST_IP)
    for key, value in spec.options.items():
        if key not in known:
            raise InvalidArgument(f"unknown network option {key!r}", hint=f"supported: {', '.join(known)}")
        if key in (OPT_MASQ, OPT_ICC) and value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid value {value!r} for -o {key}", hint="use true or false")
    if OPT_HOST_IP in spec.options:
        ipam.parse_address(spec.options[OPT_HOST_IP], f"-o {OPT_HOST_IP}")
    bridge = spec.options.get(OPT_BRIDGE, "")
    if bridge and not _IFNAME_RE.match(bridge):
        raise InvalidArgument(f"invalid bridge name {bridge!r} in -o {OPT_BRIDGE}",
                              hint="at most 15 letters, digits, '_', '.', '-'")
    mtu = None
    if OPT_MTU in spec.options:
        try:
            mtu = int(spec.options[OPT_MTU])
        except ValueError:
            mtu = -1
        if not 68 <= mtu <= 65535:
            raise InvalidArgument(f"invalid MTU {spec.options[OPT_MTU]!r} in -o {OPT_MTU}",
                                  hint="use a number between 68 and 65535")
    subnet = ipam.parse_subnet(spec.subnet) if spec.subnet else None
    if (spec.gateway or spec.ip_range) and subnet is None:
        raise InvalidArgument("--gateway and --ip-range need --subnet")
    if subnet is not None and spec.gateway:
        gw = ipam.parse_address(spec.gateway, "--gateway")
        if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"gateway {gw} is not a host address of subnet {subnet}")
    if subnet is not None and spec.ip_range:
        rng = ipam.parse_subnet(spec.ip_range, "--ip-range")
        if not rng.subnet_of(subnet):
            raise InvalidArgument(f"--ip-range {rng} is not inside --subnet {subnet}")
    net_id = secrets.token_hex(32)
    return {
        "id": net_id, "name": spec.name, "driver": "bridge", "subnet": str(subnet) if subnet else "",
        "gateway": spec.gateway or "", "ip_range": spec.ip_range or "", "internal": bool(spec.internal),
        "labels": dict(spec.labels), "options": dict(spec.options), "mtu": mtu,
        "bridge": bridge or ("whbr" + net_id[:10]), "created": _now(), "default": spec.name == DEFAULT_NAME,
        "icc": spec.options.get(OPT_ICC, "true").lower() not in ("false", "0"),
    }
