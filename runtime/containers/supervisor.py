"""The per-container supervisor ("shim", like conmon). Stdlib only: it is paid per container.

Started by the engine through shim.py:  shim.py CONTAINER_DIR READY_FD WAIT_ATTACH
It daemonizes (fork + setsid), becomes a child subreaper, runs `<runtime> create` then
`start` on the bundle the engine prepared, holds the container's stdio (pipes, or the
pty master received over --console-socket), writes the json-file log, serves attach/wait
on a unix socket, runs health checks, applies the restart policy with Docker's back-off
and records exit code, finish time and OOM kills in state.json. It outlives the `wharf`
command that started it. When the container is finally done it runs the cleanup command
(unmount, network release, --rm) in its own pid, so `wait` sees one process end.
"""

from __future__ import annotations

import _signal as signal  # the C modules: `signal`/`socket` would pull in enum (memory per container)
import _socket as socket
import errno
import os
import select
import sys
import time

from runtime.containers import stream
from runtime.containers.lean import Locked, append_line, atomic_write_json, loads, read_json
from runtime.containers.logs import LogWriter, rfc3339

BACKOFF_START = 0.1
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0


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
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = stream.FrameReader()
        self.req: dict | None = None

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
    def __init__(self, cfg: dict, ready_fd: int, wait_attach: bool) -> None:
        self.cfg = cfg
        self.id = cfg["id"]
        self.ready_fd = ready_fd
        self.wait_attach = wait_attach
        self.state_path = os.path.join(cfg["dir"], "state.json")
        self.lock_path = os.path.join(cfg["dir"], ".lock")
        self.clients: list[Client] = []
        self.pid = 0
        self.master = -1
        self.outs: dict[int, int] = {}  # fd -> stream
        self.stdin_w = -1
        self.exited: int | None = None
        self.deleting = 0  # pid of the runtime's `delete` still running
        self.log = LogWriter(cfg["log_path"], cfg.get("log_max_size", 0), cfg.get("log_max_file", 1))
        self.health = None
        if cfg.get("healthcheck"):  # imported only when needed: every module costs memory per container
            from runtime.containers.health import HealthChecker

            self.health = HealthChecker(cfg["healthcheck"], self)
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
        try:
            os.unlink("attach.sock")
        except FileNotFoundError:
            pass
        self.listener.bind("attach.sock")
        self.listener.listen(64)
        self.listener.setblocking(False)

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
    def runtime(self, *args: str, stdio: tuple[int, int, int] | None = None) -> tuple[int, int]:
        pid = self.spawn_runtime(*args, stdio=stdio)
        return pid, self._wait(pid)

    def spawn_runtime(self, *args: str, stdio: tuple[int, int, int] | None = None) -> int:
        """Start `<runtime> --root R ARGS...` (the built-in one as a forked child); returns its pid."""
        argv = [*self.cfg["runtime_argv"], "--root", self.cfg["runtime_root"], *args]
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        fds = stdio or (null, null, null)
        try:
            if self.cfg.get("runtime_builtin"):
                pid = os.fork()
                if pid == 0:
                    _builtin_runtime(argv[-len(args) - 2:], fds)
            else:
                actions = [(os.POSIX_SPAWN_DUP2, fds[0], 0), (os.POSIX_SPAWN_DUP2, fds[1], 1),
                           (os.POSIX_SPAWN_DUP2, fds[2], 2)]
                pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
        finally:
            os.close(null)
        return pid

    def _wait(self, pid: int) -> int:
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                return -1

    def create(self) -> None:
        cfg = self.cfg
        pidfile = "init.pid"
        try:
            os.unlink(pidfile)
        except FileNotFoundError:
            pass
        args = ["create", "--bundle", cfg["bundle"], "--pid-file", os.path.abspath(pidfile)]
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        if cfg["tty"]:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
            try:
                os.unlink("console.sock")
            except FileNotFoundError:
                pass
            console.bind("console.sock")
            console.listen(1)
            args += ["--console-socket", f"/proc/{os.getpid()}/cwd/console.sock"]
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            _, rc = self.runtime(*args, self.id, stdio=(null, null, err_w))
            os.close(null)
            os.close(err_w)
            os.set_blocking(err_r, False)
            msg = self._drain_text(err_r)
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
                os.unlink("console.sock")
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
            _, rc = self.runtime(*args, self.id, stdio=(in_r, out_w, err_w))
            for fd in (in_r, out_w, err_w):
                os.close(fd)
            for fd in (out_r, err_r):
                os.set_blocking(fd, False)
            self.outs = {out_r: stream.STDOUT, err_r: stream.STDERR}
            if rc != 0:
                msg = self._drain_text(err_r)
                self._close_io()
                raise StartError(msg or f"runtime create exited with {rc}")
        self._read_pid(pidfile)

    def _read_pid(self, pidfile: str) -> None:
        with open(pidfile) as f:
            self.pid = int(f.read().strip())

    def _drain_text(self, fd: int) -> str:
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
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        _, rc = self.runtime("start", self.id, stdio=(null, null, err_w))
        os.close(null)
        os.close(err_w)
        os.set_blocking(err_r, False)
        msg = self._drain_text(err_r)
        os.close(err_r)
        if rc != 0:
            self.kill_and_reap()
            raise StartError(msg or f"runtime start exited with {rc}")

    def kill_and_reap(self) -> None:
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
        self.runtime("delete", "--force", self.id)

    # ------------------------------------------------------------ the loop
    def ready(self, msg: str = "") -> None:
        if self.ready_fd >= 0:
            try:
                os.write(self.ready_fd, (msg or "ok").encode())
            except OSError:
                pass
            os.close(self.ready_fd)
            self.ready_fd = -1

    def run(self) -> int:
        backoff = BACKOFF_START
        first = True
        while True:
            st = read_json(self.state_path, {}) or {}
            restarts = st.get("restart_count", 0)
            try:
                self.create()
                if first and self.wait_attach:
                    self.ready()
                    self.serve_until_started()
                self.start()
            except (StartError, OSError) as e:
                msg = str(e)
                code = exit_code_for(msg)
                self.update(status="exited" if not first else "created", exit_code=code, error=msg,
                            pid=0, finished_at=rfc3339(time.time()) if not first else "")
                if first:
                    self.ready(f"error:{code}:{msg}")
                    return self.finish(code)
                self.exited = code
            else:
                started = time.monotonic()
                health = None
                if self.health:
                    self.health.reset()
                    health = {"status": "starting", "failing_streak": 0, "log": []}
                self.update(status="running", pid=self.pid, started_at=rfc3339(time.time()),
                            exit_code=0, error="", oom_killed=False, health=health,
                            shim_pid=os.getpid(), restart_count=restarts)
                self.event("start")
                if first:
                    self.ready()
                first = False
                code = self.loop()
                oom = self.oom_killed()
                # the runtime's delete (cgroup removal) runs while the exit is recorded and told
                self.deleting = self.spawn_runtime("delete", "--force", self.id)
                if oom:
                    self.event("oom")
                self.update(status="exited", pid=0, exit_code=code, oom_killed=oom,
                            finished_at=rfc3339(time.time()))
                self.event("die", exitCode=str(code))
                if time.monotonic() - started >= BACKOFF_RESET_AFTER:
                    backoff = BACKOFF_START
            code = self.exited if self.exited is not None else 0
            self.notify_exit(code)
            if not self.should_restart(code, restarts):
                return self.finish(code)
            self.wait_deleted()
            self.update(status="restarting", restart_count=restarts + 1)
            if not self.sleep_serving(backoff):
                self.update(status="exited")
                return self.finish(code)
            backoff = min(backoff * 2, BACKOFF_MAX)
            self.exited = None

    def wait_deleted(self) -> None:
        if self.deleting:
            self._wait(self.deleting)
            self.deleting = 0

    def should_restart(self, code: int, restarts: int) -> bool:
        st = read_json(self.state_path, {}) or {}
        if st.get("stop_requested"):
            return False
        pol = self.cfg.get("restart") or {}
        name = pol.get("name", "no")
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure" and code != 0:
            limit = pol.get("maximum_retry_count", 0)
            return not limit or restarts < limit
        return False

    def sleep_serving(self, seconds: float) -> bool:
        """Serve clients for `seconds`; False when a stop was requested meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.poll_once(left)
            if (read_json(self.state_path, {}) or {}).get("stop_requested"):
                return False
        return True

    def serve_until_started(self) -> None:
        deadline = time.monotonic() + 60
        self.start_requested = False
        while not self.start_requested and time.monotonic() < deadline:
            self.poll_once(deadline - time.monotonic())

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
        try:
            events = p.poll(None if timeout is None else max(0, int(timeout * 1000)))
        except InterruptedError:
            events = []
        for fd, _ in events:
            if fd == self.wake_r:
                try:
                    os.read(self.wake_r, 512)
                except BlockingIOError:
                    pass
                self.reap()
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
        if self.health:
            self.health.tick()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.exited = os.waitstatus_to_exitcode(status)
                if self.exited < 0:
                    self.exited = 128 - self.exited
            elif self.health:
                self.health.on_exit(pid, os.waitstatus_to_exitcode(status))

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
            if c.req and c.req.get("stdin") and self.cfg.get("stdin_once"):
                self.close_stdin()
            c.close()
            return
        for kind, payload in c.reader.feed(data):
            if kind == stream.CONTROL:
                c.req = loads(payload)
                if c.req.get("start"):
                    self.start_requested = True
                if c.req.get("op") == "kill":
                    self.signal_init(int(c.req.get("signal", signal.SIGTERM)))
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
        import fcntl
        import struct
        import termios

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
        from runtime.linux.cgroups import oom_kills  # kernel files are runtime/linux's

        try:
            return oom_kills(self.cfg["cgroup"]) > 0
        except OSError:
            return False

    def finish(self, code: int) -> int:
        from runtime.linux.mount import umount_all_under

        self.log.close()
        umount_all_under(os.path.join(self.cfg["bundle"], "rootfs"))
        self.listener.close()
        for c in self.clients:
            c.close()
        try:
            os.unlink("attach.sock")
        except FileNotFoundError:
            pass
        self.wait_deleted()
        argv = self.cfg.get("cleanup_argv")
        if getattr(self, "removed_by_client", False):
            argv = None  # the attached `run --rm` destroys it (network included); `ps` repairs if it died
        elif argv and (read_json(self.state_path, {}) or {}).get("removing"):
            argv = None  # `rm -f` destroys it (network included) as soon as this process ends
        if argv:
            os.execv(argv[0], argv)
        return code


def _builtin_runtime(args: list[str], fds: tuple[int, int, int]) -> None:
    """In a forked child of the shim: the built-in runtime's command line (runtime.oci.cli.main),
    without exec'ing a new interpreter. Its imports stay in the child: the shim stays small."""
    rc = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.closerange(3, 1 << 16)  # the shim's listener, pipes and the engine's status fd stay out
        from runtime.oci.cli import main as runtime_main

        rc = runtime_main(args)
        sys.stdout.flush()
    except BaseException as e:  # noqa: BLE001 - never return into the shim's code
        try:
            os.write(2, f"wharf-runtime: {e!r}\n".encode())
        except OSError:
            pass
    os._exit(rc)


def _accept(listener: socket.socket) -> socket.socket:
    fd, _ = listener._accept()
    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)


def daemonize() -> None:
    if os.fork():
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def main(argv: list[str]) -> int:
    """argv: shim.py CONTAINER_DIR READY_FD WAIT_ATTACH [GO_FD]. With GO_FD the engine spawned the
    shim while it still prepares the bundle: one byte on GO_FD means go, EOF alone means cancelled."""
    cdir, ready_fd, wait_attach = argv[1], int(argv[2]), argv[3] == "1"
    from runtime.linux.prctl import set_child_subreaper

    if len(argv) > 4:
        go_fd = int(argv[4])
        go = os.read(go_fd, 1)
        os.close(go_fd)
        if not go:
            return 0
    cfg = read_json(os.path.join(cdir, "shim.json"))
    daemonize()
    set_child_subreaper()
    os.makedirs(cfg["run_dir"], exist_ok=True)
    os.chdir(cfg["run_dir"])
    try:
        return Shim(cfg, ready_fd, wait_attach).run()
    except Exception as e:  # last resort: never leave the engine waiting on READY_FD
        try:
            os.write(ready_fd, f"error:125:shim: {e!r}".encode())
        except OSError as e2:
            if e2.errno != errno.EBADF:
                raise
        raise

