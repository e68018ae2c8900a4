"""The supervisor's one reaper: every child (and every orphan re-parented to it, as a child
subreaper) is waited for here, with waitpid(-1) in the main thread on SIGCHLD, and its exit
status handed to the Child object its owner registered.

Owners create children through `spawn()` (fork/posix_spawn and registration under one lock, so
a status can never arrive before its owner is known) or adopt a pid they did not fork (a
container's init, re-parented to the supervisor) with `watch()`: a status reaped before that
is kept for a while in `unclaimed`. Statuses of unknown orphans are dropped after UNCLAIMED_TTL.
"""

from __future__ import annotations

import os
import threading
import time

UNCLAIMED_TTL = 10.0


def _is_our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return int(data[data.rindex(b")") + 2:].split()[1]) == os.getpid()


def exit_code(status: int) -> int:
    """A wait status as a shell would report it (128+N for a signal)."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Child:
    """One process whose exit somebody waits for (`wait()`), or is told about (`notify`)."""

    __slots__ = ("pid", "code", "done", "notify")

    def __init__(self, pid: int, notify=None) -> None:
        self.pid = pid
        self.code: int | None = None
        self.done = threading.Event()
        self.notify = notify

    def finish(self, code: int) -> None:
        self.code = code
        self.done.set()
        if self.notify is not None:
            self.notify()

    def wait(self, timeout: float | None = None) -> int | None:
        self.done.wait(timeout)
        return self.code


class Reaper:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owners: dict[int, Child] = {}
        self.unclaimed: dict[int, tuple[int, float]] = {}
        self.paused = False  # during a hand-off: zombies wait for the next image

    def spawn(self, start, notify=None) -> Child:
        """`start()` forks or spawns and returns a pid; the Child is registered before any reaping."""
        with self.lock:
            pid = start()
            self.unclaimed.pop(pid, None)  # a stale status of an earlier process with this pid
            child = self.owners[pid] = Child(pid, notify)
        return child

    def watch(self, pid: int, notify=None) -> Child:
        """A process this supervisor did not fork (a container's init): its status, also one reaped earlier.

        pids are reused (pid_max may be 32768): a status kept for `pid` is this process's only if
        no child of ours has that pid now; else it was an earlier process's."""
        child = Child(pid, notify)
        with self.lock:
            early = self.unclaimed.pop(pid, None)
            if early is not None and _is_our_child(pid):
                early = None
            if early is None:
                self.owners[pid] = child
        if early is not None:
            child.finish(early[0])
        return child

    def forget(self, child: Child) -> None:
        with self.lock:
            if self.owners.get(child.pid) is child:
                del self.owners[child.pid]

    def reap(self) -> None:
        if self.paused:
            return
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = exit_code(status)
            with self.lock:
                child = self.owners.pop(pid, None)
                if child is None:
                    self.unclaimed[pid] = (code, time.monotonic())
            if child is not None:
                child.finish(code)

    def prune(self) -> None:
        limit = time.monotonic() - UNCLAIMED_TTL
        with self.lock:
            for pid in [p for p, (_, t) in self.unclaimed.items() if t < limit]:
                del self.unclaimed[pid]
