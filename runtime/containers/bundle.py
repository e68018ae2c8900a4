"""ContainerSpec + image config -> the OCI runtime-spec config.json (Docker's defaults).

A pure function of its inputs: the engine resolves users, volumes and the netns first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.engine import ContainerSpec, MountSpec
from runtime.errors import InvalidArgument

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
ALL_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
            "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
            "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
            "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
            "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
            "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
            "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
            "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"]
MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"]
READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/sbin/docker-init"
_DEVICES = [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0), ("c", 5, 1),
            ("c", 5, 2), ("c", 136, None), ("c", 10, 200)]


def normalize_caps(names: list[str]) -> list[str]:
    out = []
    for n in names:
        n = n.strip().upper()
        if n == "ALL":
            out.append(n)
            continue
        n = n if n.startswith("CAP_") else "CAP_" + n
        if n not in ALL_CAPS:
            raise InvalidArgument(f"unknown capability: {n}", hint="see capabilities(7); e.g. NET_ADMIN")
        out.append(n)
    return out


def capabilities(spec: ContainerSpec) -> list[str]:
    if spec.privileged:
        return list(ALL_CAPS)
    add, drop = normalize_caps(spec.cap_add), normalize_caps(spec.cap_drop)
    caps = [] if "ALL" in drop else list(DEFAULT_CAPS)
    caps = ALL_CAPS[:] if "ALL" in add else caps + [c for c in add if c not in caps]
    return [c for c in caps if c not in drop or c in add]


def merge_env(*envs: list[str]) -> list[str]:
    out: dict[str, str] = {}
    for env in envs:
        for e in env:
            k, sep, v = e.partition("=")
            out[k] = f"{k}={v}" if sep else e
    return list(out.values())


def process_args(spec: ContainerSpec, image: dict[str, Any]) -> list[str]:
    entry = spec.entrypoint if spec.entrypoint is not None else (image.get("Entrypoint") or [])
    if spec.command is not None:
        cmd = spec.command
    else:
        cmd = [] if spec.entrypoint is not None else (image.get("Cmd") or [])
    args = list(entry) + list(cmd)
    if not args:
        raise InvalidArgument("no command specified", hint="give a command after the image name")
    return args


def container_env(spec: ContainerSpec, image: dict[str, Any], hostname: str) -> list[str]:
    base = [DEFAULT_PATH, f"HOSTNAME={hostname}"] + (["TERM=xterm"] if spec.tty else [])
    return merge_env(base, image.get("Env") or [], spec.env)


@dataclass
class BundleInputs:
    """What the engine resolved before building config.json."""

    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    groups: list[int]
    hostname: str
    cgroups_path: str
    mounts: list[MountSpec]  # resolved: volume sources are host directories
    etc_files: dict[str, str] = field(default_factory=dict)  # /etc/hosts -> host path
    netns: str | None = None  # path; None = a new netns; "host" = share the host's
    share_uts: bool = False
    init_binary: str | None = None
    default_sysctls: dict[str, str] = field(default_factory=dict)  # the engine's, under the spec's --sysctl


def oci_config(spec: ContainerSpec, inp: BundleInputs) -> dict[str, Any]:
    caps = capabilities(spec)
    args = [INIT_PATH, "--", *inp.args] if inp.init_binary else inp.args
    rlimits = [{"type": f"RLIMIT_{u.name.upper()}", "soft": u.soft, "hard": u.hard}
               for u in spec.resources.ulimits]
    process = {
        "terminal": spec.tty, "user": {"uid": inp.uid, "gid": inp.gid, "additionalGids": inp.groups},
        "args": args, "env": inp.env, "cwd": inp.cwd or "/",
        "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
        "noNewPrivileges": "no-new-privileges" in spec.security_opt
                           or "no-new-privileges:true" in spec.security_opt,
        "consoleSize": {"height": 24, "width": 80},
    }
    if rlimits:
        process["rlimits"] = rlimits
    namespaces = [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]
    if not inp.share_uts:
        namespaces.append({"type": "uts"})
    if inp.netns != "host":
        namespaces.append({"type": "network", "path": inp.netns} if inp.netns else {"type": "network"})
    cfg: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": "rootfs", "readonly": spec.read_only},
        "mounts": _mounts(spec, inp),
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": inp.cgroups_path,
            "resources": oci_resources(spec),
            "maskedPaths": [] if spec.privileged else MASKED,
            "readonlyPaths": [] if spec.privileged else READONLY,
        },
    }
    from runtime.oci.seccomp_profile import linux_seccomp

    cfg["linux"].update(linux_seccomp(spec.security_opt, spec.privileged, caps))
    if not inp.share_uts:
        cfg["hostname"] = inp.hostname
    sysctls = {**inp.default_sysctls, **spec.sysctls}
    if sysctls:
        cfg["linux"]["sysctl"] = sysctls
    if spec.devices:
        cfg["linux"]["devices"] = [node for node, _ in _devices(spec)]
    return cfg


def _host_device(path: str, flag: str) -> tuple[str, int, int, Any]:
    """(type b|c, major, minor, stat) of a device node of the host."""
    import os
    import stat

    try:
        st = os.stat(path)
    except OSError:
        raise InvalidArgument(f"{flag}: no such device {path}", hint="name a device node of the host") from None
    if not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
        raise InvalidArgument(f"{flag}: {path} is not a device", hint="name a device node of the host")
    return ("b" if stat.S_ISBLK(st.st_mode) else "c"), os.major(st.st_rdev), os.minor(st.st_rdev), st


def _devices(spec: ContainerSpec) -> list[tuple[dict[str, Any], str]]:
    """--device HOST[:CONTAINER[:rwm]] -> (linux.devices node, cgroup access)."""
    out = []
    for d in spec.devices:
        parts = d.split(":")
        kind, major, minor, st = _host_device(parts[0], "--device")
        node = {"path": parts[1] if len(parts) > 1 else parts[0], "type": kind, "major": major, "minor": minor,
                "fileMode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid}
        out.append((node, parts[2] if len(parts) > 2 else "rwm"))
    return out


def _mounts(spec: ContainerSpec, inp: BundleInputs) -> list[dict[str, Any]]:
    ro_sys = [] if spec.privileged else ["ro"]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro_sys]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro_sys]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    ]
    user_targets = {m.target for m in inp.mounts}
    for dest, src in inp.etc_files.items():
        if dest not in user_targets:
            mounts.append({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
    if inp.init_binary:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": inp.init_binary,
                       "options": ["bind", "ro", "nosuid", "nodev"]})
    for m in inp.mounts:
        if m.type == "tmpfs":
            opts = ["nosuid", "nodev"]
            if m.tmpfs_size:
                opts.append(f"size={m.tmpfs_size}")
            if m.tmpfs_mode is not None:
                opts.append(f"mode={m.tmpfs_mode:o}")
            if m.read_only:
                opts.append("ro")
            mounts.append({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts})
        else:
            opts = ["rbind", m.propagation or "rprivate", "ro" if m.read_only else "rw"]
            mounts.append({"destination": m.target, "type": "bind", "source": m.source, "options": opts})
    return mounts


def oci_resources(spec: ContainerSpec) -> dict[str, Any]:
    """linux.resources of config.json (also what CgroupManager.apply takes for `update`)."""
    r = spec.resources
    devices = [{"allow": False, "access": "rwm"}]
    if spec.privileged:
        devices = [{"allow": True, "access": "rwm"}]
    else:
        devices += [{"allow": True, "type": t, "major": ma, "minor": mi if mi is not None else -1,
                     "access": "rwm"} for t, ma, mi in _DEVICES]
        devices += [{"allow": True, "type": n["type"], "major": n["major"], "minor": n["minor"], "access": access}
                    for n, access in _devices(spec)]
    out: dict[str, Any] = {"devices": devices}
    mem: dict[str, Any] = {}
    if r.memory:
        mem["limit"] = r.memory
        if r.memory_swap is not None and r.memory_swap != 0:
            mem["swap"] = r.memory_swap
        else:
            mem["swap"] = r.memory * 2
    if r.memory_reservation:
        mem["reservation"] = r.memory_reservation
    if mem:
        out["memory"] = mem
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.nano_cpus:
        cpu["period"] = 100000
        cpu["quota"] = r.nano_cpus * 100000 // 1_000_000_000
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
    if r.cpu_period:
        cpu["period"] = r.cpu_period
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    if r.pids_limit:
        out["pids"] = {"limit": r.pids_limit}
    if r.blkio_weight:
        out["blockIO"] = {"weight": r.blkio_weight}
    for key, values, flag in (("throttleReadBpsDevice", r.device_read_bps, "--device-read-bps"),
                              ("throttleWriteBpsDevice", r.device_write_bps, "--device-write-bps"),
                              ("throttleReadIOPSDevice", r.device_read_iops, "--device-read-iops"),
                              ("throttleWriteIOPSDevice", r.device_write_iops, "--device-write-iops")):
        for v in values:
            path, _, rate = v.rpartition(":")
            kind, major, minor, _ = _host_device(path, flag)
            if kind != "b":
                raise InvalidArgument(f"{flag}: {path} is not a block device")
            out.setdefault("blockIO", {}).setdefault(key, []).append({"major": major, "minor": minor,
                                                                      "rate": int(rate)})
    return out
