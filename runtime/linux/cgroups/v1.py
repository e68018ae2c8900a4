"""cgroup v1 driver: one directory per mounted hierarchy (plus the v2 tree on a hybrid host)."""

from __future__ import annotations

import os

from runtime.linux.cgroups import blkio, cpu, cpuset, devices, freezer, memory, pids
from runtime.linux.cgroups.fs import makedirs, procs, read, rmdir_tree, write

_NOT_CONTROLLERS = ("rw", "ro", "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "nsdelegate")
_hierarchies: dict[str, str] | None = None


def hierarchies() -> dict[str, str]:
    """Controller (or "name=systemd", "unified") -> mount point, from /proc/self/mountinfo."""
    global _hierarchies
    if _hierarchies is None:
        found: dict[str, str] = {}
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                fstype, _src, opts = (post.split() + ["", ""])[:3]
                point = pre.split()[4]
                if fstype == "cgroup":
                    for opt in opts.split(","):
                        if opt not in _NOT_CONTROLLERS and ("=" not in opt or opt.startswith("name=")):
                            found.setdefault(opt, point)
                elif fstype == "cgroup2" and point.startswith("/sys/fs/cgroup"):
                    found.setdefault("unified", point)
        _hierarchies = found
    return _hierarchies


def _own(controller: str) -> str:
    """The caller's cgroup in a hierarchy (for relative cgroupsPath values)."""
    key = "" if controller == "unified" else controller
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if key in ctrls.split(",") or (key == "" and ctrls == ""):
                return path
    return "/"


class V1Manager:
    def __init__(self, path: str, with_unified: bool = False) -> None:
        self.path = path
        self.created = False  # by this object: add() then skips a second pass of mkdirs
        self.dirs: dict[str, str] = {}
        for ctrl, point in hierarchies().items():
            if ctrl == "unified" and not with_unified:
                continue
            rel = path if path.startswith("/") else os.path.join(_own(ctrl), path)
            self.dirs[ctrl] = os.path.normpath(point + "/" + rel.lstrip("/"))

    def _dir(self, ctrl: str) -> str | None:
        return self.dirs.get(ctrl)

    def create(self) -> None:
        for ctrl, d in self.dirs.items():
            makedirs(d)
            if ctrl == "cpuset":
                cpuset.inherit_v1(d)
        self.created = True

    def add(self, pid: int) -> None:
        if not self.created:
            self.create()
        for d in self.dirs.values():
            write(d, "cgroup.procs", pid)

    def apply(self, resources: dict) -> None:
        r = resources or {}
        if r.get("memory") and self._dir("memory"):
            memory.apply_v1(self.dirs["memory"], r["memory"])
        if r.get("cpu"):
            if self._dir("cpu"):
                cpu.apply_v1(self.dirs["cpu"], r["cpu"])
            if self._dir("cpuset"):
                cpuset.apply(self.dirs["cpuset"], r["cpu"])
        if r.get("pids") and self._dir("pids"):
            pids.apply(self.dirs["pids"], r["pids"])
        if r.get("blockIO") and self._dir("blkio"):
            blkio.apply_v1(self.dirs["blkio"], r["blockIO"])
        if r.get("devices") and self._dir("devices"):
            devices.apply_v1(self.dirs["devices"], r["devices"])
        if r.get("hugepageLimits") or r.get("network"):
            from runtime.linux.cgroups import misc

            hugetlb, v2 = self._dir("hugetlb"), False
            if hugetlb is None and r.get("hugepageLimits") and self._dir("unified"):
                # a hybrid host may give hugetlb to the v2 tree only (this is how crun wants it)
                from runtime.linux.cgroups.v2 import V2Manager

                uni = V2Manager(self.path, hierarchies()["unified"], enable_all=False)
                if "hugetlb" in read(uni.mountpoint, "cgroup.controllers").split():
                    uni.enable({"hugetlb"})
                    hugetlb, v2 = uni.dir, True
            misc.apply_hugetlb(hugetlb, r.get("hugepageLimits") or [], v2=v2)
            misc.apply_network(self._dir("net_cls"), self._dir("net_prio"), r.get("network") or {})

    def freeze(self) -> None:
        freezer.set_v1(self._require("freezer"), True)

    def thaw(self) -> None:
        freezer.set_v1(self._require("freezer"), False)

    def frozen(self) -> bool:
        d = self._dir("freezer")
        return bool(d) and os.path.isdir(d) and freezer.state_v1(d) != "THAWED"

    def _require(self, ctrl: str) -> str:
        d = self._dir(ctrl)
        if not d:
            raise OSError(2, f"the {ctrl} cgroup controller is not mounted")
        return d

    def stats(self):  # noqa: ANN201 - CgroupStats, imported lazily
        from runtime.linux.cgroups.manager import CgroupStats

        st = CgroupStats()
        if self._dir("memory"):
            memory.stats_v1(self.dirs["memory"], st)
        cpu.stats_v1(self._dir("cpu"), self._dir("cpuacct"), st)
        if self._dir("pids"):
            pids.stats(self.dirs["pids"], st)
        if self._dir("blkio"):
            blkio.stats_v1(self.dirs["blkio"], st)
        return st

    def pids(self) -> list[int]:
        for ctrl in ("pids", "freezer", "memory", "devices", *self.dirs):
            d = self._dir(ctrl)
            if d and os.path.isdir(d):
                return procs(d)
        return []

    def kill(self) -> None:
        """SIGKILL every process; frozen first, so that none can fork while the list is walked."""
        frozen = bool(self._dir("freezer")) and os.path.isdir(self.dirs["freezer"])
        if frozen:
            self.freeze()
        try:
            for pid in self.pids():
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        finally:
            if frozen:
                self.thaw()

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self.dirs.values())

    def destroy(self) -> None:
        errors = []
        for d in self.dirs.values():
            try:
                rmdir_tree(d)
            except OSError as e:
                errors.append(f"{d}: {e.strerror}")
        if errors:
            raise OSError(16, "cannot remove cgroup " + "; ".join(errors))
