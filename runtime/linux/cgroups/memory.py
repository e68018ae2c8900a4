"""memory (+swap): limit, reservation, swap, swappiness, OOM killer; usage and OOM events."""

from __future__ import annotations

import errno
import os

from runtime.linux.cgroups.fs import cg_value, read_int, read_keyed, write


def apply_v1(d: str, mem: dict) -> None:
    limit, swap = mem.get("limit"), mem.get("swap")
    if limit is not None or swap is not None:
        pairs = []
        if limit is not None:
            pairs.append(("memory.limit_in_bytes", limit))
        if swap is not None and os.path.exists(f"{d}/memory.memsw.limit_in_bytes"):
            # (no memsw file: the kernel runs without swap accounting; like runc, leave swap alone)
            pairs.append(("memory.memsw.limit_in_bytes", swap))
        try:
            for name, v in pairs:
                write(d, name, v)
        except OSError as e:
            # raising a limit above memsw (or lowering memsw under limit) needs the other order
            if e.errno != errno.EINVAL or len(pairs) < 2:
                raise
            for name, v in reversed(pairs):
                write(d, name, v)
    if mem.get("reservation") is not None:
        write(d, "memory.soft_limit_in_bytes", mem["reservation"])
    if mem.get("kernelTCP") is not None:
        write(d, "memory.kmem.tcp.limit_in_bytes", mem["kernelTCP"])
    if mem.get("kernel") is not None:
        try:  # deprecated: Linux >= 5.16 accepts and ignores it, newer ones drop the file
            write(d, "memory.kmem.limit_in_bytes", mem["kernel"])
        except OSError:
            pass
    if mem.get("swappiness") is not None:
        write(d, "memory.swappiness", mem["swappiness"])
    if mem.get("disableOOMKiller"):
        write(d, "memory.oom_control", 1)


def apply_v2(d: str, mem: dict) -> None:
    limit, swap = mem.get("limit"), mem.get("swap")
    if swap is not None:
        # OCI swap is memory+swap; v2 memory.swap.max is swap alone
        if swap < 0:
            write(d, "memory.swap.max", "max")
        elif limit is not None and limit >= 0:
            if swap < limit:
                raise ValueError(f"linux.resources.memory.swap ({swap}) must be >= memory.limit ({limit})")
            write(d, "memory.swap.max", swap - limit)
        else:
            raise ValueError("linux.resources.memory.swap needs memory.limit on cgroup v2")
    if limit is not None:
        write(d, "memory.max", cg_value(limit))
    if mem.get("reservation") is not None:
        write(d, "memory.low", cg_value(mem["reservation"]))
    if mem.get("disableOOMKiller"):
        raise ValueError("linux.resources.memory.disableOOMKiller is not supported on cgroup v2")


def stats_v1(d: str, st: object) -> None:
    st.memory_usage = read_int(d, "memory.usage_in_bytes")
    st.memory_max_usage = read_int(d, "memory.max_usage_in_bytes")
    limit = read_int(d, "memory.limit_in_bytes")
    st.memory_limit = 0 if limit >= 1 << 62 else limit
    st.oom_events = read_int(d, "memory.failcnt")
    st.oom_kills = read_keyed(d, "memory.oom_control").get("oom_kill", 0)


def stats_v2(d: str, st: object) -> None:
    st.memory_usage = read_int(d, "memory.current")
    st.memory_max_usage = read_int(d, "memory.peak")
    st.memory_limit = read_int(d, "memory.max")
    ev = read_keyed(d, "memory.events")
    st.oom_events = ev.get("oom", 0)
    st.oom_kills = ev.get("oom_kill", 0)
