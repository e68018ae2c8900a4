"""cgroups v1 and v2 behind one interface (CgroupManager), picked by open_cgroup().

Resources are the OCI runtime-spec `linux.resources` object (a dict, as in config.json);
each controller module turns it into files of one v1 controller and its v2 counterpart.
Cheap to import: the runtime's hot path creates the cgroup before the container execs.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.cgroups.manager import CgroupManager

ROOT = "/sys/fs/cgroup"


def mode() -> str:
    """"unified" (v2 only), "hybrid" (v1 controllers + a v2 tree at /sys/fs/cgroup/unified) or "legacy"."""
    if os.path.exists(ROOT + "/cgroup.controllers"):
        return "unified"
    if os.path.exists(ROOT + "/unified/cgroup.controllers"):
        return "hybrid"
    return "legacy"


def open_cgroup(path: str, version: int | None = None) -> CgroupManager:
    """The cgroup at `path` (relative to each hierarchy's root, e.g. "/wharf/<id>").

    version=None picks the host's layout: v2 on a unified host, v1 otherwise (a hybrid host's
    v2 tree is joined too, as runc does). version=2 on a hybrid host drives the v2 tree alone.
    """
    m = mode()
    if version == 2 or (version is None and m == "unified"):
        from runtime.linux.cgroups.v2 import V2Manager

        if m == "unified":
            return V2Manager(path, ROOT)
        return V2Manager(path, ROOT + "/unified", enable_all=False)  # hybrid: touch only what is asked
    from runtime.linux.cgroups.v1 import V1Manager

    return V1Manager(path, with_unified=m == "hybrid")


def prime_migration() -> int:
    """Start paying, in a throw-away child, the RCU grace period that the next move of a task
    between cgroups waits for; returns the child's pid (reap it with waitpid).

    Every write to cgroup.procs takes a global percpu rwsem whose first writer waits a grace
    period (milliseconds); writers that follow within about one more grace period do not. The
    child moves itself into the cgroup it is already in (a no-op), so the runtime's real move
    of the container's init, a few milliseconds later, finds the fast path.
    """
    pid = os.fork()
    if pid:
        return pid
    try:
        with open("/proc/self/cgroup") as f:
            line = next((x for x in f if x.startswith("0::")), "")
        base = ROOT if mode() == "unified" else ROOT + "/unified"
        fd = os.open(base + line[3:].strip() + "/cgroup.procs", os.O_WRONLY)
        os.write(fd, b"0")
    except BaseException:  # noqa: BLE001 - best effort; never return into the caller
        pass
    os._exit(0)


def oom_kills(path: str) -> int:
    """Processes the OOM killer killed in the cgroup at `path` (cheap: no stats object)."""
    from runtime.linux.cgroups.fs import read_keyed
    from runtime.linux.cgroups.v1 import V1Manager

    cg = open_cgroup(path)
    if isinstance(cg, V1Manager):
        d, name = cg.dirs.get("memory"), "memory.oom_control"
    else:
        d, name = cg.dir, "memory.events"
    return read_keyed(d, name).get("oom_kill", 0) if d else 0
