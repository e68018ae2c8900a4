"""Run a process inside a running container: join its cgroup and namespaces, then exec.

Used by `exec` (CLI/engine) and by the supervisor's health checks, independent of the OCI
runtime (the built-in one, runc and crun all leave the same /proc/<pid>/ns/* behind).
Fork layout: caller -> helper (joins cgroup + namespaces, stays outside the new pid
namespace, forwards signals, exits with the child's status) -> child (in the pid ns,
drops to the user, chdir, execs). Heavy imports happen after fork, never in the caller.

As `runc exec`, the command gets the container's process settings from its bundle's
config.json: process.rlimits, oomScoreAdj, noNewPrivileges, capabilities (all five sets) and
linux.seccomp (compiled once, cached next to the built-in runtime's filters). A privileged exec
(`docker exec --privileged`) gets every capability; the container's seccomp filter still applies.
"""

from __future__ import annotations

import os

NAMESPACES = ("cgroup", "ipc", "uts", "net", "pid", "mnt")  # mnt last: /proc paths change after it


def spawn(target_pid: int, argv: list[str], env: list[str], cgroup: str, *, uid: int = 0, gid: int = 0,
          groups: list[int] | None = None, cwd: str = "/", stdio: tuple[int, int, int] = (0, 1, 2),
          tty: bool = False, term_kills: bool = False, config: dict | None = None,
          privileged: bool = False, only_stdio: bool = False) -> int:
    """Fork the helper and return its pid; waitpid() on it gives the command's exit status.

    Exit status 126/127 mean "cannot execute"/"not found" (the message goes to stdio[2]).
    With term_kills, SIGTERM to the helper SIGKILLs the command (health-check timeouts).
    `config`: the container's OCI config (its process settings and seccomp filter are applied);
    None reads it from the bundle of the container whose cgroup is `cgroup` (/wharf/<id>).
    only_stdio: the helper closes every other fd of the caller (the supervisor's locks, pipes...).
    """
    pid = os.fork()
    if pid:
        return pid
    code = 126
    try:
        import _signal

        _signal.set_wakeup_fd(-1)  # a caller's wakeup fd (the supervisor's) is not the helper's
        if only_stdio:
            close_all_but(stdio)
        sec = Security(config if config is not None else container_config(cgroup), privileged)
        code = _helper(target_pid, argv, env, cgroup, uid, gid, groups or [], cwd, stdio, tty, term_kills, sec)
    except BaseException as e:  # noqa: BLE001 - a forked child must never return into the caller
        try:
            os.write(stdio[2], f"exec failed: {e}\n".encode())
        except OSError:
            pass
    os._exit(code)


def close_all_but(keep: tuple[int, ...]) -> None:
    """In a forked child: close every fd above 2 but those in `keep`."""
    low = 3
    for fd in sorted(set(keep)):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def spawn_pty(target_pid: int, argv: list[str], env: list[str], cgroup: str, *, uid: int = 0, gid: int = 0,
              groups: list[int] | None = None, cwd: str = "/", size: tuple[int, int] | None = None,
              config: dict | None = None, privileged: bool = False) -> tuple[int, int]:
    """Like spawn, on a new pty of the container's own devpts (as `docker exec -t`): (pid, master fd)."""
    import socket

    from runtime.errors import RuntimeFailure

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        parent.close()
        code = 126
        try:
            sec = Security(config if config is not None else container_config(cgroup), privileged)
            code = _helper(target_pid, argv, env, cgroup, uid, gid, groups or [], cwd, (0, 1, 2), True, False,
                           sec, pty=(child, size))
        except BaseException as e:  # noqa: BLE001 - a forked child must never return into the caller
            os.write(2, f"exec failed: {e}\n".encode())
        os._exit(code)
    child.close()
    try:
        _, fds, _, _ = socket.recv_fds(parent, 1024, 1)
    finally:
        parent.close()
    if not fds:
        _, status = os.waitpid(pid, 0)
        raise RuntimeFailure("exec: could not open a pty in the container", exit_code=126)
    return pid, fds[0]


def _open_pty(pty: tuple, stdio: tuple[int, int, int]) -> tuple[int, int, int]:
    """In the container's mount namespace: a pty of its devpts; the master goes back to the caller."""
    import fcntl
    import socket
    import struct

    from runtime.oci.console import TIOCGPTN, TIOCSPTLCK, TIOCSWINSZ

    sock, size = pty
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave = os.open(f"/dev/pts/{n}", os.O_RDWR | os.O_NOCTTY)
    if size:
        fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    socket.send_fds(sock, [b"pty"], [master])
    sock.close()
    os.close(master)
    return (slave, slave, slave)


def preload() -> None:
    """Import (and dlopen) now what the helper needs after fork. For long-running multi-threaded
    callers (the daemon, the supervisor): a fork while another thread imports a module or loads a
    library can leave that lock held forever in the child."""
    import fcntl  # noqa: F401
    import termios  # noqa: F401

    import runtime.errors  # noqa: F401
    import runtime.linux.cgroups  # noqa: F401
    import runtime.linux.ns  # noqa: F401
    import runtime.linux.rlimits  # noqa: F401
    import runtime.linux.sigs  # noqa: F401
    import runtime.oci.console  # noqa: F401
    import runtime.oci.fastjson  # noqa: F401
    import runtime.oci.init  # noqa: F401
    import runtime.paths  # noqa: F401
    from runtime.linux import caps, seccomp

    caps.last_cap()
    try:
        seccomp.library()
    except OSError:
        pass  # no libseccomp: only unconfined containers can run, and their exec needs none


def container_config(cgroup: str) -> dict:
    """The OCI config.json of the container whose cgroup is /wharf/<id> (in this WHARF_ROOT)."""
    from runtime import paths
    from runtime.errors import NotFound
    from runtime.oci import fastjson

    cid = cgroup.rstrip("/").rsplit("/", 1)[-1]
    path = paths.root() / "containers" / cid / "bundle" / "config.json"
    try:
        cfg = fastjson.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise NotFound(f"container {cid[:12]}: cannot read its config.json ({path}): {e}",
                       hint="exec needs the container's bundle (recreate the container)") from None
    if not isinstance(cfg, dict):
        raise NotFound(f"container {cid[:12]}: {path} is not an OCI config object")
    return cfg


class Security:
    """The container's process settings an exec'd command gets (as runc exec): read and compiled in
    the helper, before it joins the container's mount namespace; applied in the child."""

    __slots__ = ("caps", "nnp", "oom", "program", "rlimits", "seccomp")

    def __init__(self, config: dict, privileged: bool) -> None:
        from runtime.linux import caps

        proc = config.get("process") or {}
        self.rlimits = proc.get("rlimits") or []
        self.oom = proc.get("oomScoreAdj")
        self.nnp = bool(proc.get("noNewPrivileges"))
        if privileged:
            every = list(caps.NAMES[:caps.last_cap() + 1])
            self.caps = {"bounding": every, "effective": every, "permitted": every}
        else:
            self.caps = proc.get("capabilities") or {}
        caps.last_cap()  # read the host's /proc before the container's replaces it
        self.seccomp = (config.get("linux") or {}).get("seccomp")
        self.program = None
        if self.seccomp:
            from runtime import paths
            from runtime.linux import seccomp

            seccomp.library()
            self.program = seccomp.cached_program(self.seccomp,
                                                  str(paths.run_dir() / "runtime" / "builtin" / ".seccomp"))
        import runtime.linux.rlimits  # noqa: F401
        import runtime.oci.init  # noqa: F401

    def apply(self, uid: int, gid: int, groups: list[int]) -> None:
        """In the child, as root in the container: rlimits, oom score, no_new_privs, user and
        capabilities; the seccomp filter before the capabilities drop unless no_new_privs is set."""
        from runtime.linux import prctl, rlimits
        from runtime.oci.init import switch_user

        for r in self.rlimits:
            rlimits.setrlimit(r["type"], r["soft"], r["hard"])
        if self.oom is not None:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write(str(self.oom))
        if self.nnp:
            prctl.set_no_new_privs()
        else:
            self._load_seccomp()  # without no_new_privs, loading needs CAP_SYS_ADMIN: before the drop
        switch_user({"uid": uid, "gid": gid, "additionalGids": groups}, self.caps)

    def last(self) -> None:
        """Right before execve: the filter, when no_new_privs allowed to defer it."""
        if self.nnp:
            self._load_seccomp()

    def _load_seccomp(self) -> None:
        if not self.seccomp:
            return
        from runtime.linux import seccomp  # imported by __init__, before the mount namespace changed

        if self.program is not None:
            seccomp.install(self.program)
        else:
            seccomp.load(self.seccomp)


def _helper(target_pid: int, argv: list[str], env: list[str], cgroup: str, uid: int, gid: int,
            groups: list[int], cwd: str, stdio: tuple[int, int, int], tty: bool, term_kills: bool,
            sec: Security, pty: tuple | None = None) -> int:
    import fcntl  # noqa: F401 - everything needed later is imported before the mount namespace changes
    import signal
    import socket  # noqa: F401
    import struct  # noqa: F401
    import termios  # noqa: F401
    import warnings  # noqa: F401 - os.execvpe -> get_exec_path imports it; -S shims lack it

    import runtime.oci.console  # noqa: F401
    from runtime.linux import ns
    from runtime.linux.cgroups import open_cgroup

    open_cgroup(cgroup).add(os.getpid())
    fds = []
    for name in NAMESPACES:
        path = f"/proc/{target_pid}/ns/{name}"
        if os.readlink(path) != os.readlink(f"/proc/self/ns/{name}"):
            fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    for fd in fds:
        ns.setns(fd, 0)
        os.close(fd)
    if pty is not None:
        stdio = _open_pty(pty, stdio)
    r, w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(r)
        _child(argv, env, uid, gid, groups, cwd, stdio, tty, w, sec)
    os.close(w)
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                 signal.SIGUSR2, signal.SIGWINCH)
    for sig in forwarded:
        signal.signal(sig, lambda s, _f: os.kill(child, signal.SIGKILL if term_kills and s == signal.SIGTERM
                                                    else s))
    err = os.read(r, 4096)
    os.close(r)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            return 126
    if err:
        msg = err.decode(errors="replace")
        os.write(stdio[2], (strip_code(msg) + "\n").encode())
        return 127 if msg.startswith("127") else 126
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _child(argv: list[str], env: list[str], uid: int, gid: int, groups: list[int], cwd: str,
           stdio: tuple[int, int, int], tty: bool, errw: int, sec: Security) -> None:
    try:
        if tty:
            import fcntl
            import termios

            os.setsid()
            fcntl.ioctl(stdio[0], termios.TIOCSCTTY, 0)
        for i, fd in enumerate(stdio):
            if fd != i:
                os.dup2(fd, i)
        os.chdir(cwd or "/")
        sec.apply(uid, gid, groups)
        envd = dict(e.split("=", 1) for e in env if "=" in e)
        from runtime.linux import sigs  # (imported: preload)

        sigs.defaults_for_exec()  # as the container's init: no ignored SIGPIPE & co. from Python
        sec.last()
        os.execvpe(argv[0], argv, envd)
    except FileNotFoundError as e:
        msg = f"127 {argv[0]}: executable file not found in $PATH" if e.filename in (None, argv[0]) \
            else f"127 {e}"
        if e.filename == (cwd or "/"):
            msg = f"126 chdir to cwd ({cwd!r}) set in config.json failed: no such file or directory"
        os.write(errw, msg.encode())
    except PermissionError as e:
        os.write(errw, f"126 {argv[0]}: permission denied: {e}".encode())
    except BaseException as e:  # noqa: BLE001
        os.write(errw, f"126 {e}".encode())
    os._exit(127)


def strip_code(msg: str) -> str:
    return msg[4:] if msg[:3] in ("126", "127") else msg
