"""cgroups v1 and v2 behind one interface (CgroupManager), picked by open_cgroup().

Resources are the OCI runtime-spec `linux.resources` object (a dict, as in config.json);
each controller module turns it into files of one v1 controller and its v2 counterpart.
Cheap to import: the runtime's hot path creates the cgroup before the container execs.
"""

from __future__ import annotations

import os
import time

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


PARENT = "/wharf"  # every container's cgroup is PARENT/<id> in each hierarchy


def remove_parent_if_unused(path: str = PARENT) -> None:
    """rmdir the shared parent cgroup in every hierarchy where it is empty (it is busy while any
    container of any state root lives in it). A creation racing with this retries (fs.makedirs)."""
    cg = open_cgroup(path)
    for d in (getattr(cg, "dirs", None) or {"": cg.dir}).values():
        try:
            os.rmdir(d)
        except OSError:
            pass


def own_procs_file() -> str:
    """The cgroup.procs file of this process's own cgroup: in the v2 tree when there is one, else
    in its first v1 hierarchy ("" when /proc/self/cgroup says nothing usable)."""
    with open("/proc/self/cgroup") as f:
        lines = [line.rstrip("\n").split(":", 2) for line in f]
    for hid, ctrls, path in lines:
        if hid == "0" and not ctrls:
            base = ROOT if mode() == "unified" else ROOT + "/unified"
            return f"{base}{path.rstrip('/')}/cgroup.procs"
    for _, ctrls, path in lines:
        name = ctrls.split(",")[0].removeprefix("name=")
        if name and os.path.isdir(f"{ROOT}/{name}"):
            return f"{ROOT}/{name}{path.rstrip('/')}/cgroup.procs"
    return ""


def _move_self(procs: str) -> None:
    """Move this process into the cgroup it is already in: a no-op that takes the migration lock."""
    try:
        fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)
    except OSError:  # best effort: the lock was taken (and the grace period paid) even if refused
        pass


def prime_migration() -> None:
    """In a throw-away child (fork it, run this there: it never returns), start paying the RCU
    grace period that the next move of a task between cgroups waits for.

    Every write to cgroup.procs takes a global percpu rwsem (cgroup_threadgroup_rwsem) whose
    first writer waits a grace period (5-15 ms here), holding cgroup_mutex meanwhile (so cgroup
    mkdirs wait too: create the cgroup first); writers that follow within about one more grace
    period do not wait. The child moves itself into the cgroup it is already in, so the runtime's
    real move of the container's init, a few milliseconds later, finds the fast path.
    """
    try:
        from runtime.linux.prctl import set_name

        set_name("wharf-primer")
        _move_self(own_procs_file())
    except BaseException:  # noqa: BLE001 - best effort; never return into the caller
        pass
    os._exit(0)


class MigrationPrimer:
    """prime_migration for a long-lived process that starts containers (the supervisor): a thread
    that, for a while after each kick(), keeps the migration lock's fast path open by moving this
    process into its own cgroup every PERIOD seconds. Kick it when a container start is asked for:
    the first grace period then passes while the engine prepares the bundle, not in the runtime."""

    PERIOD = 0.002

    def __init__(self) -> None:
        import threading

        self.procs = own_procs_file()
        self.until = 0.0
        self.moves = 0
        self.cond = threading.Condition()
        threading.Thread(target=self._loop, name="cgroup-primer", daemon=True).start()

    def kick(self, seconds: float = 0.3) -> None:
        with self.cond:
            self.until = max(self.until, time.monotonic() + seconds)
            self.cond.notify()

    def _loop(self) -> None:
        while self.procs:
            with self.cond:
                while time.monotonic() >= self.until:
                    self.cond.wait()
            _move_self(self.procs)
            self.moves += 1
            time.sleep(self.PERIOD)


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
