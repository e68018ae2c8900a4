"""`top` and `stats`: the container's processes (by pid namespace) and cgroup figures."""

from __future__ import annotations

import os
import time
from typing import Any


def _ns(pid: int | str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def container_pids(init_pid: int) -> list[int]:
    target = _ns(init_pid)
    if not target:
        return []
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit() and _ns(p) == target)


def _uid_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def top(init_pid: int) -> tuple[list[str], list[list[str]]]:
    """ps -ef columns for every process in the container's pid namespace (host pids)."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    rows = []
    for pid in container_pids(init_pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ppid, utime, stime, start = fields[1], int(fields[11]), int(fields[12]), int(fields[19])
        cpu = (utime + stime) // tick
        stime_s = time.strftime("%H:%M", time.localtime(btime + start / tick))
        tty = "?" if fields[4] == "0" else "pts/" + str(int(fields[4]) & 0xFF)
        rows.append([_uid_name(uid), str(pid), ppid, "0", stime_s, tty,
                     time.strftime("%H:%M:%S", time.gmtime(cpu)), cmd or f"[{stat.split('(')[1].split(')')[0]}]"])
    return ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], rows


def stats(cid: str, name: str, running: bool) -> dict[str, Any]:
    """Memory, CPU, pids and block I/O of the container's cgroup (v1 or v2, via runtime.linux.cgroups)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    row = {"ID": cid[:12], "Name": name, "MemUsage": 0, "MemLimit": total, "MemPerc": 0.0, "CPUNanos": 0,
           "PIDs": 0, "BlockRead": 0, "BlockWrite": 0}
    if not running:
        return row
    from runtime.linux.cgroups import open_cgroup

    st = open_cgroup(f"/wharf/{cid}").stats()
    limit = st.memory_limit if 0 < st.memory_limit < total else total
    row.update(MemUsage=st.memory_usage, MemLimit=limit, CPUNanos=st.cpu_usage_ns, PIDs=st.pids_current,
               MemPerc=round(100.0 * st.memory_usage / limit, 2) if limit else 0.0,
               BlockRead=st.io_read_bytes, BlockWrite=st.io_write_bytes)
    return row


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.4g}{unit}"
        n /= 1024
    return f"{n}"


def stats_table(rows: list[dict[str, Any]]) -> str:
    from runtime.containers.views import table

    view = [{"ID": r["ID"], "Name": r["Name"], "CPU": f"{r.get('CPUPerc', 0.0):.2f}%",
             "Mem": f"{_size(r['MemUsage'])} / {_size(r['MemLimit'])}", "MemPerc": f"{r['MemPerc']:.2f}%",
             "IO": f"{_size(r['BlockRead'])} / {_size(r['BlockWrite'])}", "PIDs": str(r["PIDs"])} for r in rows]
    return table(view, [("CONTAINER ID", "ID"), ("NAME", "Name"), ("CPU %", "CPU"), ("MEM USAGE / LIMIT", "Mem"),
                        ("MEM %", "MemPerc"), ("BLOCK I/O", "IO"), ("PIDS", "PIDs")])
