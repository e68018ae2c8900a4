"""One container's supervision ("shim", like conmon): a thread of the supervisor process
(runtime/containers/supervisord.py), one Shim object per container.

It runs `<runtime> create` then `start` on the bundle the engine prepared, holds the
container's stdio (pipes, or the pty master received over --console-socket), writes the
json-file log, serves attach/wait/kill on the container's attach.sock, runs health checks,
applies the restart policy with Docker's back-off and records exit code, finish time and OOM
kills in state.json. While it supervises (and cleans up) the container it holds an exclusive
flock on the container's supervise.lock: that is what `shim_alive`/`wait_shim_exit` look at.
Exit statuses come from the supervisor's one reaper (runtime/containers/reaper.py); nothing
here calls waitpid. No chdir, no signal handlers: everything process-wide is the supervisor's.

At a hand-off (the supervisor re-executing itself) a shim parks at a safe point and
`snapshot()`s its live state (fds, phase, restart count, health, clients); the next image
rebuilds it with `Shim.adopt()` and `run()` continues where it stopped.

Everything is imported at module level: threads of the supervisor never import (see
supervisord.preload: a fork while another thread imports leaves the child hanging).
"""

from __future__ import annotations

import _socket as socket  # the C module: `socket` would pull in enum
import fcntl
import os
import select
import struct
import sys
import termios
import threading
import time

from runtime.containers import stream
from runtime.containers.health import HealthChecker
from runtime.containers.lean import Locked, append_line, atomic_write_json, loads, read_json
from runtime.containers.logs import LogWriter, rfc3339
from runtime.linux.cgroups import oom_kills  # kernel files are runtime/linux's
from runtime.linux.mount import umount_all_under

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0
AWAIT_START = 60.0  # run -a: how long a created container waits for its attach client
SIGKILL, SIGTERM = 9, 15


class StartError(Exception):
    pass


def exit_code_for(msg: str) -> int:
    low = msg.lower()
    if "permission denied" in low or "is a directory" in low:
        return 126
    if "not found" in low or "no such file" in low:
        return 127
    return 125


class Client:
    def __init__(self, sock: socket.socket, req: dict | None = None, buf: bytes = b"") -> None:
        self.sock = sock
        self.reader = stream.FrameReader()
        self.reader.buf = buf
        self.req = req

    def send(self, data: bytes) -> None:
        if self.sock is None:
            return
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(2.0)
            self.sock.sendall(data)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Shim:
    """The supervision of one container. `sup` is the supervisor (reaper, hand-off flag, cleanup)."""

    def __init__(self, cfg: dict, sup, lock_fd: int, wait_attach: bool = False, reply=None) -> None:
        self.cfg = cfg
        self.id = cfg["id"]
        self.sup = sup
        self.lock_fd = lock_fd  # the flock on supervise.lock: held while this object lives
        self.wait_attach = wait_attach
        self.reply = reply
        self.run_dir = cfg["run_dir"]
        self.state_path = os.path.join(cfg["dir"], "state.json")
        self.lock_path = os.path.join(cfg["dir"], ".lock")
        self.clients: list[Client] = []
        self.pid = 0
        self.init = None  # reaper.Child of the container's init
        self.master = -1
        self.outs: dict[int, int] = {}  # fd -> stream
        self.stdin_w = -1
        self.exited: int | None = None
        self.deleting = None  # reaper.Child of the runtime's `delete` still running (True: do it here)
        self.phase = "create"
        self.first = True
        self.backoff = BACKOFF_START
        self.until = 0.0  # end of the back-off sleep / of the wait for the attach client
        self.restarts = 0
        self.started_at = 0.0
        self.removed_by_client = False
        self.start_requested = False
        self.listener: socket.socket | None = None
        self.log = LogWriter(cfg["log_path"], cfg.get("log_max_size", 0), cfg.get("log_max_file", 1))
        self.health = HealthChecker(cfg["healthcheck"], self) if cfg.get("healthcheck") else None
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # a short path to the run dir for unix sockets (108-byte limit): /proc/PID/fd/N/name
        self.dfd = os.open(self.run_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def short(self, name: str, pid: str = "self") -> str:
        return f"/proc/{pid}/fd/{self.dfd}/{name}"

    def listen(self) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
        _unlink(os.path.join(self.run_dir, "attach.sock"))
        self.listener.bind(self.short("attach.sock"))
        self.listener.listen(64)
        self.listener.setblocking(False)

    def wake(self) -> None:
        """Interrupt this shim's poll (a child of it exited, a stop was requested, a hand-off)."""
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    # ------------------------------------------------------------ state
    def update(self, **changes) -> dict:
        with Locked(self.lock_path):
            st = read_json(self.state_path, {}) or {}
            st.update(changes)
            atomic_write_json(self.state_path, st)
            return st

    def event(self, action: str, **attrs) -> None:
        attrs.setdefault("name", self.cfg.get("name", ""))
        attrs.setdefault("image", self.cfg.get("image", ""))
        append_line(self.cfg["events_path"], {"type": "container", "action": action, "id": self.id,
                                              "attributes": attrs, "time": time.time()})

    # ------------------------------------------------------------ runtime calls
    def runtime(self, *args: str, stdio: tuple[int, int, int] | None = None) -> int:
        if args[0] == "create" and self.cfg.get("runtime_builtin"):
            return self.create_here(list(args[1:]), stdio)
        return self.spawn_runtime(*args, stdio=stdio).wait()

    def create_here(self, args: list[str], stdio: tuple[int, int, int] | None) -> int:
        """The built-in runtime's `create ARGS` in this thread, not in a forked runtime process: the
        same exit code, and the same error line on stdio[2]. Its children go through the reaper."""
        from runtime.errors import WharfError  # (imported: preload)
        from runtime.oci import create
        from runtime.oci.cli import error_line

        flags = dict(zip(args[:-1:2], args[1:-1:2], strict=True))
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        fds = stdio or (null, null, null)
        try:
            create.create(self.cfg["runtime_root"], args[-1], flags["--bundle"], flags.get("--pid-file"),
                          flags.get("--console-socket"), stdio=fds, forks=ReaperForks(self.sup))
            return 0
        except (WharfError, OSError) as e:
            os.write(fds[2], f"{error_line(e)}\n".encode())
            return e.exit_code if isinstance(e, WharfError) else 1
        finally:
            os.close(null)

    def spawn_runtime(self, *args: str, stdio: tuple[int, int, int] | None = None):
        """Start `<runtime> --root R ARGS...` (the built-in one as a forked child); its reaper.Child."""
        argv = [*self.cfg["runtime_argv"], "--root", self.cfg["runtime_root"], *args]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        fds = stdio or (null, null, null)
        try:
            if self.cfg.get("runtime_builtin"):  # (imported in the supervisor: the fork imports nothing)
                return self.sup.reaper.spawn(lambda: _fork_builtin(argv[-len(args) - 2:], fds))
            actions = [(os.POSIX_SPAWN_DUP2, fds[0], 0), (os.POSIX_SPAWN_DUP2, fds[1], 1),
                       (os.POSIX_SPAWN_DUP2, fds[2], 2)]
            return self.sup.reaper.spawn(lambda: os.posix_spawn(argv[0], argv, os.environ, file_actions=actions))
        finally:
            os.close(null)

    def create(self) -> None:
        cfg = self.cfg
        pidfile = os.path.join(self.run_dir, "init.pid")
        _unlink(pidfile)
        args = ["create", "--bundle", cfg["bundle"], "--pid-file", pidfile]
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if cfg["tty"]:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
            _unlink(os.path.join(self.run_dir, "console.sock"))
            console.bind(self.short("console.sock"))
            console.listen(1)
            args += ["--console-socket", self.short("console.sock", str(os.getpid()))]
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            rc = self.runtime(*args, self.id, stdio=(null, null, err_w))
            os.close(null)
            os.close(err_w)
            os.set_blocking(err_r, False)
            msg = _drain_text(err_r)
            os.close(err_r)
            try:
                if rc != 0:
                    raise StartError(msg or f"runtime create exited with {rc}")
                console.settimeout(5)
                conn = _accept(console)
                conn.settimeout(5)
                _, anc, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(4))
                conn.close()
                fds = [int.from_bytes(data[:4], sys.byteorder) for lvl, typ, data in anc
                       if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS]
                if not fds:
                    raise StartError("the runtime sent no pty over the console socket")
            finally:
                console.close()
                _unlink(os.path.join(self.run_dir, "console.sock"))
            os.set_inheritable(fds[0], False)
            self.master = fds[0]
            os.set_blocking(self.master, False)
            self.outs = {self.master: stream.STDOUT}
            self.stdin_w = self.master if cfg["stdin_open"] else -1
            self._resize(cfg.get("tty_size"))
        else:
            # the container's stdio; until `start`, what arrives on err_r is the runtime's error
            out_r, out_w = os.pipe2(os.O_CLOEXEC)
            if cfg["stdin_open"]:
                in_r, self.stdin_w = os.pipe2(os.O_CLOEXEC)
            else:
                in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            rc = self.runtime(*args, self.id, stdio=(in_r, out_w, err_w))
            for fd in (in_r, out_w, err_w):
                os.close(fd)
            for fd in (out_r, err_r):
                os.set_blocking(fd, False)
            self.outs = {out_r: stream.STDOUT, err_r: stream.STDERR}
            if rc != 0:
                msg = _drain_text(err_r)
                self._close_io()
                raise StartError(msg or f"runtime create exited with {rc}")
        with open(pidfile) as f:
            self.pid = int(f.read().strip())
        self.init = self.sup.reaper.watch(self.pid, self.wake)

    def _close_io(self) -> None:
        for fd in list(self.outs):
            if fd != self.master:
                os.close(fd)
        if self.master >= 0:
            os.close(self.master)
        elif self.stdin_w >= 0:
            os.close(self.stdin_w)
        self.outs, self.master, self.stdin_w = {}, -1, -1

    def start(self) -> None:
        if self.cfg.get("runtime_builtin"):  # no process for it: open the fifo, read the byte, unlink
            from runtime.errors import WharfError  # (imported: preload)
            from runtime.oci import lifecycle

            try:
                lifecycle.start(self.cfg["runtime_root"], self.id)
            except (WharfError, OSError) as e:
                self.kill_and_reap()
                raise StartError(f"wharf-runtime: {e}") from None
            return
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        rc = self.runtime("start", self.id, stdio=(null, null, err_w))
        os.close(null)
        os.close(err_w)
        os.set_blocking(err_r, False)
        msg = _drain_text(err_r)
        os.close(err_r)
        if rc != 0:
            self.kill_and_reap()
            raise StartError(msg or f"runtime start exited with {rc}")

    def kill_and_reap(self) -> None:
        if self.init is not None:
            try:
                os.kill(self.pid, SIGKILL)
            except OSError:
                pass
            self.init.wait()
        self.runtime("delete", "--force", self.id)

    def kill_container(self) -> None:
        """The supervisor is going away without a successor (its run dir was removed)."""
        if self.pid and self.exited is None:
            self.sup.stop_requested.add(self.id)
            self.signal_init(SIGKILL)
        self.wake()

    # ------------------------------------------------------------ the life of the container
    def ready(self, msg: str = "") -> None:
        if self.reply is not None:
            reply, self.reply = self.reply, None
            reply(msg or "ok")

    def run(self) -> int:
        """create, start, supervise, restart...: from self.phase (a resumed shim starts mid-way)."""
        while True:
            if self.phase in ("create", "await", "start"):
                try:
                    if self.phase == "create":
                        self.restarts = (read_json(self.state_path, {}) or {}).get("restart_count", 0)
                        self.create()
                        self.phase = "start"
                        if self.first and self.wait_attach:
                            self.phase, self.until = "await", time.monotonic() + AWAIT_START
                            self.ready()
                    if self.phase == "await":
                        self.serve_until_started()
                        self.phase = "start"
                    self.start()
                except (StartError, OSError) as e:
                    msg = str(e)
                    code = exit_code_for(msg)
                    self.update(status="exited" if not self.first else "created", exit_code=code, error=msg,
                                pid=0, finished_at=rfc3339(time.time()) if not self.first else "")
                    if self.first:
                        self.ready(f"error:{code}:{msg}")
                        return self.finish(code)
                    self.exited = code
                    self.phase = "exited"
                else:
                    self.started_at = time.monotonic()
                    health = None
                    if self.health:
                        self.health.reset()
                        health = {"status": "starting", "failing_streak": 0, "log": []}
                    self.update(status="running", pid=self.pid, started_at=rfc3339(time.time()),
                                exit_code=0, error="", oom_killed=False, health=health,
                                shim_pid=os.getpid(), shim_lock=self.lock_file(), restart_count=self.restarts)
                    self.event("start")
                    self.ready()
                    self.first = False
                    self.phase = "running"
            if self.phase == "running":
                code = self.loop()
                oom = self.oom_killed()
                if self.cfg.get("runtime_builtin"):
                    self.deleting = True  # in this thread, once the exit is recorded and told (wait_deleted)
                else:  # the runtime's delete (cgroup removal) runs while the exit is recorded and told
                    self.deleting = self.spawn_runtime("delete", "--force", self.id)
                if oom:
                    self.event("oom")
                self.update(status="exited", pid=0, exit_code=code, oom_killed=oom,
                            finished_at=rfc3339(time.time()))
                self.event("die", exitCode=str(code))
                if time.monotonic() - self.started_at >= BACKOFF_RESET_AFTER:
                    self.backoff = BACKOFF_START
                self.phase = "exited"
            if self.phase == "exited":
                code = self.exited if self.exited is not None else 0
                self.notify_exit(code)
                if not self.should_restart(code, self.restarts):
                    return self.finish(code)
                self.wait_deleted()
                self.update(status="restarting", restart_count=self.restarts + 1)
                self.phase, self.until = "backoff", time.monotonic() + self.backoff
            if self.phase == "backoff":
                if not self.sleep_serving():
                    self.update(status="exited")
                    return self.finish(self.exited if self.exited is not None else 0)
                self.backoff = min(self.backoff * 2, BACKOFF_MAX)
                self.exited = None
                self.phase = "create"

    def lock_file(self) -> str:
        return os.path.join(self.run_dir, "supervise.lock")

    def wait_deleted(self) -> None:
        if self.deleting is True:  # the built-in runtime's delete: a few rmdirs, no process for it
            from runtime.errors import WharfError  # (imported: preload)
            from runtime.oci import lifecycle

            try:
                lifecycle.delete(self.cfg["runtime_root"], self.id, force=True)
            except (WharfError, OSError) as e:
                print(f"supervisor: delete of {self.id[:12]}: {e}", file=sys.stderr, flush=True)
        elif self.deleting is not None:
            self.deleting.wait()
        self.deleting = None

    def stop_requested(self) -> bool:
        return bool((read_json(self.state_path, {}) or {}).get("stop_requested")) \
            or self.id in self.sup.stop_requested

    def should_restart(self, code: int, restarts: int) -> bool:
        if self.stop_requested():
            return False
        pol = self.cfg.get("restart") or {}
        name = pol.get("name", "no")
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = pol.get("maximum_retry_count", 0)
            return not limit or restarts < limit
        return False

    def sleep_serving(self) -> bool:
        """Serve clients until self.until; False when a stop was requested meanwhile."""
        while (left := self.until - time.monotonic()) > 0:
            self.poll_once(left)
            if self.stop_requested():
                return False
        return True

    def serve_until_started(self) -> None:
        while not self.start_requested and time.monotonic() < self.until:
            self.poll_once(self.until - time.monotonic())

    def loop(self) -> int:
        while self.exited is None:
            self.poll_once(self.health.next_timeout() if self.health else None)
        self.drain_outputs(time.monotonic() + 2.0)
        self.log.flush()
        self._close_io()
        if self.health:
            self.health.stop()
        return self.exited

    def poll_once(self, timeout: float | None) -> None:
        p = select.poll()
        p.register(self.wake_r, select.POLLIN)
        p.register(self.listener, select.POLLIN)
        for fd in self.outs:
            p.register(fd, select.POLLIN)
        for c in self.clients:
            p.register(c.sock, select.POLLIN)
        if self.health:
            for fd in self.health.fds():
                p.register(fd, select.POLLIN)
        events = p.poll(None if timeout is None else max(0, int(timeout * 1000)))
        for fd, _ in events:
            if fd == self.wake_r:
                try:
                    os.read(self.wake_r, 512)
                except BlockingIOError:
                    pass
            elif fd == self.listener.fileno():
                self.accept()
            elif fd in self.outs:
                self.read_output(fd)
            elif self.health and fd in self.health.fds():
                self.health.on_readable(fd)
            else:
                for c in self.clients:
                    if c.sock is not None and c.sock.fileno() == fd:
                        self.on_client(c)
        self.clients = [c for c in self.clients if c.sock is not None]
        if self.init is not None and self.exited is None and self.init.done.is_set():
            self.exited = self.init.code
        if self.health:
            self.health.check_exit()
            self.health.tick()
        if self.sup.handing_off:
            self.park()

    def read_output(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return True
        except OSError:  # EIO on a pty whose slave side is gone
            data = b""
        if not data:
            del self.outs[fd]
            if fd != self.master:
                os.close(fd)
            return False
        s = self.outs[fd]
        self.log.write("stdout" if s == stream.STDOUT else "stderr", data)
        fr = stream.frame(s, data)
        for c in self.clients:
            if c.req and c.req.get("op") == "attach" and c.req.get("stream", True):
                c.send(fr)
        return True

    def drain_outputs(self, deadline: float) -> None:
        while self.outs and time.monotonic() < deadline:
            p = select.poll()
            for fd in self.outs:
                p.register(fd, select.POLLIN)
            for fd, _ in p.poll(max(0, int((deadline - time.monotonic()) * 1000))):
                if fd in self.outs:
                    self.read_output(fd)

    # ------------------------------------------------------------ clients
    def accept(self) -> None:
        try:
            sock = _accept(self.listener)
        except BlockingIOError:
            return
        sock.setblocking(False)
        self.clients.append(Client(sock))

    def on_client(self, c: Client) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # StdinOnce: the attached client's leaving closes stdin — not with a tty (as moby): that
            # is a detach (Ctrl-P Ctrl-Q), and the container keeps running for the next attach
            if c.req and c.req.get("stdin") and self.cfg.get("stdin_once") and not self.cfg.get("tty"):
                self.close_stdin()
            c.close()
            return
        for kind, payload in c.reader.feed(data):
            if kind == stream.CONTROL:
                c.req = loads(payload)
                if c.req.get("start"):
                    self.start_requested = True
                if c.req.get("op") == "kill":
                    self.signal_init(int(c.req.get("signal", SIGTERM)))
            elif kind == stream.STDIN and self.stdin_w >= 0:
                self.write_stdin(payload)
            elif kind == stream.STDIN_EOF:
                self.close_stdin()
            elif kind == stream.RESIZE:
                self._resize(payload.decode())

    def write_stdin(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.stdin_w, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [self.stdin_w], [], 1.0)
            except OSError:
                return

    def close_stdin(self) -> None:
        if self.stdin_w >= 0 and self.stdin_w != self.master:
            os.close(self.stdin_w)
            self.stdin_w = -1
        elif self.master >= 0:
            self.write_stdin(b"\x04")

    def _resize(self, size) -> None:
        if self.master < 0 or not size:
            return
        rows, cols = (int(x) for x in str(size).split())
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def signal_init(self, sig: int) -> None:
        if self.pid and self.exited is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def notify_exit(self, code: int) -> None:
        fr = stream.frame(stream.EXIT, str(code).encode())
        for c in self.clients:
            if c.req is not None:
                c.send(fr)
                if c.sock is not None and c.req.get("remove"):
                    self.removed_by_client = True  # a foreground `run --rm` removes it itself
                c.close()
        self.clients = [c for c in self.clients if c.sock is not None]

    # ------------------------------------------------------------ end
    def oom_killed(self) -> bool:
        try:
            return oom_kills(self.cfg["cgroup"]) > 0
        except OSError:
            return False

    def finish(self, code: int) -> int:
        """Unmount, release the network (--rm: remove) unless a client does it, then let go of the lock."""
        try:
            self.log.close()
            umount_all_under(os.path.join(self.cfg["bundle"], "rootfs"))
            self.listener.close()
            for c in self.clients:
                c.close()
            _unlink(os.path.join(self.run_dir, "attach.sock"))
            self.wait_deleted()
            if not self.cfg.get("cleanup"):  # (else the engine's cleanup tells, after the network's release)
                from runtime.volumes.store import unmount_events  # (imported: preload_engine)

                unmount_events(self.id)
            if self.cfg.get("cleanup") and not self.removed_by_client \
                    and not (read_json(self.state_path, {}) or {}).get("removing"):
                # (`rm -f` destroys it, network included, as soon as the lock is free)
                self.sup.cleanup(self.id)
        finally:
            for fd in (self.wake_r, self.wake_w, self.dfd, self.lock_fd):
                os.close(fd)
        return code

    def abort(self, msg: str) -> None:
        """After a bug in this shim: end the container rather than leave it running unsupervised."""
        for step in (lambda: self.signal_init(SIGKILL), lambda: self.init and self.init.wait(5),
                     lambda: self.runtime("delete", "--force", self.id),
                     lambda: self.update(status="exited", pid=0, exit_code=255, error=msg,
                                         finished_at=rfc3339(time.time()))):
            try:
                step()
            except Exception:  # noqa: BLE001, S112 - best effort, each step on its own
                continue
        self.notify_exit(255)
        self.finish(255)

    # ------------------------------------------------------------ hand-off
    def park(self) -> None:
        """At a safe point: record the live state for the next supervisor image, then wait for the exec."""
        if self.health:
            self.health.stop()
        self.wait_deleted()
        self.saved = self.snapshot()
        self.sup.parked(self)
        threading.Event().wait()  # the supervisor execs; this thread ends with the old image

    def snapshot(self) -> dict:
        fds = [self.listener.fileno(), self.lock_fd, *self.outs, *(c.sock.fileno() for c in self.clients)]
        if self.stdin_w >= 0:
            fds.append(self.stdin_w)
        for fd in fds:
            os.set_inheritable(fd, True)
        now = time.monotonic()
        health = None
        if self.health:
            health = {"state": self.health.state, "next_in": max(0.0, self.health.next_at - now),
                      "elapsed": now - self.health.started}
        return {"cfg": self.cfg, "phase": self.phase, "wait_attach": self.wait_attach, "pid": self.pid,
                "exited": self.exited, "outs": {str(fd): s for fd, s in self.outs.items()}, "master": self.master,
                "stdin_w": self.stdin_w, "listener": self.listener.fileno(), "lock_fd": self.lock_fd,
                "clients": [{"fd": c.sock.fileno(), "req": c.req, "buf": c.reader.buf.decode("latin-1")}
                            for c in self.clients],
                "partial": {k: v.decode("latin-1") for k, v in self.log.partial.items()},
                "first": self.first, "backoff": self.backoff, "left": max(0.0, self.until - now),
                "restarts": self.restarts, "elapsed": now - self.started_at,
                "removed_by_client": self.removed_by_client, "start_requested": self.start_requested,
                "health": health}

    @classmethod
    def adopt(cls, sup, saved: dict) -> Shim:
        """The shim a previous supervisor image parked: same fds, same phase."""
        for fd in (saved["listener"], saved["lock_fd"], *(int(f) for f in saved["outs"]),
                   *(c["fd"] for c in saved["clients"]), saved["stdin_w"]):
            if fd >= 0:
                os.set_inheritable(fd, False)
        shim = cls(saved["cfg"], sup, saved["lock_fd"], saved["wait_attach"])
        now = time.monotonic()
        shim.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, saved["listener"])
        shim.listener.setblocking(False)
        shim.outs = {int(fd): s for fd, s in saved["outs"].items()}
        shim.master, shim.stdin_w, shim.pid = saved["master"], saved["stdin_w"], saved["pid"]
        for c in saved["clients"]:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, c["fd"])
            sock.setblocking(False)
            shim.clients.append(Client(sock, c["req"], c["buf"].encode("latin-1")))
        shim.log.partial = {k: v.encode("latin-1") for k, v in saved["partial"].items()}
        shim.phase, shim.first, shim.backoff = saved["phase"], saved["first"], saved["backoff"]
        shim.until, shim.restarts, shim.started_at = now + saved["left"], saved["restarts"], now - saved["elapsed"]
        shim.removed_by_client, shim.start_requested = saved["removed_by_client"], saved["start_requested"]
        shim.exited = saved["exited"]
        if shim.pid and shim.exited is None and shim.phase in ("running", "await"):
            shim.init = sup.reaper.watch(shim.pid, shim.wake)
        if shim.health and saved["health"]:
            shim.health.state = saved["health"]["state"]
            shim.health.started = now - saved["health"]["elapsed"]
            shim.health.next_at = now + saved["health"]["next_in"]
        return shim


class ReaperForks:
    """runtime.oci.create.Forks for create() in a shim thread: its children are forked and
    registered with the supervisor's one reaper (which waits for every child), and the cgroup
    migration is primed by the supervisor's MigrationPrimer, not by a child of its own."""

    def __init__(self, sup) -> None:  # noqa: ANN001
        self.sup = sup
        self.children: dict[int, object] = {}

    def fork(self, child) -> int:  # noqa: ANN001
        def start() -> int:
            pid = os.fork()
            if pid == 0:
                try:
                    reset_signals()
                    child()
                finally:
                    os._exit(1)  # child() never returns; this is for a failure before it
            return pid

        c = self.sup.reaper.spawn(start)
        self.children[c.pid] = c
        return c.pid

    def wait(self, pid: int) -> None:
        self.children.pop(pid).wait()

    def primer(self) -> int:
        self.sup.primer.kick()
        return 0


def _drain_text(fd: int) -> str:
    chunks = []
    while True:
        try:
            b = os.read(fd, 65536)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    text = b"".join(chunks).decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else ""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fork_builtin(args: list[str], fds: tuple[int, int, int]) -> int:
    pid = os.fork()
    if pid == 0:
        _builtin_runtime(args, fds)
    return pid


def _builtin_runtime(args: list[str], fds: tuple[int, int, int]) -> None:
    """In a forked child of the supervisor: the built-in runtime's command line (runtime.oci.cli.main),
    without exec'ing a new interpreter. Only this thread exists here: do this, then _exit."""
    rc = 1
    try:
        from runtime.linux.prctl import set_name  # (imported: preload)

        set_name("wharf-runtime")
        reset_signals()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the supervisor's sockets, pipes and locks stay out
        from runtime.oci.cli import main as runtime_main

        rc = runtime_main(args)
        sys.stdout.flush()
    except BaseException as e:  # noqa: BLE001 - never return into the supervisor's code
        try:
            os.write(2, f"wharf-runtime: {e!r}\n".encode())
        except OSError:
            pass
    os._exit(rc)


def reset_signals() -> None:
    """In a forked child of the supervisor: default dispositions, no wakeup fd (it is the supervisor's)."""
    import _signal as signal

    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)


def _accept(listener: socket.socket) -> socket.socket:
    fd, _ = listener._accept()
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
