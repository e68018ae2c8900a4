"""What runs against a live (or stopped) container besides its lifecycle: exec, pause,
update, top, stats, rename, diff/commit, a view of its root. Mixed into LocalContainers."""

from __future__ import annotations

import os
from typing import Any

from runtime.containers import imagesrc, launch
from runtime.containers.codec import spec_from_dict, to_dict
from runtime.containers.events import emit
from runtime.containers.store import RUNNING, ContainerStore, shim_alive
from runtime.engine import ExecResult, Resources
from runtime.errors import Conflict, InvalidArgument


class ContainerOperations:
    store: ContainerStore

    # ------------------------------------------------------------ exec
    def exec_spawn_pty(self, ref: str, cmd: list[str], env: list[str] | None = None, user: str = "",
                       workdir: str = "", size: tuple[int, int] | None = None,
                       privileged: bool = False) -> tuple[int, int]:
        """`exec -t`: (pid, pty master fd), the pty allocated in the container's own devpts."""
        return self.exec_spawn(ref, cmd, env, user, workdir, size=size, privileged=privileged,
                               _container_pty=True)

    def exec_spawn(self, ref: str, cmd: list[str], env: list[str] | None = None, user: str = "",
                   workdir: str = "", stdio: tuple[int, int, int] = (0, 1, 2), tty: bool = False,
                   size: tuple[int, int] | None = None, privileged: bool = False, _container_pty: bool = False,
                   only_stdio: bool = False):
        """Start `cmd` inside the running container; returns a pid to waitpid() on.
        tty=True: stdio[0] is a (host) pty slave that becomes the controlling terminal.
        only_stdio: the helper keeps no other fd of the caller (nsexec.spawn).
        The command gets the container's caps, seccomp filter, rlimits (privileged: every cap)."""
        from runtime.containers import bundle, nsexec
        from runtime.containers.users import resolve_user
        from runtime.util.fs import read_json

        cid = self.store.resolve(ref)
        st = self.store.load_state(cid)
        if st.get("status") not in ("running",) or not st.get("pid") or not shim_alive(st):
            state = "paused" if st.get("status") == "paused" else "not running"
            raise Conflict(f"container {cid[:12]} is {state}", hint="start it first (`wharf start`)")
        if not cmd:
            raise InvalidArgument("exec needs a command")
        oci = read_json(self.store.dir(cid) / "bundle" / "config.json") or {}
        proc = oci.get("process", {})
        root = f"/proc/{st['pid']}/root"
        if user:
            uid, gid, groups = resolve_user(root, user)
        else:
            u = proc.get("user", {})
            uid, gid, groups = u.get("uid", 0), u.get("gid", 0), u.get("additionalGids", [])
        penv = bundle.merge_env(proc.get("env", []), env or [])
        if tty or _container_pty:
            penv = bundle.merge_env(penv, ["TERM=xterm"])
        if _container_pty:
            return nsexec.spawn_pty(st["pid"], cmd, penv, f"/wharf/{cid}", uid=uid, gid=gid, groups=groups,
                                    cwd=workdir or proc.get("cwd", "/"), size=size, config=oci or None,
                                    privileged=privileged)
        return nsexec.spawn(st["pid"], cmd, penv, f"/wharf/{cid}", uid=uid, gid=gid, groups=groups,
                            cwd=workdir or proc.get("cwd", "/"), stdio=stdio, tty=tty, config=oci or None,
                            privileged=privileged, only_stdio=only_stdio)

    def exec(self, ref: str, cmd: list[str], env: list[str] | None = None, user: str = "",
             workdir: str = "", tty: bool = False, privileged: bool = False) -> ExecResult:
        r, w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            pid = self.exec_spawn(ref, cmd, env, user, workdir, stdio=(null, w, w), privileged=privileged)
        finally:
            os.close(w)
            os.close(null)
        chunks = []
        with os.fdopen(r, "rb") as f:
            while chunk := f.read(65536):
                chunks.append(chunk)
        _, status = os.waitpid(pid, 0)
        return ExecResult(exit_code=os.waitstatus_to_exitcode(status), output=b"".join(chunks))

    # ------------------------------------------------------------ misc verbs
    def rename(self, ref: str, new_name: str) -> None:
        cid = self.store.resolve(ref)
        with self.store.lock(cid):
            rec = self.store.load(cid)
            old = rec["name"]
            new = self.store.reserve_name(new_name, cid)
            rec["name"] = new
            rec["spec"]["name"] = new
            self.store.save(cid, rec)
            self.store.release_name(old, cid)
        emit("container", "rename", cid, {"name": new, "oldName": old, "image": rec["image"]})

    def record_network(self, cid: str, network: str, endpoint) -> None:
        """network connect/disconnect: keep config.json's endpoints in step (endpoint None = gone)."""
        with self.store.lock(cid):
            rec = self.store.load(cid)
            if endpoint is None:
                rec.get("networks", {}).pop(network, None)
            else:
                rec.setdefault("networks", {})[network] = to_dict(endpoint)
            self.store.save(cid, rec)

    def _cgroup(self, ref: str):
        from runtime.linux.cgroups import open_cgroup

        cid = self.store.resolve(ref)
        return cid, open_cgroup(f"/wharf/{cid}")

    def pause(self, ref: str) -> None:
        cid = self.store.resolve(ref)
        st = self.store.load_state(cid)
        if st.get("status") != "running" or not shim_alive(st):
            raise Conflict(f"container {ref} is not running", hint="only running containers can be paused")
        self._cgroup(cid)[1].freeze()
        self.store.update_state(cid, status="paused")
        emit("container", "pause", cid, {"name": self.store.load(cid)["name"]})

    def unpause(self, ref: str) -> None:
        cid = self.store.resolve(ref)
        st = self.store.load_state(cid)
        if st.get("status") != "paused":
            raise Conflict(f"container {ref} is not paused")
        self._cgroup(cid)[1].thaw()
        self.store.update_state(cid, status="running")
        emit("container", "unpause", cid, {"name": self.store.load(cid)["name"]})

    def update(self, ref: str, resources: Resources | None = None, restart=None) -> None:
        cid = self.store.resolve(ref)
        with self.store.lock(cid):
            rec = self.store.load(cid)
            spec = spec_from_dict(rec["spec"])
            if resources is not None:
                for k, v in to_dict(resources).items():
                    if v not in (None, [], 0):
                        setattr(spec.resources, k, getattr(resources, k))
            if restart is not None:
                spec.restart = restart
            rec["spec"] = to_dict(spec)
            self.store.save(cid, rec)
        st = self.store.load_state(cid)
        if resources is not None and st.get("status") in RUNNING and shim_alive(st):
            from runtime.containers.bundle import oci_resources

            res = oci_resources(spec)
            res.pop("devices", None)
            self._cgroup(cid)[1].apply(res)
        if restart is not None:
            from runtime.util.fs import atomic_write_json, read_json

            shim = read_json(self.store.dir(cid) / "shim.json")
            if shim is not None:
                shim["restart"] = to_dict(restart)
                atomic_write_json(self.store.dir(cid) / "shim.json", shim)
        emit("container", "update", cid, {"name": rec["name"]})

    def top(self, ref: str) -> tuple[list[str], list[list[str]]]:
        from runtime.containers.procs import top

        cid = self.store.resolve(ref)
        st = self.store.load_state(cid)
        if st.get("status") not in RUNNING or not st.get("pid"):
            raise Conflict(f"container {ref} is not running")
        return top(st["pid"])

    def stats(self, ref: str) -> dict[str, Any]:
        from runtime.containers.procs import stats

        cid = self.store.resolve(ref)
        rec = self.store.load(cid)
        st = self.store.load_state(cid)
        running = st.get("status") in RUNNING and shim_alive(st)
        return stats(cid, rec["name"], running)

    def diff(self, ref: str) -> list[tuple[str, str]]:
        rec = self.record(ref)
        if rec.get("rootfs_dir"):
            raise InvalidArgument("diff is not available for --rootfs containers")
        return imagesrc.diff(rec)

    def commit(self, ref: str, repo: str | None = None, changes: dict | None = None, author: str = "",
               message: str = "", pause: bool = True):
        rec = self.record(ref)
        if rec.get("rootfs_dir"):
            raise InvalidArgument("commit is not available for --rootfs containers")
        paused = pause and self.store.load_state(rec["id"]).get("status") == "running"
        if paused:  # a consistent filesystem, as docker commit does by default
            self.pause(rec["id"])
        try:
            img = imagesrc.commit(rec, changes, author, message, repo)
        finally:
            if paused:
                self.unpause(rec["id"])
        emit("container", "commit", rec["id"], {"name": rec["name"], "image": rec["image"]})
        return img

    def with_rootfs(self, ref: str, live_view: bool = True):
        """A context manager giving a host path of the container's root (mounted while needed).

        live_view: for a running container, its own view (/proc/PID/root: volumes and binds
        included, as `cp` wants); otherwise the image+upper filesystem alone (what `export` wants).
        """
        from contextlib import contextmanager

        cid = self.store.resolve(ref)

        @contextmanager
        def ctx():
            st = self.store.load_state(cid)
            running = st.get("status") in RUNNING and st.get("pid") and shim_alive(st)
            if running and live_view:
                yield f"/proc/{st['pid']}/root"
                return
            if running:
                yield str(launch.rootfs_dir(self.store, cid))  # mounted while it runs
                return
            with self.store.lock(cid):
                rec = self.store.load(cid)
                root = launch.mount_rootfs(self.store, rec)
                try:
                    yield str(root)
                finally:
                    launch.umount_rootfs(self.store, cid)

        return ctx()
