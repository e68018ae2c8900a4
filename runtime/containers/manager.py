"""LocalContainers: the container half of LocalEngine (create/start/stop/... on disk + the supervisor)."""

from __future__ import annotations

import copy
import os
import signal as signals
import time
from collections.abc import Iterator
from typing import Any

from runtime.containers import imagesrc, launch, netsetup, stream
from runtime.containers.codec import (
    endpoint_info_from_dict,
    mount_from_dict,
    port_from_dict,
    spec_from_dict,
    state_from_dict,
    to_dict,
)
from runtime.containers.events import emit
from runtime.containers.filters import match_container
from runtime.containers.operations import ContainerOperations
from runtime.containers.store import (
    RUNNING,
    ContainerStore,
    now_rfc3339,
    shim_alive,
    wait_pid_exit,
    wait_shim_exit,
)
from runtime.engine import ContainerInfo, ContainerSpec, Filters, MountSpec
from runtime.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure, WharfError


def signal_number(sig: str | int) -> int:
    if isinstance(sig, int) or str(sig).isdigit():
        return int(sig)
    name = str(sig).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(getattr(signals.Signals, name))
    except AttributeError:
        raise InvalidArgument(f"invalid signal: {sig}", hint="use a name like SIGTERM or a number") from None


# what a start resets in state.json (a new container is created with it)
FRESH_START = {"stop_requested": False, "removing": False, "error": "", "restart_count": 0}


class LocalContainers(ContainerOperations):
    def __init__(self, store: ContainerStore | None = None) -> None:
        self.store = store or ContainerStore()

    # ------------------------------------------------------------ reading
    def _info(self, rec: dict[str, Any], st: dict[str, Any] | None = None) -> ContainerInfo:
        st = st if st is not None else self.store.load_state(rec["id"])
        if st.get("status") in RUNNING and not shim_alive(st) and st.get("status") != "paused":
            st = self._mark_dead(rec["id"], st)
        return ContainerInfo(
            id=rec["id"], name=rec["name"], image=rec["image"], image_id=rec.get("image_id", ""),
            created=rec["created"], spec=spec_from_dict(rec["spec"]), state=state_from_dict(st),
            restart_count=st.get("restart_count", 0),
            ports=[port_from_dict(p) for p in rec.get("ports", [])],
            networks={k: endpoint_info_from_dict(v) for k, v in rec.get("networks", {}).items()},
            mounts=[mount_from_dict(m) for m in rec.get("mounts", [])])

    def _mark_dead(self, cid: str, st: dict[str, Any]) -> dict[str, Any]:
        """The supervisor vanished (killed, host rebooted): the container is not running any more."""
        with self.store.lock(cid):
            st = self.store.load_state(cid)
            if st.get("status") in RUNNING and not shim_alive(st):
                rec = self.store.load(cid)
                self._runtime_delete(rec)  # its processes outlived the shim: kill them (repair)
                self._teardown(rec, spec_from_dict(rec["spec"]))
                st.update(status="exited", pid=0, exit_code=st.get("exit_code") or 255,
                          error=st.get("error") or "supervisor exited unexpectedly",
                          finished_at=st.get("finished_at") or now_rfc3339())
                self.store.save_state(cid, st)
        return st

    def reap_auto_removed(self, rec: dict[str, Any], st: dict[str, Any]) -> bool:
        """A --rm container that exited while nobody removed it (its `run` was killed): remove it now."""
        if not rec["spec"].get("auto_remove") or st.get("status") not in ("exited", "dead") or shim_alive(st):
            return False
        if not st.get("finished_at"):
            return False
        try:
            self.destroy(rec["id"], rec, volumes=True)
        except WharfError:
            return False
        return True

    def inspect(self, ref: str) -> ContainerInfo:
        cid = self.store.resolve(ref)
        return self._info(self.store.load(cid))

    def record(self, ref: str) -> dict[str, Any]:
        return self.store.load(self.store.resolve(ref))

    def list(self, all: bool = False, filters: Filters | None = None) -> list[ContainerInfo]:
        out = []
        for cid in self.store.ids():
            try:
                rec = self.store.load(cid)
            except NotFound:
                continue  # removed meanwhile
            st = self.store.load_state(cid)
            if st.get("status") in RUNNING and not shim_alive(st) and st.get("status") != "paused":
                st = self._mark_dead(cid, st)
            if self.reap_auto_removed(rec, st):
                continue
            if not all and st.get("status") not in RUNNING and not (filters and "status" in filters):
                continue
            if filters and not match_container(rec, st, filters):
                continue
            out.append(self._info(rec, st))
        out.sort(key=lambda i: i.created, reverse=True)
        return out

    # ------------------------------------------------------------ create
    def create(self, spec: ContainerSpec) -> ContainerInfo:
        spec = copy.deepcopy(spec)
        _validate(spec)
        netsetup.check_mode(spec)
        if spec.rootfs:
            if not os.path.isdir(spec.rootfs):
                raise InvalidArgument(f"--rootfs {spec.rootfs}: no such directory")
            image_id, image_cfg = "", {"config": {}}
        else:
            image_id, image_cfg = imagesrc.resolve(spec.image)
        icfg = image_cfg.get("config") or {}
        cid = self.store.new_id()
        self.store.dir(cid).mkdir(parents=True)
        try:
            name = self.store.reserve_name(spec.name, cid)
        except WharfError:
            os.rmdir(self.store.dir(cid))
            raise
        try:
            mounts = self._resolve_mounts(spec, icfg)
            spec.name = name
            rec = {"id": cid, "name": name, "created": now_rfc3339(), "image": spec.image,
                   "image_id": image_id, "image_config": icfg, "rootfs_dir": spec.rootfs or "",
                   "runtime": spec.runtime or launch.default_runtime(), "spec": to_dict(spec),
                   "mounts": [to_dict(m) for m in mounts], "ports": [], "networks": {}}
            launch.runtime_argv(rec["runtime"])  # unknown runtime: fail now, not at start
            self.store.save_state(cid, dict(FRESH_START, status="created"))
            self.store.save(cid, rec)
            if image_id:  # from now on `rmi` of its image is a conflict (start would find it gone)
                imagesrc.hold(image_id, cid)
        except BaseException:
            self.store.delete(cid, name)
            raise
        emit("container", "create", cid, {"name": name, "image": spec.image, **spec.labels})
        return self._info(rec)

    def _resolve_mounts(self, spec: ContainerSpec, icfg: dict[str, Any]) -> list[MountSpec]:
        mounts: list[MountSpec] = []
        seen = set()
        for m in spec.mounts:
            if m.target in seen:
                raise InvalidArgument(f"duplicate mount point: {m.target}")
            seen.add(m.target)
            m = copy.deepcopy(m)
            if m.type == "bind" and not os.path.exists(m.source):
                os.makedirs(m.source, exist_ok=True)  # docker -v creates a missing host dir
            if m.type == "volume" and not m.source:
                m.source = _anon_volume()
            mounts.append(m)
        for target in (icfg.get("Volumes") or {}):
            if target not in seen:
                mounts.append(MountSpec(type="volume", target=target, source=_anon_volume()))
        return mounts

    # ------------------------------------------------------------ start / stop
    def start(self, ref: str, wait_attach: bool = False, tty_size: str | None = None) -> None:
        cid = self.store.resolve(ref)
        with self.store.lock(cid):
            st = self.store.load_state(cid)
            if st.get("status") in RUNNING and shim_alive(st):
                if st.get("status") == "paused":
                    raise Conflict(f"container {ref} is paused", hint="unpause it")
                if wait_attach:
                    raise Conflict(f"container {ref} is already running")
                return
            if shim_alive(st):  # the previous supervision is still cleaning up
                wait_shim_exit(st, 10)
            rec = self.store.load(cid)
            spec = spec_from_dict(rec["spec"])
            fresh = {**st, **FRESH_START, "status": st.get("status", "created")}
            if fresh != st:  # (a container just created has these already: no second write)
                st = fresh
                self.store.save_state(cid, st)
            from runtime.containers.supervision import SupervisorStart

            shim = SupervisorStart(self.store, cid, wait_attach)  # a supervisor to start boots meanwhile
            try:
                rec = launch.prepare(self.store, rec, spec, tty_size)
                self.store.save(cid, rec)
            except BaseException as e:
                shim.cancel()
                self._teardown(rec, spec)
                if isinstance(e, WharfError):
                    e.exit_code = 125 if e.exit_code == 1 else e.exit_code
                    st.update(error=str(e))
                    self.store.save_state(cid, st)
                raise
        try:
            shim.go()
        except WharfError:
            self._teardown(rec, spec)
            raise

    def _teardown(self, rec: dict[str, Any], spec: ContainerSpec) -> None:
        launch.umount_rootfs(self.store, rec["id"])
        try:
            netsetup.teardown(rec["id"], spec)
        except WharfError:
            pass
        if any(m["type"] == "volume" for m in rec.get("mounts", [])):  # (after the network, as docker)
            from runtime.volumes.store import unmount_events

            unmount_events(rec["id"])

    def _request_stop(self, cid: str, removing: bool = False) -> dict[str, Any]:
        """removing=True: the caller destroys the container next (network included), so the supervisor
        skips its own cleanup (it would release the network a second time)."""
        changes: dict[str, Any] = {"stop_requested": True}
        if removing:
            changes["removing"] = True
        st = self.store.update_state(cid, **changes)
        if st.get("status") == "restarting" and st.get("shim_pid") and shim_alive(st):  # wake its back-off
            try:
                os.kill(st["shim_pid"], signals.SIGUSR1)
            except ProcessLookupError:
                pass
        return st

    def stop(self, ref: str, timeout: int | None = None) -> None:
        cid = self.store.resolve(ref)
        rec = self.store.load(cid)
        st = self.store.load_state(cid)
        if st.get("status") not in RUNNING or not shim_alive(st):
            return
        st = self._request_stop(cid)
        spec = spec_from_dict(rec["spec"])
        if timeout is None:
            timeout = spec.stop_timeout if spec.stop_timeout is not None else 10
        sig = signal_number(spec.stop_signal or rec.get("image_config", {}).get("StopSignal") or "SIGTERM")
        if st.get("pid"):
            self._signal(cid, st, sig)
            if st.get("status") == "paused":
                self.unpause(cid)
            if not wait_pid_exit(st["pid"], max(0, timeout)):
                self._signal(cid, st, signals.SIGKILL)
        if not wait_shim_exit(st, 30):
            raise RuntimeFailure(f"container {ref} did not stop within 30s after SIGKILL")
        emit("container", "stop", cid, {"name": rec["name"], "image": rec["image"]})

    def _signal(self, cid: str, st: dict[str, Any], sig: int) -> None:
        try:
            os.kill(st["pid"], sig)
        except ProcessLookupError:
            pass

    def restart(self, ref: str, timeout: int | None = None) -> None:
        self.stop(ref, timeout)
        self.start(ref)
        cid = self.store.resolve(ref)
        rec = self.store.load(cid)
        emit("container", "restart", cid, {"name": rec["name"], "image": rec["image"]})

    def kill(self, ref: str, signal: str = "SIGKILL") -> None:
        cid = self.store.resolve(ref)
        sig = signal_number(signal)
        st = self.store.load_state(cid)
        if st.get("status") not in RUNNING or not st.get("pid") or not shim_alive(st):
            raise Conflict(f"cannot kill container {ref}: container is not running",
                           hint="start it first (`wharf start`)")
        if sig in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT, signals.SIGQUIT):
            st = self._request_stop(cid)
        self._signal(cid, st, sig)
        if st.get("status") == "paused" and sig == signals.SIGKILL:
            self.unpause(cid)
        rec = self.store.load(cid)
        emit("container", "kill", cid, {"name": rec["name"], "image": rec["image"], "signal": str(sig)})

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        cid = self.store.resolve(ref)
        rec = self.store.load(cid)
        st = self.store.load_state(cid)
        if st.get("status") in RUNNING and shim_alive(st):
            if not force:
                raise Conflict(f"you cannot remove a {st['status']} container {cid[:12]}",
                               hint="stop the container before removing it, or use `rm -f`")
            self._request_stop(cid, removing=True)
            if st.get("pid"):
                self._signal(cid, st, signals.SIGKILL)
                if st.get("status") == "paused":
                    self.unpause(cid)
            wait_shim_exit(st, 30)
        elif shim_alive(st):  # cleanup after exit still running (e.g. --rm)
            wait_shim_exit(st, 30)
            if not self.store.dir(cid).exists():
                return
        self.destroy(cid, rec, volumes)

    def destroy(self, cid: str, rec: dict[str, Any], volumes: bool = False) -> None:
        """Remove everything of a stopped container (idempotent; used by rm and by --rm cleanup)."""
        with self.store.lock(cid):
            if not self.store.dir(cid).exists():
                return
            rec = self.store.load(cid)  # as it is now: a rename may have run since the caller read it
            spec = spec_from_dict(rec["spec"])
            self._teardown(rec, spec)
            self._runtime_delete(rec)
            imagesrc.release(rec, self.store.dir(cid))
            self.store.delete(cid, rec["name"])
        if volumes:
            from runtime.volumes.store import ANON_LABEL, VolumeStore

            vs = VolumeStore()
            for m in rec.get("mounts", []):
                if m["type"] == "volume":
                    try:
                        if ANON_LABEL in vs.inspect(m["source"]).labels:
                            vs.remove(m["source"])
                    except WharfError:
                        pass
        emit("container", "destroy", cid, {"name": rec["name"], "image": rec["image"]})

    def _runtime_delete(self, rec: dict[str, Any]) -> None:
        state_dir = os.path.join(launch.runtime_root(rec["runtime"]), rec["id"])
        if os.path.exists(state_dir):
            import subprocess

            try:
                argv = launch.runtime_argv(rec["runtime"])
            except WharfError:
                return
            subprocess.run([*argv, "--root", launch.runtime_root(rec["runtime"]), "delete", "--force",
                            rec["id"]], capture_output=True)

    def cleanup_after_exit(self, cid: str) -> None:
        """Run by the supervisor (in a forked child) when the container is finally done."""
        try:
            rec = self.store.load(cid)
        except NotFound:
            return
        spec = spec_from_dict(rec["spec"])
        if spec.auto_remove:
            self.destroy(cid, rec, volumes=True)
        else:
            self._teardown(rec, spec)

    # ------------------------------------------------------------ wait
    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None) -> int:
        cid = self.store.resolve(ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        if condition == "removed":
            while self.store.dir(cid).exists():
                if deadline is not None and time.monotonic() > deadline:
                    raise RuntimeFailure(f"timed out waiting for container {ref} to be removed")
                time.sleep(0.02)
            return 0
        st = self.store.load_state(cid)
        if condition != "next-exit" and (st.get("status") not in RUNNING or not shim_alive(st)):
            return self._info(self.store.load(cid), st).state.exit_code
        try:
            sock = launch.shim_sock_connect(self.store, cid, {"op": "wait"})
        except OSError:
            return self.inspect(cid).state.exit_code
        with sock:
            sock.settimeout(None if deadline is None else max(0.01, deadline - time.monotonic()))
            try:
                while True:
                    kind, payload = stream.recv_frame(sock)
                    if kind == stream.EXIT:
                        return int(payload)
            except TimeoutError:
                raise RuntimeFailure(f"timed out waiting for container {ref}") from None
            except (EOFError, OSError):
                return self.inspect(cid).state.exit_code

    # ------------------------------------------------------------ logs
    def logs(self, ref: str, follow: bool = False, stdout: bool = True, stderr: bool = True,
             since: float | None = None, until: float | None = None, tail: int | None = None,
             timestamps: bool = False) -> Iterator[tuple[str, bytes]]:
        for stream_name, line, t in self.log_entries(ref, follow, since, until, tail):
            if (stream_name == "stdout" and stdout) or (stream_name == "stderr" and stderr):
                yield stream_name, (t.encode() + b" " + line) if timestamps else line

    def log_entries(self, ref: str, follow: bool = False, since: float | None = None,
                    until: float | None = None, tail: int | None = None):
        from runtime.containers import logs

        cid = self.store.resolve(ref)
        path = str(self.store.log_path(cid))
        if not follow:
            return iter(logs.read_log(path, since, until, tail))

        def running() -> bool:
            st = self.store.load_state(cid)
            return st.get("status") in RUNNING and shim_alive(st)

        return logs.follow_log(path, running, since, until, tail)

    def restore(self) -> list[str]:
        """After a reboot or a lost shim: start again what Docker would (restart always, or
        unless-stopped and not stopped by the user). For `wharf serve` at start-up. Returns the ids."""
        started = []
        for info in self.list(all=True):
            st = self.store.load_state(info.id)
            pol = info.spec.restart.name
            if info.state.running or st.get("stop_requested") or pol not in ("always", "unless-stopped"):
                continue
            try:
                self.start(info.id)
                started.append(info.id)
            except WharfError:
                continue
        return started

    def prune(self, filters: Filters | None = None) -> list[str]:
        gone = []
        for info in self.list(all=True, filters=filters):
            if info.state.status in ("exited", "created", "dead"):
                try:
                    self.remove(info.id)
                    gone.append(info.id)
                except WharfError:
                    pass
        return gone


def _anon_volume() -> str:
    from runtime.volumes.store import VolumeStore

    return VolumeStore().create(anonymous=True).name


def _validate(spec: ContainerSpec) -> None:
    if spec.restart.name not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy {spec.restart.name!r}")
    if spec.auto_remove and spec.restart.name != "no":
        raise InvalidArgument("conflicting options: --restart and --rm", hint="use one of them")
    if spec.resources.memory is not None and 0 < spec.resources.memory < 6 * 1024 * 1024:
        raise InvalidArgument("minimum memory limit allowed is 6MB", hint="use -m 6m or more")
    if spec.stop_signal:
        signal_number(spec.stop_signal)
    for m in spec.mounts:
        if m.type not in ("bind", "volume", "tmpfs"):
            raise InvalidArgument(f"invalid mount type {m.type!r}")
    if not spec.image and not spec.rootfs:
        raise InvalidArgument("an image is required")
