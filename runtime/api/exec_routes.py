"""Exec routes: POST /containers/{id}/exec, /exec/{id}/start|resize, GET /exec/{id}/json.

Exec instances live in the daemon's memory (as in dockerd). start runs the command with
LocalContainers.exec_spawn on pipes (or a fresh pty for Tty) and pumps them over the
hijacked connection: multiplexed frames without a tty, raw bytes with one.
"""

from __future__ import annotations

import os
import secrets
import select
import threading
from dataclasses import dataclass, field
from typing import Any

from runtime.api.http import HIJACKED, Reply, Request
from runtime.api.router import router
from runtime.containers import stream as frames
from runtime.errors import Conflict, InvalidArgument, NotFound

MAX_FINISHED = 512


@dataclass
class ExecInstance:
    id: str
    container: str
    cmd: list[str]
    env: list[str]
    user: str
    workdir: str
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    privileged: bool = False
    size: tuple[int, int] | None = None  # ConsoleSize [rows, cols] (API 1.42): the pty's size from the start
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    master: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)

    def json(self) -> dict[str, Any]:
        return {"ID": self.id, "ContainerID": self.container, "Running": self.running, "ExitCode": self.exit_code,
                "Pid": self.pid, "OpenStdin": self.stdin, "OpenStdout": self.stdout, "OpenStderr": self.stderr,
                "CanRemove": False, "DetachKeys": "",
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.cmd[0] if self.cmd else "",
                                  "arguments": self.cmd[1:], "privileged": self.privileged, "user": self.user}}


EXECS: dict[str, ExecInstance] = {}
_LOCK = threading.Lock()


def _get(req: Request) -> ExecInstance:
    e = EXECS.get(req.params["id"])
    if e is None:
        raise NotFound(f"No such exec instance: {req.params['id']}")
    return e


def _forget_old() -> None:
    with _LOCK:
        done = [k for k, e in EXECS.items() if e.exit_code is not None]
        for k in done[:max(0, len(done) - MAX_FINISHED)]:
            EXECS.pop(k, None)


@router.route("POST", r"/containers/(?P<id>[^/]+)/exec")
def create(engine, req: Request) -> Reply:
    from runtime.api.container_json import _get as field_of
    from runtime.api.container_json import _strlist

    cs = engine.containers
    cid = cs.store.resolve(req.params["id"])
    body = req.json()
    cmd = _strlist(body, "Cmd", "body") or []
    if not cmd:
        raise InvalidArgument("exec needs Cmd (a non-empty array of strings)")
    st = cs.store.load_state(cid).get("status")
    if st != "running":
        raise Conflict(f"container {cid[:12]} is {'paused' if st == 'paused' else 'not running'}")
    _forget_old()
    e = ExecInstance(id=secrets.token_hex(32), container=cid, cmd=cmd, env=_strlist(body, "Env", "body") or [],
                     user=field_of(body, "User", str, "body", ""), workdir=field_of(body, "WorkingDir", str, "body", ""),
                     tty=field_of(body, "Tty", bool, "body", False),
                     stdin=field_of(body, "AttachStdin", bool, "body", False),
                     stdout=field_of(body, "AttachStdout", bool, "body", True),
                     stderr=field_of(body, "AttachStderr", bool, "body", True),
                     privileged=field_of(body, "Privileged", bool, "body", False))
    size = body.get("ConsoleSize")
    if isinstance(size, list) and len(size) == 2 and all(isinstance(x, int) and x > 0 for x in size):
        e.size = (size[0], size[1])
    with _LOCK:
        EXECS[e.id] = e
    return Reply(201, {"Id": e.id})


@router.route("GET", r"/exec/(?P<id>[^/]+)/json")
def inspect(engine, req: Request) -> dict[str, Any]:
    return _get(req).json()


@router.route("POST", r"/exec/(?P<id>[^/]+)/resize")
def resize(engine, req: Request) -> None:
    e = _get(req)
    h, w = req.qint("h", 0) or 0, req.qint("w", 0) or 0
    if e.master >= 0 and h > 0 and w > 0:
        import fcntl
        import struct
        import termios

        try:
            fcntl.ioctl(e.master, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
        except OSError:
            pass


def _reap(e: ExecInstance) -> None:
    _, status = os.waitpid(e.pid, 0)
    e.exit_code = os.waitstatus_to_exitcode(status)
    e.running = False


@router.route("POST", r"/exec/(?P<id>[^/]+)/start")
def start(engine, req: Request):
    from runtime.api.container_json import _get as field_of

    e = _get(req)
    body = req.json()
    detach = field_of(body, "Detach", bool, "body", False)
    tty = field_of(body, "Tty", bool, "body", e.tty)
    with e.lock:
        if e.started:
            raise Conflict(f"exec instance {e.id[:12]} has already been started")
        e.started = True
    cs = engine.containers
    if detach:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            e.pid = cs.exec_spawn(e.container, e.cmd, e.env, e.user, e.workdir, stdio=(null, null, null),
                                  privileged=e.privileged)
        finally:
            os.close(null)
        e.running = True
        threading.Thread(target=_reap, args=(e,), daemon=True).start()
        return Reply(200, {})
    if tty:
        return _run_tty(cs, e, req)
    return _run_pipes(cs, e, req)


def _run_pipes(cs, e: ExecInstance, req: Request):
    import socket

    # stdin is a socketpair: shutdown() ends it for the command even though the exec helper
    # (a fork of this daemon) holds a copy of our end
    ours_in, theirs_in = socket.socketpair() if e.stdin else (None, None)
    own: list[int] = []
    try:
        in_fd = theirs_in.fileno() if theirs_in else os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        if theirs_in is None:
            own.append(in_fd)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        own += [out_w, err_w]
        try:
            e.pid = cs.exec_spawn(e.container, e.cmd, e.env, e.user, e.workdir, stdio=(in_fd, out_w, err_w),
                                  privileged=e.privileged)
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            if ours_in:
                ours_in.close()
            raise
    finally:
        for fd in own:
            os.close(fd)
        if theirs_in:
            theirs_in.close()
    e.running = True
    ours = {out_r: frames.STDOUT, err_r: frames.STDERR}
    client, reader = req.hijack("application/vnd.docker.multiplexed-stream")
    stdin_thread = _stdin_pump(reader, ours_in) if ours_in else None
    try:
        while ours:
            ready, _, _ = select.select(list(ours), [], [])
            for fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    os.close(fd)
                    del ours[fd]
                    continue
                wanted = e.stdout if ours[fd] == frames.STDOUT else e.stderr
                if wanted:
                    client.sendall(frames.frame(ours[fd], data))
    except OSError:
        pass
    finally:
        for fd in ours:
            os.close(fd)
        _reap(e)
        _hangup(client)
        if stdin_thread:
            stdin_thread.join(5)
        if ours_in:
            ours_in.close()
    return HIJACKED


def _run_tty(cs, e: ExecInstance, req: Request):
    # the pty comes from the container's own devpts (as `wharf exec -t`), so `tty` names it in there
    e.pid, master = cs.exec_spawn_pty(e.container, e.cmd, e.env, e.user, e.workdir, size=e.size,
                                      privileged=e.privileged)
    os.set_inheritable(master, False)
    e.master = master
    e.running = True
    client, reader = req.hijack()
    stdin_thread = _stdin_pump(reader, master) if e.stdin else None
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        _reap(e)
        _hangup(client)
        if stdin_thread:
            stdin_thread.join(5)
        e.master = -1
        os.close(master)
    return HIJACKED


def _stdin_pump(reader, dest) -> threading.Thread:
    """Client bytes -> dest (a socket: shut down for writing at the end; or a pty master fd)."""
    import socket

    def run() -> None:
        try:
            while data := reader.read1(65536):
                if isinstance(dest, socket.socket):
                    dest.sendall(data)
                else:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(dest, view):]
        except (OSError, ValueError):
            pass
        finally:
            if isinstance(dest, socket.socket):
                try:
                    dest.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _hangup(client) -> None:
    import socket

    try:
        client.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
