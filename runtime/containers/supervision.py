"""The engine's side of the supervisor (runtime/containers/supervisord.py): find or start the one
supervisor of this state root and ask it to start a container.

`SupervisorStart` is made before the bundle is prepared (so that a supervisor that has to be
started boots meanwhile) and `go()`es after: the supervisor answers "ok" once the container
runs (or is created and waits for its attach client), or "error:CODE:MSG".
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` imports enum & co. (the `run -d` path)
import os
import sys

from runtime import paths
from runtime.containers import stream
from runtime.errors import RuntimeFailure

SUPERVISE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervise.py")
READY_FD = 3


def sock_path() -> str:
    return os.path.join(paths.run_str(), "supervisor.sock")


def connect() -> socket.socket | None:
    """A connection to the running supervisor, or None when there is none."""
    p, dfd = stream.short_path(sock_path())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(p)
        return s
    except OSError:
        s.close()
        return None
    finally:
        if dfd is not None:
            os.close(dfd)


class _Spawn:
    """Start a supervisor (under WHARF_RUN/supervisor.lock, so that concurrent engines start one)."""

    def __init__(self) -> None:
        import fcntl

        run = paths.run_dir()
        run.mkdir(parents=True, exist_ok=True)
        self.lock_fd = os.open(run / "supervisor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
        self.pid = 0
        self.sock = connect()  # another engine started one meanwhile
        if self.sock is not None:
            os.close(self.lock_fd)
            return
        r, w = os.pipe()
        if w <= READY_FD:
            import fcntl as f

            w2 = f.fcntl(w, f.F_DUPFD_CLOEXEC, READY_FD + 1)
            os.close(w)
            w = w2
        env = dict(os.environ)
        env["WHARF_ROOT"], env["WHARF_RUN"] = str(paths.root()), str(run)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self.pid = os.posix_spawn(sys.executable, [sys.executable, "-I", SUPERVISE, str(run), str(READY_FD)],
                                      env, setsid=True,
                                      file_actions=[(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                                                    (os.POSIX_SPAWN_DUP2, null, 2),
                                                    (os.POSIX_SPAWN_DUP2, w, READY_FD)])
        except BaseException:
            os.close(r)
            os.close(self.lock_fd)
            raise
        finally:
            os.close(null)
            os.close(w)
        self.ready_r = r

    def wait(self) -> socket.socket:
        """The new supervisor's connection, once it listens."""
        if self.sock is not None:
            return self.sock
        try:
            os.waitpid(self.pid, 0)  # its first process exits once it has daemonized
            with os.fdopen(self.ready_r, "rb") as f:
                msg = f.read().decode(errors="replace")
        finally:
            os.close(self.lock_fd)
        sock = connect() if msg == "ok" else None
        if sock is None:
            raise RuntimeFailure(f"the container supervisor did not start: {msg.split(':', 2)[-1] or 'no answer'}",
                                 hint=f"see {paths.run_dir() / 'supervisor.log'}")
        return sock


def _open() -> socket.socket | _Spawn:
    return connect() or _Spawn()


def request(req: dict, conn: socket.socket | _Spawn | None = None) -> str | None:
    """Send one request and read the one answer (None: the connection ended without one)."""
    from runtime.containers.lean import dumps

    conn = conn or _open()
    sock = conn.wait() if isinstance(conn, _Spawn) else conn
    try:
        sock.sendall(stream.frame(stream.CONTROL, dumps(req).encode()))
        kind, payload = stream.recv_frame(sock)
    except (OSError, EOFError):
        return None
    finally:
        sock.close()
    return payload.decode(errors="replace") if kind == stream.CONTROL else None


class SupervisorStart:
    def __init__(self, store, cid: str, wait_attach: bool) -> None:
        self.store, self.cid, self.wait_attach = store, cid, wait_attach
        self.conn: socket.socket | _Spawn | None = _open()

    def cancel(self) -> None:
        """prepare failed: nothing to start (a supervisor started for this exits when idle)."""
        conn, self.conn = self.conn, None
        if isinstance(conn, _Spawn):
            try:
                conn = conn.wait()
            except RuntimeFailure:
                return
        if conn is not None:
            conn.close()

    def go(self) -> None:
        """Let the supervisor start the container; raises when it could not."""
        req = {"op": "start", "id": self.cid, "dir": str(self.store.dir(self.cid)), "wait_attach": self.wait_attach}
        msg = request(req, self.conn)
        self.conn = None
        if msg is None:  # it was exiting (idle) and reset the queued connection unread: once more
            msg = request(req)
        cid = self.cid
        if msg == "ok":
            return
        if msg and msg.startswith("error:"):
            _, code, text = msg.split(":", 2)
            raise RuntimeFailure(f"failed to start container {cid[:12]}: {text}", exit_code=int(code))
        raise RuntimeFailure(f"the supervisor of container {cid[:12]} died while starting it",
                             hint=f"see {paths.run_dir() / 'supervisor.log'}")


def ping() -> dict | None:
    """{"pid", "containers"} of the running supervisor, or None when none runs (none is started)."""
    from runtime.containers.lean import loads

    sock = connect()
    if sock is None:
        return None
    msg = request({"op": "ping"}, sock)
    return loads(msg) if msg else None


def restart() -> dict | None:
    """Hand off to a fresh image of the supervisor (its containers keep running); its ping before."""
    info = ping()
    if info is not None:
        sock = connect()
        if sock is not None:
            request({"op": "restart"}, sock)
    return info


RUN_SIGNALS = (1, 2, 3, 10, 12, 15, 28)  # HUP INT QUIT USR1 USR2 TERM WINCH: passed on to the worker


def run_remote(args: list[str]) -> int | None:
    """`wharf run ARGS` done by a worker the supervisor forks (everything already imported there),
    with this process's stdio, environment and directory; this process only passes signals on and
    waits. Returns the exit code, or None when no supervisor takes it (then run it here)."""
    import _signal

    from runtime.containers.lean import dumps, loads

    try:
        conn = _open()
        sock = conn.wait() if isinstance(conn, _Spawn) else conn
    except (OSError, RuntimeFailure):
        return None
    req = {"op": "run", "args": args, "env": dict(os.environ), "cwd": os.getcwd()}
    fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
    try:
        sock.sendmsg([stream.frame(stream.CONTROL, dumps(req).encode())],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        _, payload = stream.recv_frame(sock)  # {"pid"} once the worker runs
    except (OSError, EOFError):  # (a supervisor exiting as idle resets what it did not accept)
        sock.close()
        return None
    pid = loads(payload)["pid"]

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for sig in RUN_SIGNALS:
        _signal.signal(sig, forward)
    try:
        _, payload = stream.recv_frame(sock)
    except (OSError, EOFError):
        raise RuntimeFailure("the container supervisor ended while running the container", exit_code=125,
                             hint=f"see {paths.run_dir() / 'supervisor.log'}") from None
    finally:
        sock.close()
    return int(loads(payload)["exit"])
