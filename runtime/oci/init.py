"""The container's init: runs in the new namespaces, sets the container up, waits on exec.fifo
for `start`, then execs the user's process. Errors before "ready" go back to `create`."""

from __future__ import annotations

import os

from runtime.linux import caps, prctl, rlimits, sigs
from runtime.oci.channel import Channel
from runtime.oci.rootfs import Rootfs

STAGE = ["starting"]  # what setup() is doing: failures without a field name get it as context
SECCOMP: list = [None]  # in the init: linux.seccomp as preload compiled it (a seccomp.Program), or None: libseccomp loads it


class SetupError(Exception):
    """A failure that names the spec field (sent to `create` as one line)."""


def main(ch: Channel, spec: dict, rootfs: str, fifo_fd: int, console_fd: int | None, in_userns: bool,
         cgroup_dirs: dict[str, str], base_state: dict, cgroupns: bool) -> None:
    """Never returns: execs the process or exits."""
    try:
        prctl.set_name("wharf:[2:INIT]")  # until it execs the container's process
        path, env = setup(ch, spec, rootfs, console_fd, in_userns, cgroup_dirs, cgroupns)
    except BaseException as e:  # noqa: BLE001 - a forked child must never return into the runtime
        try:
            msg = message(e)
            ch.send("error", msg if isinstance(e, SetupError) or ":" in msg else f"{STAGE[0]}: {msg}")
        finally:
            os._exit(1)
    proc = spec["process"]
    try:
        ch.send("ready")
        ch.close()
        sc = (spec.get("linux") or {}).get("seccomp")
        # wait for `start`: opening the fifo for writing blocks until a reader opens it
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fifo_fd)
        # `fd` stays open until execve closes it: `start` waits for that EOF, so it returns (and
        # runs poststart) only once the process runs
        hooks = (spec.get("hooks") or {}).get("startContainer")
        if hooks:
            from runtime.oci import hooks as h

            h.run("startContainer", hooks, {**base_state, "status": "running", "pid": os.getpid()})
        sigs.defaults_for_exec()  # not the ignored SIGPIPE & co. of the Python processes it descends from
        if sc and proc.get("noNewPrivileges"):
            _load_seccomp(sc)
        os.execve(path, proc["args"], env)
    except BaseException as e:  # noqa: BLE001
        try:
            os.write(2, f"wharf-runtime: {message(e)}\n".encode())
        finally:
            os._exit(127 if isinstance(e, FileNotFoundError) else 126)


def message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror if not e.filename or e.filename in e.strerror else f"{e.strerror}: {e.filename}"
    return str(e) or type(e).__name__


def setup(ch: Channel, spec: dict, rootfs: str, console_fd: int | None, in_userns: bool,
          cgroup_dirs: dict[str, str], cgroupns: bool) -> tuple[str, dict[str, str]]:
    proc = spec["process"]
    lx = spec.get("linux") or {}
    os.setsid()
    rf = Rootfs(spec, rootfs, in_userns, cgroup_dirs)
    # the runtime moves us into our cgroup meanwhile; a cgroup2 mount must already see it
    v2_only = list(cgroup_dirs) == ["unified"]
    if v2_only:
        _join_cgroup(ch, cgroupns)
    STAGE[0] = "preparing the rootfs"
    rf.prepare()
    if not v2_only:
        _join_cgroup(ch, cgroupns)
    hooks = spec.get("hooks") or {}
    if hooks.get("prestart") or hooks.get("createRuntime") or hooks.get("createContainer"):
        STAGE[0] = "hooks"
        ch.send("hooks")
        state = ch.expect("ok")
        if hooks.get("createContainer"):
            from runtime.oci import fastjson
            from runtime.oci import hooks as h

            h.run("createContainer", hooks["createContainer"], fastjson.loads(state))  # type: ignore[arg-type]
    STAGE[0] = "pivot_root"
    rf.pivot()
    STAGE[0] = "masked/read-only paths and sysctls"
    rf.finish()
    STAGE[0] = "hostname"
    if spec.get("hostname") is not None or spec.get("domainname") is not None:
        from runtime.linux import uts

        if spec.get("hostname") is not None:
            uts.sethostname(spec["hostname"])
        if spec.get("domainname") is not None:
            uts.setdomainname(spec["domainname"])
    if console_fd is not None:
        from runtime.oci import console

        STAGE[0] = "console"
        console.setup(console_fd, proc.get("consoleSize"))
    for r in proc.get("rlimits") or ():
        try:
            rlimits.setrlimit(r["type"], r["soft"], r["hard"])
        except (OSError, ValueError) as e:
            raise SetupError(f"process.rlimits {r['type']}: {e}") from None
    STAGE[0] = "process.oomScoreAdj"
    if proc.get("oomScoreAdj") is not None:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(proc["oomScoreAdj"]))
    env = dict(e.split("=", 1) for e in proc.get("env") or () if "=" in e)
    if "HOME" not in env:  # as runc: the user's home from the container's /etc/passwd
        env["HOME"] = home_of((proc.get("user") or {}).get("uid", 0))
    path = lookup(proc["args"][0], env.get("PATH"))
    if proc.get("noNewPrivileges"):
        prctl.set_no_new_privs()
    sc = lx.get("seccomp")
    if sc and not proc.get("noNewPrivileges"):
        # without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the caps are dropped
        STAGE[0] = "linux.seccomp"
        _load_seccomp(sc)
    STAGE[0] = "process.user/capabilities"
    switch_user(proc.get("user") or {}, proc.get("capabilities") or {})
    try:
        os.chdir(proc["cwd"])
    except OSError as e:
        raise SetupError(f"process.cwd {proc['cwd']!r}: {e.strerror}") from None
    if "umask" in (proc.get("user") or {}):
        os.umask(proc["user"]["umask"])
    return path, env


def _join_cgroup(ch: Channel, cgroupns: bool) -> None:
    STAGE[0] = "joining the cgroup"
    ch.expect("joined")
    if cgroupns:
        from runtime.linux import ns

        ns.unshare(ns.CLONE_NEWCGROUP)


def _load_seccomp(sc: dict) -> None:
    from runtime.linux import seccomp

    if SECCOMP[0] is not None:
        seccomp.install(SECCOMP[0])
    else:
        seccomp.load(sc)


def preload(spec: dict, cache_dir: str | None = None):  # noqa: ANN201 - a seccomp.Program or None
    """Import now what runs after pivot_root: the runtime's files are not visible from there.

    The seccomp filter is compiled here, once, or read from `cache_dir` when the same profile was
    compiled before, and returned: the init (SECCOMP[0], set in the child: create() may run in
    several threads of one process at once) then only installs it."""
    caps.last_cap()  # read the host's /proc once, before the container's replaces it
    program = None
    if spec.get("hostname") is not None or spec.get("domainname") is not None:
        import runtime.linux.uts  # noqa: F401
    sc = (spec.get("linux") or {}).get("seccomp")
    if sc:
        from runtime.linux import seccomp

        seccomp.library()
        if cache_dir:
            try:
                program = seccomp.cached_program(sc, cache_dir)
            except (OSError, ValueError) as e:
                from runtime.errors import InvalidArgument

                raise InvalidArgument(f"linux.seccomp: {message(e)}") from None
    if spec["process"].get("terminal"):
        import socket  # noqa: F401

        import runtime.oci.console  # noqa: F401
    hooks = spec.get("hooks") or {}
    if hooks.get("startContainer") or hooks.get("createContainer"):
        import subprocess  # noqa: F401

        import runtime.oci.fastjson  # noqa: F401
        import runtime.oci.hooks  # noqa: F401
    return program


def home_of(uid: int) -> str:
    try:
        with open("/etc/passwd") as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def lookup(name: str, path_var: str | None) -> str:
    """process.args[0] -> the executable, searched in the process's PATH like execvp."""
    cands = [name] if "/" in name else [d.rstrip("/") + "/" + name for d in
                                        (path_var or "/usr/local/bin:/usr/bin:/bin").split(":") if d]
    for c in cands:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    if "/" in name and os.path.exists(name):
        raise SetupError(f"process.args[0] {name!r}: permission denied (not an executable file)")
    raise SetupError(f"process.args[0] {name!r}: executable file not found in $PATH")


def switch_user(user: dict, capabilities: dict) -> None:
    """Drop the bounding set, become uid/gid (keeping caps across the switch), then set the caps."""
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    # a capability the runtime itself does not hold cannot be granted: ask only for what exists
    have = caps.capget()[1]
    caps.drop_bounding(caps.mask(capabilities.get("bounding")))
    prctl.set_keepcaps(True)
    os.setgroups(user.get("additionalGids") or [])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    prctl.set_keepcaps(False)
    permitted = caps.mask(capabilities.get("permitted")) & have
    inheritable = caps.mask(capabilities.get("inheritable")) & have
    caps.capset(caps.mask(capabilities.get("effective")) & permitted, permitted, inheritable)
    amb = caps.mask(capabilities.get("ambient")) & permitted & inheritable
    if amb:
        caps.raise_ambient(amb)
