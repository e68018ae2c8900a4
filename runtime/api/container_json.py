"""Docker container JSON <-> engine dataclasses (both directions: the daemon and RemoteEngine).

create body (Config + HostConfig + NetworkingConfig) -> ContainerSpec and back,
inspect JSON -> ContainerInfo, and the /containers/json summaries.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from runtime.engine import (
    ContainerInfo,
    ContainerSpec,
    ContainerState,
    EndpointInfo,
    EndpointSpec,
    HealthCheck,
    HealthState,
    MountSpec,
    PortBinding,
    Resources,
    RestartPolicy,
    Ulimit,
)
from runtime.errors import InvalidArgument

# ---------------------------------------------------------------- typed field access


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    v = d.get(key)
    if v is None:
        return default
    if kind is int and isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) and kind in (int, float):
        raise InvalidArgument(f"{where}.{key}: expected a number, got {v!r}")
    if not isinstance(v, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidArgument(f"{where}.{key}: expected {_jname(names)}, got {type(v).__name__ if v is not None else 'null'}"
                              .replace("got str", "got string").replace("got dict", "got object"))
    return v


def _jname(py: str) -> str:
    return {"str": "a string", "int": "an integer", "bool": "a boolean", "list": "an array",
            "dict": "an object", "float": "a number"}.get(py, py)


def _strlist(d: dict[str, Any], key: str, where: str, split_string: bool = False) -> list[str] | None:
    v = d.get(key)
    if v is None:
        return None
    if isinstance(v, str) and split_string:
        return shlex.split(v)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{where}.{key}: expected an array of strings")
    return list(v)


def _strmap(d: dict[str, Any], key: str, where: str) -> dict[str, str]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InvalidArgument(f"{where}.{key}: expected an object of strings")
    return {str(k): "" if x is None else str(x) for k, x in v.items()}


def _obj(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InvalidArgument(f"{where}.{key}: expected an object")
    return v


# ---------------------------------------------------------------- create body -> spec


def spec_from_create(body: dict[str, Any], name: str | None = None,
                     defaults: dict[str, Any] | None = None) -> ContainerSpec:
    """Docker's POST /containers/create body -> ContainerSpec (InvalidArgument names the field)."""
    from runtime.containers import flags

    cfg = body
    hc = _obj(body, "HostConfig", "HostConfig")
    nc = _obj(body, "NetworkingConfig", "NetworkingConfig")
    image = _get(cfg, "Image", str, "Config", "")
    if not image:
        raise InvalidArgument("Config.Image: an image is required")
    spec = ContainerSpec(image=image, name=name or None)
    spec.command = _strlist(cfg, "Cmd", "Config", split_string=True)
    entry = _strlist(cfg, "Entrypoint", "Config", split_string=True)
    if entry is not None:
        spec.entrypoint = [] if entry == [""] else entry
    spec.env = _strlist(cfg, "Env", "Config") or []
    spec.labels = _strmap(cfg, "Labels", "Config")
    spec.working_dir = _get(cfg, "WorkingDir", str, "Config", "")
    spec.user = _get(cfg, "User", str, "Config", "")
    spec.hostname = _get(cfg, "Hostname", str, "Config", "")
    spec.domainname = _get(cfg, "Domainname", str, "Config", "")
    spec.tty = _get(cfg, "Tty", bool, "Config", False)
    spec.stdin_open = _get(cfg, "OpenStdin", bool, "Config", False)
    spec.stdin_once = _get(cfg, "StdinOnce", bool, "Config", False)
    spec.exposed_ports = [_port_key(k) for k in _obj(cfg, "ExposedPorts", "Config")]
    spec.stop_signal = _get(cfg, "StopSignal", str, "Config") or None
    spec.stop_timeout = _get(cfg, "StopTimeout", int, "Config")
    h = _obj(cfg, "Healthcheck", "Config")
    if h:
        test = _strlist(h, "Test", "Config.Healthcheck") or []
        if test:
            spec.healthcheck = HealthCheck(
                test=test, interval=_ns(h, "Interval", 30.0), timeout=_ns(h, "Timeout", 30.0),
                retries=_get(h, "Retries", int, "Config.Healthcheck", 0) or 3,
                start_period=_ns(h, "StartPeriod", 0.0), start_interval=_ns(h, "StartInterval", 5.0))
    if _get(cfg, "NetworkDisabled", bool, "Config", False):
        spec.network_mode = "none"
    # -- host config
    mounts: list[MountSpec] = []
    for b in _strlist(hc, "Binds", "HostConfig") or []:
        mounts.append(flags.parse_volume(b))
    for target in _obj(cfg, "Volumes", "Config"):
        if not any(m.target == target for m in mounts):
            mounts.append(MountSpec(type="volume", target=target))
    for i, m in enumerate(hc.get("Mounts") or []):
        if not isinstance(m, dict):
            raise InvalidArgument(f"HostConfig.Mounts[{i}]: expected an object")
        mounts.append(_mount(m, f"HostConfig.Mounts[{i}]"))
    for target, opts in _strmap(hc, "Tmpfs", "HostConfig").items():
        mounts.append(flags.parse_tmpfs(f"{target}:{opts}" if opts else target))
    spec.mounts = mounts
    spec.ports = _port_bindings(_obj(hc, "PortBindings", "HostConfig"))
    spec.publish_all = _get(hc, "PublishAllPorts", bool, "HostConfig", False)
    mode = _get(hc, "NetworkMode", str, "HostConfig", "") or "bridge"
    spec.network_mode = "bridge" if mode == "default" else (spec.network_mode if spec.network_mode == "none" else mode)
    for net, ep in _obj(nc, "EndpointsConfig", "NetworkingConfig").items():
        ep = ep or {}
        if not isinstance(ep, dict):
            raise InvalidArgument(f"NetworkingConfig.EndpointsConfig.{net}: expected an object")
        ipam = _obj(ep, "IPAMConfig", f"NetworkingConfig.EndpointsConfig.{net}")
        net = "bridge" if net == "default" else net
        spec.networks[net] = EndpointSpec(aliases=_strlist(ep, "Aliases", f"EndpointsConfig.{net}") or [],
                                          ipv4_address=ipam.get("IPv4Address") or None)
    rp = _obj(hc, "RestartPolicy", "HostConfig")
    spec.restart = RestartPolicy(name=_get(rp, "Name", str, "HostConfig.RestartPolicy", "") or "no",
                                 maximum_retry_count=_get(rp, "MaximumRetryCount", int,
                                                          "HostConfig.RestartPolicy", 0))
    spec.resources = resources_from(hc, "HostConfig")
    spec.cap_add = _strlist(hc, "CapAdd", "HostConfig") or []
    spec.cap_drop = _strlist(hc, "CapDrop", "HostConfig") or []
    spec.group_add = _strlist(hc, "GroupAdd", "HostConfig") or []
    spec.privileged = _get(hc, "Privileged", bool, "HostConfig", False)
    spec.read_only = _get(hc, "ReadonlyRootfs", bool, "HostConfig", False)
    spec.init = _get(hc, "Init", bool, "HostConfig", False)
    spec.dns = _strlist(hc, "Dns", "HostConfig") or []
    spec.dns_search = _strlist(hc, "DnsSearch", "HostConfig") or []
    spec.dns_options = _strlist(hc, "DnsOptions", "HostConfig") or []
    spec.extra_hosts = _strlist(hc, "ExtraHosts", "HostConfig") or []
    spec.sysctls = _strmap(hc, "Sysctls", "HostConfig")
    spec.security_opt = _strlist(hc, "SecurityOpt", "HostConfig") or []
    for i, d in enumerate(hc.get("Devices") or []):
        if not isinstance(d, dict) or not d.get("PathOnHost"):
            raise InvalidArgument(f"HostConfig.Devices[{i}]: expected an object with PathOnHost")
        spec.devices.append(":".join([d["PathOnHost"], d.get("PathInContainer") or d["PathOnHost"],
                                      d.get("CgroupPermissions") or "rwm"]))
    lc = _obj(hc, "LogConfig", "HostConfig")
    spec.log_driver = _get(lc, "Type", str, "HostConfig.LogConfig", "") or "json-file"
    spec.log_options = _strmap(lc, "Config", "HostConfig.LogConfig")
    spec.runtime = _get(hc, "Runtime", str, "HostConfig", "") or None
    spec.auto_remove = _get(hc, "AutoRemove", bool, "HostConfig", False)
    for key, value in (defaults or {}).items():
        if key == "dns" and not spec.dns:
            spec.dns = list(value)
        elif key == "dns_search" and not spec.dns_search:
            spec.dns_search = list(value)
        elif key == "ip":
            for p in spec.ports:
                p.host_ip = p.host_ip or value
    return spec


def _ns(d: dict[str, Any], key: str, default: float) -> float:
    v = _get(d, key, int, "Config.Healthcheck", 0)
    return v / 1e9 if v else default


def _port_key(key: str) -> str:
    port, _, proto = str(key).partition("/")
    if not port.split("-")[0].isdigit():
        raise InvalidArgument(f"invalid port {key!r}", hint="use PORT[/tcp|udp]")
    return f"{port}/{proto or 'tcp'}"


def _port_bindings(pb: dict[str, Any]) -> list[PortBinding]:
    out = []
    for key, binds in pb.items():
        port, _, proto = _port_key(key).partition("/")
        if "-" in port:
            raise InvalidArgument(f"HostConfig.PortBindings: port ranges ({key}) are not expanded by the API")
        for b in binds or [{}]:
            if not isinstance(b, dict):
                raise InvalidArgument(f"HostConfig.PortBindings.{key}: expected objects with HostIp/HostPort")
            hp = str(b.get("HostPort") or "0")
            if not hp.isdigit():
                raise InvalidArgument(f"HostConfig.PortBindings.{key}: invalid HostPort {hp!r}")
            out.append(PortBinding(container_port=int(port), protocol=proto, host_ip=str(b.get("HostIp") or ""),
                                   host_port=int(hp)))
    return out


def _mount(m: dict[str, Any], where: str) -> MountSpec:
    typ = _get(m, "Type", str, where, "volume")
    target = _get(m, "Target", str, where, "")
    if not target.startswith("/"):
        raise InvalidArgument(f"{where}.Target: an absolute path is required")
    out = MountSpec(type=typ, target=target, source=_get(m, "Source", str, where, ""),
                    read_only=_get(m, "ReadOnly", bool, where, False))
    bo = _obj(m, "BindOptions", where)
    out.propagation = _get(bo, "Propagation", str, where + ".BindOptions", "")
    vo = _obj(m, "VolumeOptions", where)
    out.volume_nocopy = _get(vo, "NoCopy", bool, where + ".VolumeOptions", False)
    out.volume_labels = _strmap(vo, "Labels", where + ".VolumeOptions")
    to = _obj(m, "TmpfsOptions", where)
    out.tmpfs_size = _get(to, "SizeBytes", int, where + ".TmpfsOptions") or None
    out.tmpfs_mode = _get(to, "Mode", int, where + ".TmpfsOptions")
    if typ == "bind" and not out.source:
        raise InvalidArgument(f"{where}.Source: required for a bind mount")
    return out


def resources_from(hc: dict[str, Any], where: str) -> Resources:
    r = Resources()
    for key, attr in (("Memory", "memory"), ("MemorySwap", "memory_swap"),
                      ("MemoryReservation", "memory_reservation"), ("NanoCpus", "nano_cpus"),
                      ("CpuShares", "cpu_shares"), ("CpuQuota", "cpu_quota"), ("CpuPeriod", "cpu_period"),
                      ("PidsLimit", "pids_limit"), ("BlkioWeight", "blkio_weight")):
        v = _get(hc, key, int, where)
        if v:
            setattr(r, attr, v)
    for key, attr in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        v = _get(hc, key, str, where)
        if v:
            setattr(r, attr, v)
    for i, u in enumerate(hc.get("Ulimits") or []):
        if not isinstance(u, dict):
            raise InvalidArgument(f"{where}.Ulimits[{i}]: expected an object")
        r.ulimits.append(Ulimit(name=_get(u, "Name", str, f"{where}.Ulimits[{i}]", ""),
                                soft=_get(u, "Soft", int, f"{where}.Ulimits[{i}]", 0),
                                hard=_get(u, "Hard", int, f"{where}.Ulimits[{i}]", 0)))
    for key, attr in THROTTLES:
        for i, t in enumerate(hc.get(key) or []):
            if not isinstance(t, dict):
                raise InvalidArgument(f"{where}.{key}[{i}]: expected an object")
            getattr(r, attr).append(f"{_get(t, 'Path', str, f'{where}.{key}[{i}]', '')}:"
                                    f"{_get(t, 'Rate', int, f'{where}.{key}[{i}]', 0)}")
    return r


THROTTLES = (("BlkioDeviceReadBps", "device_read_bps"), ("BlkioDeviceWriteBps", "device_write_bps"),
             ("BlkioDeviceReadIOps", "device_read_iops"), ("BlkioDeviceWriteIOps", "device_write_iops"))


# ---------------------------------------------------------------- spec -> create body (RemoteEngine)


def create_body(spec: ContainerSpec) -> dict[str, Any]:
    hc: dict[str, Any] = {
        "Binds": [], "Mounts": [], "Tmpfs": {},
        "PortBindings": {}, "PublishAllPorts": spec.publish_all, "NetworkMode": spec.network_mode or "bridge",
        "RestartPolicy": {"Name": "" if spec.restart.name == "no" else spec.restart.name,
                          "MaximumRetryCount": spec.restart.maximum_retry_count},
        "CapAdd": spec.cap_add or None, "CapDrop": spec.cap_drop or None, "GroupAdd": spec.group_add or None,
        "Privileged": spec.privileged,
        "ReadonlyRootfs": spec.read_only, "Init": spec.init or None, "Dns": spec.dns, "DnsSearch": spec.dns_search,
        "DnsOptions": spec.dns_options, "ExtraHosts": spec.extra_hosts or None, "Sysctls": spec.sysctls or None,
        "SecurityOpt": spec.security_opt or None, "AutoRemove": spec.auto_remove,
        "LogConfig": {"Type": spec.log_driver, "Config": spec.log_options},
    }
    if spec.runtime:
        hc["Runtime"] = spec.runtime
    res = spec.resources
    for key, attr in (("Memory", "memory"), ("MemorySwap", "memory_swap"),
                      ("MemoryReservation", "memory_reservation"), ("NanoCpus", "nano_cpus"),
                      ("CpuShares", "cpu_shares"), ("CpuQuota", "cpu_quota"), ("CpuPeriod", "cpu_period"),
                      ("PidsLimit", "pids_limit"), ("BlkioWeight", "blkio_weight"), ("CpusetCpus", "cpuset_cpus"),
                      ("CpusetMems", "cpuset_mems")):
        if getattr(res, attr) is not None:
            hc[key] = getattr(res, attr)
    if res.ulimits:
        hc["Ulimits"] = [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in res.ulimits]
    for key, attr in THROTTLES:
        if getattr(res, attr):
            hc[key] = [{"Path": v.rpartition(":")[0], "Rate": int(v.rpartition(":")[2])} for v in getattr(res, attr)]
    if spec.devices:
        from runtime.containers.views import devices_json

        hc["Devices"] = devices_json(spec.devices)
    for p in spec.ports:
        hc["PortBindings"].setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""})
    for m in spec.mounts:
        if m.type == "tmpfs":
            opts = ",".join(filter(None, [f"size={m.tmpfs_size}" if m.tmpfs_size else "",
                                          f"mode={m.tmpfs_mode:o}" if m.tmpfs_mode is not None else "",
                                          "ro" if m.read_only else ""]))
            hc["Tmpfs"][m.target] = opts
            continue
        d: dict[str, Any] = {"Type": m.type, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
        if m.type == "bind" and m.propagation:
            d["BindOptions"] = {"Propagation": m.propagation}
        if m.type == "volume" and (m.volume_nocopy or m.volume_labels):
            d["VolumeOptions"] = {"NoCopy": m.volume_nocopy, "Labels": m.volume_labels}
        hc["Mounts"].append(d)
    body: dict[str, Any] = {
        "Image": spec.image, "Cmd": spec.command, "Entrypoint": spec.entrypoint, "Env": spec.env,
        "Labels": spec.labels, "WorkingDir": spec.working_dir, "User": spec.user, "Hostname": spec.hostname,
        "Domainname": spec.domainname, "Tty": spec.tty, "OpenStdin": spec.stdin_open, "StdinOnce": spec.stdin_once,
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "ExposedPorts": {k if "/" in k else k + "/tcp": {} for k in spec.exposed_ports} or None,
        "StopSignal": spec.stop_signal, "StopTimeout": spec.stop_timeout, "HostConfig": hc,
    }
    if spec.entrypoint == []:
        body["Entrypoint"] = [""]
    if spec.healthcheck:
        h = spec.healthcheck
        body["Healthcheck"] = {"Test": h.test, "Interval": int(h.interval * 1e9), "Timeout": int(h.timeout * 1e9),
                               "Retries": h.retries, "StartPeriod": int(h.start_period * 1e9),
                               "StartInterval": int(h.start_interval * 1e9)}
    if spec.networks:
        body["NetworkingConfig"] = {"EndpointsConfig": {
            n: {"Aliases": e.aliases or None, **({"IPAMConfig": {"IPv4Address": e.ipv4_address}}
                                                 if e.ipv4_address else {})} for n, e in spec.networks.items()}}
    return {k: v for k, v in body.items() if v is not None}


# ---------------------------------------------------------------- inspect JSON -> ContainerInfo (RemoteEngine)


def _secs(ns: int | None, default: float) -> float:
    return ns / 1e9 if ns else default


def info_from_inspect(d: dict[str, Any]) -> ContainerInfo:
    cfg = d.get("Config") or {}
    hc = d.get("HostConfig") or {}
    st = d.get("State") or {}
    spec = spec_from_create({**cfg, "HostConfig": {k: v for k, v in hc.items() if k not in ("Binds", "Tmpfs")}},
                            name=(d.get("Name") or "").lstrip("/"))
    spec.mounts = []
    for m in d.get("Mounts") or []:
        spec.mounts.append(MountSpec(type=m.get("Type", "volume"), target=m.get("Destination", ""),
                                     source=m.get("Name") or m.get("Source", ""), read_only=not m.get("RW", True)))
    for target in hc.get("Tmpfs") or {}:
        spec.mounts.append(MountSpec(type="tmpfs", target=target))
    health = None
    if st.get("Health"):
        h = st["Health"]
        health = HealthState(status=h.get("Status", ""), failing_streak=h.get("FailingStreak", 0),
                             log=h.get("Log") or [])
    zero = "0001-01-01T00:00:00Z"
    state = ContainerState(status=st.get("Status", "created"), pid=st.get("Pid", 0), exit_code=st.get("ExitCode", 0),
                           oom_killed=st.get("OOMKilled", False), error=st.get("Error", ""),
                           started_at="" if st.get("StartedAt", zero).startswith("0001") else st.get("StartedAt", ""),
                           finished_at="" if st.get("FinishedAt", zero).startswith("0001") else st.get("FinishedAt", ""),
                           health=health)
    ns = d.get("NetworkSettings") or {}
    ports = []
    for key, binds in (ns.get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or []:
            ports.append(PortBinding(container_port=int(port), protocol=proto or "tcp", host_ip=b.get("HostIp", ""),
                                     host_port=int(b.get("HostPort") or 0)))
    nets = {n: EndpointInfo(network=n, network_id=e.get("NetworkID", ""), ip_address=e.get("IPAddress", ""),
                            prefix_len=e.get("IPPrefixLen", 0), gateway=e.get("Gateway", ""),
                            mac_address=e.get("MacAddress", ""), aliases=e.get("Aliases") or [])
            for n, e in (ns.get("Networks") or {}).items()}
    return ContainerInfo(id=d["Id"], name=spec.name or "", image=cfg.get("Image", ""), image_id=d.get("Image", ""),
                         created=d.get("Created", ""), spec=spec, state=state,
                         restart_count=d.get("RestartCount", 0), ports=ports, networks=nets,
                         mounts=list(spec.mounts))


# ---------------------------------------------------------------- the daemon's views


def inspect(engine, ref: str) -> dict[str, Any]:
    from runtime.containers.views import inspect_json

    cs = engine.containers
    cid = cs.store.resolve(ref)
    rec = cs.store.load(cid)
    info = cs.inspect(cid)  # marks a container whose supervisor died as exited
    return inspect_json(rec, {**dataclasses.asdict(info.state), "restart_count": info.restart_count})


def summaries(engine, all: bool = False, filters: dict[str, list[str]] | None = None,
              limit: int | None = None, size: bool = False) -> list[dict[str, Any]]:
    """GET /containers/json rows, straight from the records (what `docker ps` reads)."""
    from runtime.containers.filters import match_container
    from runtime.containers.logs import parse_time
    from runtime.containers.store import shim_alive
    from runtime.containers.views import command_text, status_text
    from runtime.errors import NotFound

    cs = engine.containers
    store = cs.store
    rows = []
    for cid in store.ids():
        try:
            rec = store.load(cid)
        except NotFound:
            continue
        st = store.load_state(cid)
        if st.get("status") in ("running", "restarting") and not shim_alive(st):
            try:
                st = dataclasses.asdict(cs.inspect(cid).state)
            except NotFound:
                continue
        status = st.get("status", "created")
        if not all and status not in ("running", "paused", "restarting") and not (filters and "status" in filters):
            continue
        if filters and not match_container(rec, st, filters):
            continue
        try:
            created = int(parse_time(rec["created"]))
        except (ValueError, IndexError):
            created = 0
        spec = rec["spec"]
        ports = [{"PrivatePort": p["container_port"], "Type": p.get("protocol", "tcp"),
                  **({"IP": p.get("host_ip") or "0.0.0.0", "PublicPort": p["host_port"]}
                     if p.get("host_port") else {})} for p in rec.get("ports", [])]
        nets = {n: {"NetworkID": e.get("network_id", ""), "IPAddress": e.get("ip_address", ""),
                    "IPPrefixLen": e.get("prefix_len", 0), "Gateway": e.get("gateway", ""),
                    "MacAddress": e.get("mac_address", ""), "Aliases": e.get("aliases") or None}
                for n, e in rec.get("networks", {}).items()}
        mounts = [{"Type": m["type"], "Name": m.get("source", "") if m["type"] == "volume" else "",
                   "Source": m.get("source", ""), "Destination": m["target"], "RW": not m.get("read_only"),
                   "Mode": "ro" if m.get("read_only") else "", "Propagation": m.get("propagation", "")}
                  for m in rec.get("mounts", [])]
        rows.append((created, {
            "Id": rec["id"], "Names": ["/" + rec["name"]], "Image": rec["image"] or rec.get("rootfs_dir", ""),
            "ImageID": rec.get("image_id", ""), "Command": " ".join(command_text(rec)), "Created": created,
            "Ports": ports, "Labels": spec.get("labels", {}), "State": status, "Status": status_text(st),
            "HostConfig": {"NetworkMode": spec.get("network_mode", "bridge")},
            "NetworkSettings": {"Networks": nets}, "Mounts": mounts,
            **({"SizeRw": 0, "SizeRootFs": 0} if size else {}),
        }))
    rows.sort(key=lambda r: (r[0], r[1]["Id"]), reverse=True)
    out = [r for _, r in rows]
    return out[:limit] if limit and limit > 0 else out
