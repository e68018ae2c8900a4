"""`create`: from a bundle to a container whose init waits on exec.fifo.

Processes: the runtime (parent) makes the state dir, exec.fifo and the cgroup, then forks the
intermediate, which joins the cgroup, joins namespaces given by path, unshares the user
namespace (the parent writes its id maps), unshares the rest and forks the init (pid 1 of a
new pid namespace). The intermediate exits, so the init is re-parented to the caller's
subreaper, as with runc. The init sets the container up and says "ready"; only then does the
parent record the state and return. Any failure removes the cgroup and the state dir.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` imports enum, a cost on the hot path
import os

from runtime.errors import Conflict, InvalidArgument, RuntimeFailure, WharfError
from runtime.linux import ns, prctl
from runtime.oci import init
from runtime.oci import state as st
from runtime.oci.channel import Channel
from runtime.oci.spec import load_spec


class Forks:
    """How create() forks its helper processes and waits for them. This default is for a process
    that owns its children (the `wharf-runtime` command); a caller that reaps every child itself
    (the supervisor, with waitpid(-1)) passes its own, so that no exit status is taken from it."""

    def fork(self, child) -> int:  # noqa: ANN001 - child(): runs in the new process, never returns
        pid = os.fork()
        if pid == 0:
            child()
        return pid

    def wait(self, pid: int) -> None:
        os.waitpid(pid, 0)

    def primer(self) -> int:
        """A child that primes the next cgroup migration (prime_migration); its pid, or 0 for none."""
        from runtime.linux.cgroups import prime_migration

        return self.fork(prime_migration)


def create(root: str, cid: str, bundle: str, pid_file: str | None = None,
           console_socket: str | None = None, preserve_fds: int = 0,
           stdio: tuple[int, int, int] | None = None, forks: Forks | None = None) -> dict:
    """Create container `cid`; returns its saved state (pid = the init's pid).

    The init gets stdio 0-2 of the caller, or `stdio` (fds made 0-2 in the container), and fds
    3..3+preserve_fds-1, nothing else. create() changes nothing process-wide (cwd, signals, fds
    0-2): a thread of a long-lived process (the supervisor) may call it, with its own `forks`.
    """
    root = os.path.abspath(root)
    d = st.container_dir(root, cid)
    bundle = os.path.abspath(bundle)
    pid_file = os.path.abspath(pid_file) if pid_file else None
    console_socket = os.path.abspath(console_socket) if console_socket else None
    spec = load_spec(os.path.join(bundle, "config.json"))
    rootfs = os.path.join(bundle, spec["root"]["path"])
    if not os.path.isdir(rootfs):
        raise InvalidArgument(f"root.path: rootfs {rootfs} does not exist or is not a directory",
                              where=os.path.join(bundle, "config.json"))
    lx = spec.get("linux") or {}
    nss = lx.get("namespaces") or []
    host_mounts = not any(n["type"] == "mount" for n in nss)
    terminal = bool(spec["process"].get("terminal"))
    if terminal and not console_socket:
        raise InvalidArgument("process.terminal is true: --console-socket is required")
    if console_socket and not terminal:
        raise InvalidArgument("--console-socket given but process.terminal is false")
    os.makedirs(root, 0o700, exist_ok=True)
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        raise Conflict(f"container {cid!r} already exists", where=root,
                       hint=f"pick another id or `delete {cid}` first") from None
    forks = forks or Forks()
    from runtime.linux.cgroups import open_cgroup

    primer = 0
    cg = None
    init_pid = 0
    try:
        fifo_fd = _make_exec_fifo(d, lx)
        cg_path = lx.get("cgroupsPath") or f"/wharf/{cid}"
        cg = open_cgroup(cg_path)
        try:
            cg.create()
            cg.apply(_with_default_devices(lx.get("resources") or {}))
        except (OSError, ValueError) as e:
            raise RuntimeFailure(f"linux.resources: {e}") from None
        # after the mkdirs: the primer holds cgroup_mutex while it waits for the grace period
        primer = forks.primer()
        console_fd = None
        if terminal:
            from runtime.oci import console

            console_fd = console.connect(console_socket)  # type: ignore[arg-type]
        record = _record(spec, cid, bundle, rootfs, host_mounts, cg_path)
        # everything the container's processes run is imported now: inside a user namespace they
        # may not be allowed to read the Python installation any more
        program = init.preload(spec, os.path.join(root, ".seccomp"))
        ch = Channel()
        pid = forks.fork(lambda: _intermediate(ch.as_child(), spec, bundle, rootfs, fifo_fd, console_fd, cg, record,
                                               preserve_fds, stdio, program))
        ch.as_parent()
        if console_fd is not None:
            os.close(console_fd)
        os.close(fifo_fd)
        init_pid = _drive(ch, pid, spec, record, cg, forks)
        ch.close()
        info = st.proc_start_time(init_pid)
        record["pid"] = init_pid
        record["pid_start"] = info[1] if info else ""
        st.save(d, record)
        if pid_file:
            _write_pid_file(pid_file, init_pid)
        return record
    except BaseException as e:
        if init_pid:
            try:
                os.kill(init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _cleanup(d, cg, rootfs if host_mounts else None)
        if isinstance(e, WharfError) or not isinstance(e, OSError):
            raise
        raise RuntimeFailure(str(e.strerror or e)) from None
    finally:
        if primer:
            forks.wait(primer)


def _make_exec_fifo(d: str, lx: dict) -> int:
    """<state dir>/exec.fifo, as an O_PATH fd the init reopens for writing to wait for `start`."""
    fifo = os.path.join(d, "exec.fifo")
    os.mkfifo(fifo, 0o622)
    os.chmod(fifo, 0o622)  # not the umask's
    root_ids = [_host_id(lx.get(k) or [], 0) for k in ("uidMappings", "gidMappings")]
    if root_ids != [0, 0]:
        os.chown(fifo, *root_ids)  # the init reopens it as the container's root
    return os.open(fifo, os.O_PATH | os.O_CLOEXEC)


def _record(spec: dict, cid: str, bundle: str, rootfs: str, host_mounts: bool, cg_path: str) -> dict:
    """What state.json keeps for the later commands (pid and pid_start are added once known)."""
    import time

    now = time.time_ns()
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 10**9)) + f".{now % 10**9:09d}Z"
    return {"ociVersion": spec["ociVersion"], "id": cid, "pid": 0, "bundle": bundle, "created": created,
            "rootfs": rootfs, "host_mounts": host_mounts, "cgroup": cg_path,
            "annotations": spec.get("annotations") or {},
            "hooks": {k: v for k, v in (spec.get("hooks") or {}).items() if k in ("poststart", "poststop")}}


def _drive(ch: Channel, child: int, spec: dict, record: dict, cg, forks: Forks) -> int:  # noqa: ANN001
    """The parent's side of the protocol; returns the init's pid once it is ready."""
    init_pid = 0
    lx = spec.get("linux") or {}
    try:
        while True:
            kind, arg = ch.recv()
            if kind == "userns":
                _write_id_maps(child, lx)
                ch.send("ok")
            elif kind == "pid":
                init_pid = int(arg)
                # the init sets its rootfs up meanwhile; it waits for "joined" before it goes on
                # (moving a task between cgroups waits for an RCU grace period: milliseconds)
                try:
                    cg.add(init_pid)
                except OSError as e:
                    raise RuntimeFailure(f"linux.cgroupsPath {record['cgroup']}: {e.strerror}") from None
                ch.send("joined")
                forks.wait(child)
                child = 0
            elif kind == "hooks":
                from runtime.oci import fastjson, hooks

                state = st.oci_state({**record, "pid": init_pid}, "creating")
                hk = spec.get("hooks") or {}
                # (runtime-tools checks that prestart, the legacy hook, sees "created")
                cwd = record["bundle"]  # as runc, whose create runs in the bundle directory
                hooks.run("prestart", hk.get("prestart") or [], {**state, "status": "created"}, cwd)
                hooks.run("createRuntime", hk.get("createRuntime") or [], state, cwd)
                ch.send("ok", fastjson.dumps(state))
            elif kind == "ready":
                return init_pid
            elif kind == "error":
                raise RuntimeFailure(arg)
            else:
                raise RuntimeFailure("container init exited during setup")
    except BaseException:
        if init_pid:
            try:
                os.kill(init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise
    finally:
        if child:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
            forks.wait(child)


# as runc: whatever the spec's device rules say, the nodes every container gets stay usable
_ALWAYS_ALLOWED = (
    ("c", None, None, "m"), ("b", None, None, "m"), ("c", 1, 3, "rwm"), ("c", 1, 8, "rwm"), ("c", 1, 7, "rwm"),
    ("c", 5, 0, "rwm"), ("c", 1, 5, "rwm"), ("c", 1, 9, "rwm"), ("c", 5, 1, "rwm"), ("c", 136, None, "rwm"),
    ("c", 5, 2, "rwm"))


def _with_default_devices(resources: dict) -> dict:
    """The spec's device rules, then the nodes every container may use. As runc, linux.devices
    (nodes to create) grant nothing by themselves: `--device /dev/x:/dev/y:r` stays read-only."""
    rules = list(resources.get("devices") or [])
    if not rules:
        return resources
    rules += [{"allow": True, "type": t, "major": a, "minor": b, "access": acc} for t, a, b, acc in _ALWAYS_ALLOWED]
    return {**resources, "devices": rules}


def _host_id(mappings: list[dict], cid: int) -> int:
    for m in mappings:
        if m["containerID"] <= cid < m["containerID"] + m["size"]:
            return m["hostID"] + cid - m["containerID"]
    return cid


def _write_id_maps(pid: int, lx: dict) -> None:
    for key, name in (("uidMappings", "uid_map"), ("gidMappings", "gid_map")):
        text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in lx.get(key) or ())
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise RuntimeFailure(f"linux.{key}: writing {name}: {e.strerror}") from None


def _close_fds_except(keep: set[int]) -> None:
    low = 3
    for fd in sorted(k for k in keep if k >= 3):
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 20)


def _intermediate(ch: Channel, spec: dict, bundle: str, rootfs: str, fifo_fd: int,  # noqa: PLR0913
                  console_fd: int | None, cg, record: dict, preserve_fds: int,  # noqa: ANN001
                  stdio: tuple[int, int, int] | None, program) -> None:  # noqa: ANN001 - a seccomp.Program
    try:
        init.SECCOMP[0] = program  # this process's own copy: the init inherits it
        if stdio is not None:
            for i, fd in enumerate(stdio):
                os.dup2(fd, i)  # (dup2 makes 0-2 inheritable)
        os.chdir(bundle)  # as runc: relative paths of the spec (mount sources...) resolve against the bundle
        # nothing the caller leaked to us (a supervisor's pipes...) may live on in the container
        prctl.set_name("wharf:[1:CHILD]")  # as runc's runc:[1:CHILD]
        _close_fds_except({ch.rfd, ch.wfd, fifo_fd} | ({console_fd} if console_fd is not None else set())
                          | set(range(3, 3 + preserve_fds)))
        lx = spec.get("linux") or {}
        nss = lx.get("namespaces") or []
        joined = [n for n in nss if n.get("path")]
        # user first (it grants the rights for the rest), mount last (paths resolve in the host's)
        joined.sort(key=lambda n: {"user": 0, "mount": 2}.get(n["type"], 1))
        for n in joined:
            try:
                ns.setns(n["path"], ns.FLAGS[n["type"]])
            except OSError as e:
                raise OSError(e.errno, f"linux.namespaces {n['type']} path {n['path']}: {e.strerror}") from None
        flags = 0
        for n in nss:
            if not n.get("path"):
                flags |= ns.FLAGS[n["type"]]
        in_userns = any(n["type"] == "user" for n in nss)
        if flags & ns.CLONE_NEWUSER:
            ns.unshare(ns.CLONE_NEWUSER)
            ch.send("userns")
            ch.expect("ok")
        if in_userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        # the cgroup namespace comes later: the init unshares it once it is in its cgroup
        if flags & ~(ns.CLONE_NEWUSER | ns.CLONE_NEWCGROUP):
            ns.unshare(flags & ~(ns.CLONE_NEWUSER | ns.CLONE_NEWCGROUP))
        if flags & ns.CLONE_NEWNET:
            ns.loopback_up()  # a netns of our own has lo up, as runc's and crun's (one joined by path is the engine's)
        pid = os.fork()
        if pid == 0:
            dirs = dict(getattr(cg, "dirs", None) or {"unified": cg.dir})
            init.main(ch, spec, rootfs, fifo_fd, console_fd, in_userns, dirs,
                      {k: record[k] for k in ("ociVersion", "id", "bundle", "annotations")},
                      bool(flags & ns.CLONE_NEWCGROUP))
        ch.send("pid", str(pid))
    except BaseException as e:  # noqa: BLE001 - never return into the runtime's code
        try:
            ch.send("error", init.message(e))
        finally:
            os._exit(1)
    os._exit(0)


def _write_pid_file(path: str, pid: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(str(pid))
    os.rename(tmp, path)


def _cleanup(d: str, cg, rootfs: str | None) -> None:  # noqa: ANN001
    if rootfs:
        from runtime.linux.mount import umount_all_under

        umount_all_under(rootfs)
    if cg is not None:
        try:
            cg.destroy()
        except OSError:
            pass
    st.remove_dir(d)
