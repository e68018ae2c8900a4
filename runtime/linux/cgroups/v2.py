"""cgroup v2 driver: one directory in the unified tree, controllers enabled top-down."""

from __future__ import annotations

import os

from runtime.linux.cgroups import blkio, cpu, cpuset, freezer, memory, pids
from runtime.linux.cgroups.fs import makedirs, procs, read, rmdir_tree, write

_FOR_KEY = {"memory": "memory", "cpu": "cpu", "pids": "pids", "blockIO": "io", "hugepageLimits": "hugetlb"}


class V2Manager:
    """enable_all: turn on every available controller along the path (a v2 host: stats need them);
    otherwise only those a resource asks for (the secondary v2 tree of a hybrid host)."""

    def __init__(self, path: str, mountpoint: str = "/sys/fs/cgroup", enable_all: bool = True) -> None:
        self.path = path
        self.mountpoint = mountpoint
        self.enable_all = enable_all
        if not path.startswith("/"):
            path = os.path.join(_own(), path)
        self.dir = os.path.normpath(mountpoint + "/" + path.lstrip("/"))
        self._created = False

    def available(self) -> set[str]:
        """Controllers the parent hands down to this cgroup."""
        try:
            return set(read(os.path.dirname(self.dir), "cgroup.controllers").split())
        except OSError:
            return set()

    def create(self) -> None:
        if self._created:
            return
        if self.enable_all:
            self.enable(None)
        else:
            makedirs(self.dir)
        self._created = True

    def enable(self, wanted: set[str] | None) -> None:
        """Enable `wanted` (None: all available) controllers top-down and make the directories
        (the no-internal-process rule allows it: the intermediate cgroups hold no processes)."""
        rel = os.path.relpath(self.dir, self.mountpoint).split("/")
        d = self.mountpoint
        for part in rel:
            ctrls = read(d, "cgroup.controllers").split()
            enabled = set(read(d, "cgroup.subtree_control").split())
            missing = [c for c in ctrls if c not in enabled and (wanted is None or c in wanted)]
            if missing:
                try:
                    write(d, "cgroup.subtree_control", " ".join("+" + c for c in missing))
                except OSError:
                    for c in missing:  # one at a time: a busy controller must not block the others
                        try:
                            write(d, "cgroup.subtree_control", "+" + c)
                        except OSError:
                            pass
            d = f"{d}/{part}"
            makedirs(d)

    def add(self, pid: int) -> None:
        self.create()
        write(self.dir, "cgroup.procs", pid)

    def apply(self, resources: dict) -> None:
        r = resources or {}
        self.create()
        if not self.enable_all:
            wanted = {ctrl for key, ctrl in _FOR_KEY.items() if r.get(key)}
            if r.get("cpu") and (r["cpu"].get("cpus") or r["cpu"].get("mems")):
                wanted.add("cpuset")
            if wanted:
                self.enable(wanted)
        have = set(read(self.dir, "cgroup.controllers").split())
        for key, ctrl in _FOR_KEY.items():
            if r.get(key) and ctrl not in have and _restricts(key, r[key]):
                raise OSError(95, f"linux.resources.{key} needs the {ctrl} controller, which cgroup v2 "
                                  f"does not offer at {self.dir}")
        if r.get("memory"):
            memory.apply_v2(self.dir, r["memory"])
        if r.get("cpu"):
            cpu.apply_v2(self.dir, r["cpu"])
            if r["cpu"].get("cpus") or r["cpu"].get("mems"):
                cpuset.apply(self.dir, r["cpu"])
        if r.get("pids"):
            pids.apply(self.dir, r["pids"])
        if r.get("blockIO"):
            blkio.apply_v2(self.dir, r["blockIO"])
        if r.get("hugepageLimits"):
            from runtime.linux.cgroups import misc

            misc.apply_hugetlb(self.dir, r["hugepageLimits"], v2=True)
        if r.get("network"):
            raise OSError(95, "linux.resources.network (net_cls/net_prio) does not exist on cgroup v2")
        if r.get("devices"):
            from runtime.linux.cgroups import devices_bpf

            devices_bpf.attach(self.dir, r["devices"])
        for k, v in (r.get("unified") or {}).items():
            write(self.dir, k, v)

    def freeze(self) -> None:
        freezer.set_v2(self.dir, True)

    def thaw(self) -> None:
        freezer.set_v2(self.dir, False)

    def frozen(self) -> bool:
        return os.path.isdir(self.dir) and freezer.state_v2(self.dir) == "FROZEN"

    def stats(self):  # noqa: ANN201 - CgroupStats, imported lazily
        from runtime.linux.cgroups.manager import CgroupStats

        st = CgroupStats()
        memory.stats_v2(self.dir, st)
        cpu.stats_v2(self.dir, st)
        pids.stats(self.dir, st)
        blkio.stats_v2(self.dir, st)
        return st

    def pids(self) -> list[int]:
        return procs(self.dir)

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def kill(self) -> None:
        """SIGKILL every process (cgroup.kill, Linux >= 5.14)."""
        write(self.dir, "cgroup.kill", 1)

    def destroy(self) -> None:
        rmdir_tree(self.dir)


def _restricts(key: str, value: dict | list) -> bool:
    if key == "pids":
        return bool(value.get("limit") and value["limit"] > 0)
    if key == "memory":
        return any(value.get(k) not in (None, -1, 0) for k in ("limit", "reservation", "swap"))
    return bool(value)


def _own() -> str:
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"
