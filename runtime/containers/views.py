"""What users see: `ps` rows and Docker's inspect JSON, from raw records (cheap: no dataclasses)."""

from __future__ import annotations

import time

from runtime.containers.logs import parse_time

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the `wharf ps` path: no typing import at run time
    from typing import Any


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(s / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def _ago(ts: str, now: float) -> float:
    try:
        return max(0.0, now - parse_time(ts))
    except (ValueError, IndexError):
        return 0.0


def status_text(st: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    s = st.get("status", "created")
    if s in ("running", "paused"):
        text = "Up " + human_duration(_ago(st.get("started_at", ""), now))
        if s == "paused":
            return text + " (Paused)"
        h = (st.get("health") or {}).get("status")
        if h:
            text += " (health: starting)" if h == "starting" else f" ({h})"
        return text
    if s == "restarting":
        return f"Restarting ({st.get('exit_code', 0)}) {human_duration(_ago(st.get('finished_at', ''), now))} ago"
    if s == "exited":
        return f"Exited ({st.get('exit_code', 0)}) {human_duration(_ago(st.get('finished_at', ''), now))} ago"
    return s.capitalize()


def ports_text(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        if p.get("host_port"):
            ip = p.get("host_ip") or "0.0.0.0"
            out.append(f"{ip}:{p['host_port']}->{p['container_port']}/{p.get('protocol', 'tcp')}")
        else:
            out.append(f"{p['container_port']}/{p.get('protocol', 'tcp')}")
    return ", ".join(out)


def command_text(rec: dict[str, Any]) -> list[str]:
    spec = rec["spec"]
    icfg = rec.get("image_config") or {}
    entry = spec.get("entrypoint") if spec.get("entrypoint") is not None else (icfg.get("Entrypoint") or [])
    if spec.get("command") is not None:
        cmd = spec["command"]
    else:
        cmd = [] if spec.get("entrypoint") is not None else (icfg.get("Cmd") or [])
    return list(entry) + list(cmd)


def ps_row(rec: dict[str, Any], st: dict[str, Any], no_trunc: bool = False, now: float | None = None
           ) -> dict[str, str]:
    cmd = " ".join(command_text(rec))
    if not no_trunc and len(cmd) > 20:
        cmd = cmd[:19] + "…"
    now = time.time() if now is None else now
    return {
        "ID": rec["id"] if no_trunc else rec["id"][:12],
        "Image": rec["image"] or rec.get("rootfs_dir", ""),
        "Command": f'"{cmd}"',
        "CreatedAt": rec["created"],
        "RunningFor": human_duration(_ago(rec["created"], now)) + " ago",
        "Status": status_text(st, now),
        "State": st.get("status", "created"),
        "Ports": ports_text(rec.get("ports", [])),
        "Names": rec["name"],
        "Labels": ",".join(f"{k}={v}" for k, v in rec["spec"].get("labels", {}).items()),
        "Mounts": ",".join(m.get("source") or m.get("target", "") for m in rec.get("mounts", [])),
        "Networks": ",".join(rec.get("networks", {}).keys()) or rec["spec"].get("network_mode", ""),
    }


PS_COLUMNS = [("CONTAINER ID", "ID"), ("IMAGE", "Image"), ("COMMAND", "Command"), ("CREATED", "RunningFor"),
              ("STATUS", "Status"), ("PORTS", "Ports"), ("NAMES", "Names")]


def table(rows: list[dict[str, str]], columns: list[tuple[str, str]]) -> str:
    widths = [max([len(h)] + [len(r[k]) for r in rows]) for h, k in columns]
    lines = ["   ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True)).rstrip()]
    for r in rows:
        lines.append("   ".join(r[k].ljust(w) for (_, k), w in zip(columns, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _ns(seconds: float | None) -> int:
    return int((seconds or 0) * 1e9)


def inspect_json(rec: dict[str, Any], st: dict[str, Any]) -> dict[str, Any]:
    """Docker's ContainerJSON shape (the fields tools read)."""
    spec = rec["spec"]
    icfg = rec.get("image_config") or {}
    res = spec.get("resources", {})
    cmd = spec["command"] if spec.get("command") is not None else (
        [] if spec.get("entrypoint") is not None else icfg.get("Cmd"))
    entry = spec["entrypoint"] if spec.get("entrypoint") is not None else icfg.get("Entrypoint")
    hc = spec.get("healthcheck")
    health = st.get("health")
    status = st.get("status", "created")
    ports: dict[str, Any] = {}
    for p in rec.get("ports", []):
        ports.setdefault(f"{p['container_port']}/{p.get('protocol', 'tcp')}", []).append(
            {"HostIp": p.get("host_ip") or "0.0.0.0", "HostPort": str(p.get("host_port", ""))})
    networks = {name: {"IPAddress": ep.get("ip_address", ""), "IPPrefixLen": ep.get("prefix_len", 0),
                       "Gateway": ep.get("gateway", ""), "MacAddress": ep.get("mac_address", ""),
                       "NetworkID": ep.get("network_id", ""), "Aliases": ep.get("aliases", [])}
                for name, ep in rec.get("networks", {}).items()}
    first = next(iter(networks.values()), {})
    mounts = []
    for m in rec.get("mounts", []):
        entry_m = {"Type": m["type"], "Source": m.get("source", ""), "Destination": m["target"],
                   "Mode": "ro" if m.get("read_only") else "", "RW": not m.get("read_only"),
                   "Propagation": m.get("propagation") or ("rprivate" if m["type"] == "bind" else "")}
        if m["type"] == "volume":
            from runtime import paths

            entry_m["Name"] = m.get("source", "")
            entry_m["Source"] = str(paths.root() / "volumes" / m.get("source", "") / "_data")
            entry_m["Driver"] = "local"
        mounts.append(entry_m)
    exposed = {k: {} for k in list((icfg.get("ExposedPorts") or {}).keys()) + spec.get("exposed_ports", [])}
    for p in spec.get("ports", []):
        exposed.setdefault(f"{p['container_port']}/{p.get('protocol', 'tcp')}", {})
    return {
        "Id": rec["id"],
        "Created": rec["created"],
        "Path": (command_text(rec) or [""])[0],
        "Args": command_text(rec)[1:],
        "State": {
            "Status": status, "Running": status in ("running", "paused", "restarting"),
            "Paused": status == "paused", "Restarting": status == "restarting",
            "OOMKilled": bool(st.get("oom_killed")), "Dead": status == "dead", "Pid": st.get("pid", 0),
            "ExitCode": st.get("exit_code", 0), "Error": st.get("error", ""),
            "StartedAt": st.get("started_at") or "0001-01-01T00:00:00Z",
            "FinishedAt": st.get("finished_at") or "0001-01-01T00:00:00Z",
            **({"Health": {"Status": health.get("status"), "FailingStreak": health.get("failing_streak", 0),
                           "Log": health.get("log", [])}} if health else {}),
        },
        "Image": rec.get("image_id", ""),
        **_files(rec["id"]),
        "Name": "/" + rec["name"],
        "RestartCount": st.get("restart_count", 0),
        "Driver": "overlay2",
        "Platform": "linux",
        "HostConfig": {
            "Binds": [f"{m['source']}:{m['target']}{':ro' if m.get('read_only') else ''}"
                      for m in rec.get("mounts", []) if m["type"] == "bind"],
            "NetworkMode": spec.get("network_mode", "bridge"),
            "PortBindings": {f"{p['container_port']}/{p.get('protocol', 'tcp')}":
                             [{"HostIp": p.get("host_ip", ""), "HostPort": str(p.get("host_port") or "")}]
                             for p in spec.get("ports", [])},
            "RestartPolicy": {"Name": spec["restart"]["name"],
                              "MaximumRetryCount": spec["restart"]["maximum_retry_count"]},
            "AutoRemove": spec.get("auto_remove", False),
            "CapAdd": spec.get("cap_add") or None, "CapDrop": spec.get("cap_drop") or None,
            "GroupAdd": spec.get("group_add") or None,
            "Dns": spec.get("dns", []), "DnsSearch": spec.get("dns_search", []),
            "ExtraHosts": spec.get("extra_hosts") or None,
            "Privileged": spec.get("privileged", False), "ReadonlyRootfs": spec.get("read_only", False),
            "PublishAllPorts": spec.get("publish_all", False),
            "Init": spec.get("init") or None,
            "Runtime": rec.get("runtime", ""),
            "Memory": res.get("memory") or 0, "MemorySwap": res.get("memory_swap") or 0,
            "MemoryReservation": res.get("memory_reservation") or 0,
            "NanoCpus": res.get("nano_cpus") or 0, "CpuShares": res.get("cpu_shares") or 0,
            "CpuQuota": res.get("cpu_quota") or 0, "CpuPeriod": res.get("cpu_period") or 0,
            "CpusetCpus": res.get("cpuset_cpus") or "", "CpusetMems": res.get("cpuset_mems") or "",
            "PidsLimit": res.get("pids_limit"), "BlkioWeight": res.get("blkio_weight") or 0,
            **{key: [{"Path": v.rpartition(":")[0], "Rate": int(v.rpartition(":")[2])} for v in res.get(attr) or []]
               for key, attr in (("BlkioDeviceReadBps", "device_read_bps"), ("BlkioDeviceWriteBps", "device_write_bps"),
                                 ("BlkioDeviceReadIOps", "device_read_iops"),
                                 ("BlkioDeviceWriteIOps", "device_write_iops"))},
            "Devices": devices_json(spec.get("devices", [])),
            "Ulimits": [{"Name": u["name"], "Soft": u["soft"], "Hard": u["hard"]} for u in res.get("ulimits", [])],
            "LogConfig": {"Type": spec.get("log_driver", "json-file"), "Config": spec.get("log_options", {})},
            "Tmpfs": {m["target"]: "" for m in spec.get("mounts", []) if m["type"] == "tmpfs"},
            "SecurityOpt": spec.get("security_opt") or None,
            "Sysctls": spec.get("sysctls") or None,
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": spec.get("hostname") or rec["id"][:12], "Domainname": spec.get("domainname", ""),
            "User": spec.get("user") or icfg.get("User", ""),
            "AttachStdin": spec.get("stdin_open", False), "AttachStdout": True, "AttachStderr": True,
            "ExposedPorts": exposed or None,
            "Tty": spec.get("tty", False), "OpenStdin": spec.get("stdin_open", False),
            "StdinOnce": spec.get("stdin_once", False),
            "Env": _env(spec, icfg), "Cmd": cmd, "Entrypoint": entry,
            "Image": rec["image"], "Volumes": {m["target"]: {} for m in rec.get("mounts", [])
                                              if m["type"] == "volume"} or None,
            "WorkingDir": spec.get("working_dir") or icfg.get("WorkingDir", ""),
            "Labels": spec.get("labels", {}),
            "StopSignal": spec.get("stop_signal") or icfg.get("StopSignal") or "SIGTERM",
            **({"StopTimeout": spec["stop_timeout"]} if spec.get("stop_timeout") is not None else {}),
            **({"Healthcheck": {"Test": hc["test"], "Interval": _ns(hc["interval"]),
                                "Timeout": _ns(hc["timeout"]), "Retries": hc["retries"],
                                "StartPeriod": _ns(hc["start_period"]),
                                "StartInterval": _ns(hc.get("start_interval"))}} if hc else {}),
        },
        "NetworkSettings": {
            "Ports": ports, "IPAddress": first.get("IPAddress", ""), "Gateway": first.get("Gateway", ""),
            "IPPrefixLen": first.get("IPPrefixLen", 0), "MacAddress": first.get("MacAddress", ""),
            "SandboxKey": rec.get("netns", ""), "Networks": networks,
        },
    }


def _env(spec: dict[str, Any], icfg: dict[str, Any]) -> list[str]:
    out: dict[str, str] = {}
    for e in (icfg.get("Env") or []) + spec.get("env", []):
        out[e.partition("=")[0]] = e
    return list(out.values())


def _files(cid: str) -> dict[str, str]:
    from runtime import paths

    cdir = paths.root() / "containers" / cid
    out = {key: str(cdir / name) if (cdir / name).exists() else ""
           for key, name in (("ResolvConfPath", "resolv.conf"), ("HostnamePath", "hostname"), ("HostsPath", "hosts"))}
    out["LogPath"] = str(cdir / f"{cid}-json.log")
    return out


def devices_json(devices: list[str]) -> list[dict[str, str]]:
    """--device HOST[:CONTAINER[:rwm]] strings -> HostConfig.Devices."""
    out = []
    for d in devices:
        parts = d.split(":")
        out.append({"PathOnHost": parts[0], "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                    "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"})
    return out
