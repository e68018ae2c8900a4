"""Network routes (/networks/...) and the Docker network JSON <-> NetworkSpec/NetworkInfo translation."""

from __future__ import annotations

from typing import Any

from runtime.api.http import Reply, Request
from runtime.api.router import router
from runtime.engine import EndpointInfo, EndpointSpec, NetworkInfo, NetworkSpec
from runtime.errors import InvalidArgument


def network_json(n: NetworkInfo) -> dict[str, Any]:
    ipam = [{"Subnet": n.subnet, **({"Gateway": n.gateway} if n.gateway else {})}] if n.subnet else []
    return {"Name": n.name, "Id": n.id, "Created": n.created, "Scope": "local", "Driver": n.driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {}, "Config": ipam},
            "Internal": n.internal, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": {cid: {"Name": "", "EndpointID": "", "MacAddress": e.mac_address,
                                 "IPv4Address": f"{e.ip_address}/{e.prefix_len}" if e.ip_address else "",
                                 "IPv6Address": ""} for cid, e in n.containers.items()},
            "Options": n.options, "Labels": n.labels}


def network_from_json(d: dict[str, Any]) -> NetworkInfo:
    cfg = ((d.get("IPAM") or {}).get("Config") or [{}])
    cfg = cfg[0] if cfg else {}
    containers = {}
    for cid, e in (d.get("Containers") or {}).items():
        ip, _, plen = (e.get("IPv4Address") or "").partition("/")
        containers[cid] = EndpointInfo(network=d["Name"], network_id=d.get("Id", ""), ip_address=ip,
                                       prefix_len=int(plen or 0), mac_address=e.get("MacAddress", ""))
    return NetworkInfo(id=d.get("Id", ""), name=d["Name"], driver=d.get("Driver", "bridge"),
                       subnet=cfg.get("Subnet", ""), gateway=cfg.get("Gateway", ""),
                       internal=bool(d.get("Internal")), labels=d.get("Labels") or {},
                       options=d.get("Options") or {}, containers=containers, created=d.get("Created", ""))


def spec_from_json(body: dict[str, Any]) -> NetworkSpec:
    from runtime.api.container_json import _get, _strmap

    name = _get(body, "Name", str, "body", "")
    if not name:
        raise InvalidArgument("network create needs a Name")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidArgument("IPAM: expected an object")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InvalidArgument("IPAM.Config: expected an array of objects")
    if len(configs) > 1:
        raise InvalidArgument("IPAM.Config: only one IPv4 subnet per network is supported")
    c = configs[0] if configs else {}
    if _get(body, "EnableIPv6", bool, "body", False):
        raise InvalidArgument("EnableIPv6: IPv6 networks are not supported")
    return NetworkSpec(name=name, driver=_get(body, "Driver", str, "body", "") or "bridge",
                       subnet=c.get("Subnet") or None, gateway=c.get("Gateway") or None,
                       ip_range=c.get("IPRange") or None, internal=_get(body, "Internal", bool, "body", False),
                       labels=_strmap(body, "Labels", "body"), options=_strmap(body, "Options", "body"))


def spec_to_json(spec: NetworkSpec) -> dict[str, Any]:
    cfg = {k: v for k, v in (("Subnet", spec.subnet), ("Gateway", spec.gateway), ("IPRange", spec.ip_range)) if v}
    return {"Name": spec.name, "Driver": spec.driver, "Internal": spec.internal, "Labels": spec.labels,
            "Options": spec.options, "CheckDuplicate": True, "IPAM": {"Driver": "default",
                                                                      "Config": [cfg] if cfg else []}}


@router.route("GET", r"/networks")
def list_networks(engine, req: Request) -> list[dict[str, Any]]:
    return [network_json(n) for n in engine.networks.list(req.filters() or None)]


@router.route("POST", r"/networks/create")
def create(engine, req: Request) -> Reply:
    from runtime.api.system import SETTINGS

    spec = spec_from_json(req.json())
    if SETTINGS.get("mtu") and "com.docker.network.driver.mtu" not in spec.options:
        spec.options["com.docker.network.driver.mtu"] = str(SETTINGS["mtu"])
    n = engine.networks.create(spec)
    return Reply(201, {"Id": n.id, "Warning": ""})


@router.route("GET", r"/networks/(?P<id>[^/]+)")
def inspect(engine, req: Request) -> dict[str, Any]:
    return network_json(engine.networks.inspect(req.params["id"]))


@router.route("DELETE", r"/networks/(?P<id>[^/]+)")
def remove(engine, req: Request) -> None:
    engine.networks.remove(req.params["id"])


@router.route("POST", r"/networks/(?P<id>[^/]+)/connect")
def connect(engine, req: Request) -> None:
    from runtime.api.container_json import _get, _obj, _strlist

    body = req.json()
    container = _get(body, "Container", str, "body", "")
    if not container:
        raise InvalidArgument("network connect needs Container")
    ep = _obj(body, "EndpointConfig", "body")
    ipam = _obj(ep, "IPAMConfig", "EndpointConfig")
    endpoint = EndpointSpec(aliases=_strlist(ep, "Aliases", "EndpointConfig") or [],
                            ipv4_address=ipam.get("IPv4Address") or None)
    if not _set_planned(engine, req.params["id"], container, endpoint):
        engine.networks.connect(req.params["id"], container, endpoint)


def _set_planned(engine, network: str, container: str, endpoint: EndpointSpec | None) -> bool:
    """Docker lets clients (docker-compose v1) connect/disconnect a container that is not running:
    the change applies at its next start. LocalNetworks only attaches running containers, so for
    those the endpoint is recorded in the container's spec instead. False: it is running."""
    import dataclasses

    from runtime.containers.store import shim_alive

    cs = engine.containers
    cid = cs.store.resolve(container)
    name = engine.networks.inspect(network).name
    with cs.store.lock(cid):
        st = cs.store.load_state(cid)
        if st.get("status") in ("running", "paused", "restarting") and shim_alive(st):
            return False
        rec = cs.store.load(cid)
        spec = rec["spec"]
        nets = spec.setdefault("networks", {})
        if endpoint is None:
            nets.pop(name, None)
            if spec.get("network_mode") == name:
                spec["network_mode"] = next(iter(nets), "none")
        else:
            nets[name] = dataclasses.asdict(endpoint)
            if spec.get("network_mode") in ("", "bridge", "default") and "bridge" not in nets and name != "bridge":
                spec["network_mode"] = name
        cs.store.save(cid, rec)
    return True


@router.route("POST", r"/networks/(?P<id>[^/]+)/disconnect")
def disconnect(engine, req: Request) -> None:
    from runtime.api.container_json import _get

    body = req.json()
    container = _get(body, "Container", str, "body", "")
    if not container:
        raise InvalidArgument("network disconnect needs Container")
    if not _set_planned(engine, req.params["id"], container, None):
        engine.networks.disconnect(req.params["id"], container, force=_get(body, "Force", bool, "body", False))


@router.route("POST", r"/networks/prune")
def prune(engine, req: Request) -> dict[str, Any]:
    gone = engine.networks.prune()
    return {"NetworksDeleted": [getattr(g, "name", g) for g in gone or []]}
