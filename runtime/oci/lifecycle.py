"""start, kill, delete, pause/resume on a created container (create is in create.py)."""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, a cost on the hot path
import os
import time

from runtime.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure
from runtime.oci import state as st


def start(root: str, cid: str) -> None:
    s = st.load(root, cid)
    status = st.status(s)
    if status != "created":
        raise Conflict(f"container {cid!r} is {status}, not created: only a created container can be started")
    fifo = os.path.join(s["_dir"], "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # the init is blocked opening the fifo for writing; it writes one byte, runs the
        # startContainer hooks and execs, which closes its end. Wait for the byte and, when
        # poststart hooks must see the process running, for that EOF too.
        # (A reader that never had a writer does not poll readable: select() waits for the init.)
        import select

        wait_exec = bool((s.get("hooks") or {}).get("poststart"))
        got = False
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 1)
                except BlockingIOError:
                    continue
                if data:
                    got = True
                    if not wait_exec:
                        break
                    continue
                if got:
                    break
            if st.status(s) == "stopped":
                if got:
                    break
                raise RuntimeFailure(f"container {cid!r}: its init exited before start")
    finally:
        os.close(fd)
    os.unlink(fifo)
    if (s.get("hooks") or {}).get("poststart"):
        from runtime.oci import hooks

        hooks.run_quiet("poststart", s["hooks"]["poststart"], st.oci_state(s, "running"))


SIGNALS = {name[3:]: getattr(signal, name) for name in dir(signal)
           if name.startswith("SIG") and not name.startswith("SIG_") and name.isupper()
           and isinstance(getattr(signal, name), int)}


def parse_signal(text: str) -> int:
    t = text.upper()
    if t.isdigit():
        return int(t)
    t = t[3:] if t.startswith("SIG") else t
    if t not in SIGNALS:
        raise InvalidArgument(f"unknown signal {text!r}")
    return int(SIGNALS[t])


def kill(root: str, cid: str, sig: int = signal.SIGTERM, all_: bool = False) -> None:
    s = st.load(root, cid)
    status = st.status(s)
    if status == "stopped":
        raise Conflict(f"container {cid!r} is not running")
    if all_ and s.get("cgroup"):
        from runtime.linux.cgroups import open_cgroup

        for pid in open_cgroup(s["cgroup"]).pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return
    try:
        os.kill(s["pid"], sig)
    except ProcessLookupError:
        pass


def delete(root: str, cid: str, force: bool = False) -> None:
    try:
        s = st.load(root, cid)
    except NotFound:
        d = st.container_dir(root, cid)
        if force and os.path.isdir(d):  # a `create` killed half-way left a dir without state
            st.remove_dir(d)
            return
        raise
    status = st.status(s)
    if status != "stopped" and not force:
        raise Conflict(f"container {cid!r} is {status}: stop it first or use --force")
    from runtime.linux.cgroups import open_cgroup

    cg = open_cgroup(s["cgroup"]) if s.get("cgroup") else None
    if status != "stopped":
        if status == "paused" and cg is not None:
            cg.thaw()
        try:
            os.kill(s["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_gone(s)
    if cg is not None:
        for pid in cg.pids():  # leftovers of a container without a pid namespace
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            cg.destroy()
        except OSError as e:
            raise RuntimeFailure(f"container {cid!r}: {e}") from None
    if s.get("host_mounts"):  # no mount namespace: the container's mounts are the host's to undo
        from runtime.linux.mount import umount_all_under

        umount_all_under(s["rootfs"])
    st.remove_dir(s["_dir"])
    if (s.get("hooks") or {}).get("poststop"):
        from runtime.oci import hooks

        hooks.run_quiet("poststop", s["hooks"]["poststop"], st.oci_state(s, "stopped"))


def _wait_gone(s: dict, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while st.status(s) != "stopped":
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"container {s['id']!r}: init {s['pid']} did not exit after SIGKILL")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def pause(root: str, cid: str) -> None:
    from runtime.linux.cgroups import open_cgroup

    s = st.load(root, cid)
    if st.status(s) != "running":
        raise Conflict(f"container {cid!r} is not running")
    open_cgroup(s["cgroup"]).freeze()


def resume(root: str, cid: str) -> None:
    from runtime.linux.cgroups import open_cgroup

    s = st.load(root, cid)
    if st.status(s) != "paused":
        raise Conflict(f"container {cid!r} is not paused")
    open_cgroup(s["cgroup"]).thaw()
