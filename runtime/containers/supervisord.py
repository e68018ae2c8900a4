"""The supervisor process: one per state root (WHARF_RUN), supervising all of its containers.

Started on demand by the engine (runtime/containers/supervision.py) through supervise.py;
daemonized (its own session), a child subreaper, listening on WHARF_RUN/supervisor.sock,
its pid in WHARF_RUN/supervisor.pid (flock'ed while it lives: one supervisor per root).

  - a client sends one CONTROL frame {"op": "start", "id", "dir", "wait_attach"} and gets
    one back: "ok" or "error:CODE:MSG" (CODE 125/126/127 as `docker run`); the connection's
    thread then becomes the container's shim thread (runtime/containers/supervisor.py).
    {"op": "ping"} -> {"pid", "containers"}; {"op": "restart"} -> "ok", then a hand-off.
  - the main thread is the one reaper (runtime/containers/reaper.py, SIGCHLD + waitpid(-1)).
  - cleanup after a container's exit (network release, --rm) runs in a forked child of this
    process with the engine's code imported once here: no new interpreter per container.
  - SIGHUP (or "restart") hands off: every shim parks at a safe point, their live state
    (fds without close-on-exec, phase, restart count, health, clients) goes to
    WHARF_RUN/supervisor.handoff and the process re-executes itself (`--adopt FILE`); the new
    image adopts everything: containers keep running and logging, clients stay connected.
  - it exits by itself when it has supervised nothing for IDLE_EXIT seconds, or when its
    socket was removed (its root was deleted: it kills what it still supervises first).
"""

from __future__ import annotations

import _signal as signal
import _socket as socket
import os
import sys
import threading
import time

from runtime.containers import stream
from runtime.containers.lean import atomic_write_json, dumps, loads, read_json
from runtime.containers.reaper import Reaper
from runtime.containers.supervisor import Shim, reset_signals
from runtime.linux.prctl import set_name

IDLE_EXIT = 3.0
TICK = 1.0
HANDOFF_WAIT = 10.0
THREAD_STACK = 512 * 1024
SUPERVISE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervise.py")


class Supervisor:
    def __init__(self, run_root: str) -> None:
        self.run_root = run_root
        self.sock_path = os.path.join(run_root, "supervisor.sock")
        self.pid_path = os.path.join(run_root, "supervisor.pid")
        self.reaper = Reaper()
        self.lock = threading.Lock()
        self.shims: dict[str, Shim] = {}
        self.handlers = 0  # connections being served that are not (yet) a shim
        self.last_active = time.monotonic()
        self.handing_off = False
        self.handoff_deadline = 0.0
        self.parked_shims: list = []  # shims and runs at their safe point
        self.runs: list[Run] = []
        self.stop_requested: set[str] = set()  # containers killed because the root went away
        self.orphaned = False
        self.pid_fd = -1
        self.listener: socket.socket | None = None
        self.sock_ino = 0
        self.primer = None  # runtime.linux.cgroups.MigrationPrimer, started by serve()

    # ------------------------------------------------------------ start-up
    def bind(self) -> None:
        import fcntl

        self.pid_fd = os.open(self.pid_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.pid_fd, fcntl.LOCK_EX)  # a predecessor still exiting: wait for it
        os.ftruncate(self.pid_fd, 0)
        os.pwrite(self.pid_fd, f"{os.getpid()}\n".encode(), 0)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC, 0)
        try:
            os.unlink(self.sock_path)
        except FileNotFoundError:
            pass
        path, dfd = stream.short_path(self.sock_path)
        try:
            self.listener.bind(path)
        finally:
            if dfd is not None:
                os.close(dfd)
        self.listener.listen(128)
        self.sock_ino = os.stat(self.sock_path).st_ino

    def adopt(self, path: str) -> None:
        """The state a previous image of this process handed off (its fds are still open here)."""
        saved = read_json(path)
        os.unlink(path)
        self.pid_fd = saved["pid_fd"]
        os.set_inheritable(self.pid_fd, False)
        os.set_inheritable(saved["listener"], False)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, saved["listener"])
        self.sock_ino = saved["sock_ino"]
        for s in saved["shims"]:
            shim = Shim.adopt(self, s)
            self.shims[shim.id] = shim
        for shim in list(self.shims.values()):
            threading.Thread(target=self._run_shim, args=(shim,), daemon=True).start()
        for saved_run in saved.get("runs", []):
            os.set_inheritable(saved_run["conn"], False)
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, saved_run["conn"])
            run = Run(conn, self.reaper.watch(saved_run["pid"], lambda w=w: _poke(w)), r, w)
            self.runs.append(run)
            threading.Thread(target=self._serve_run, args=(run,), daemon=True).start()

    # ------------------------------------------------------------ the main thread
    def serve(self) -> int:
        import faulthandler
        import select

        from runtime.linux.cgroups import MigrationPrimer

        faulthandler.register(signal.SIGUSR2, all_threads=True)  # kill -USR2: every thread's stack to the log
        self.primer = MigrationPrimer()  # (a thread: made here, before the first request)

        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        self.listener.setblocking(False)
        p = select.poll()
        p.register(wake_r, select.POLLIN)
        p.register(self.listener, select.POLLIN)
        self.reaper.reap()  # zombies that arrived while no image was running (a hand-off)
        last_tick = time.monotonic()
        listening = True
        while True:
            for fd, _ in p.poll(int(TICK * 1000)):
                if fd == wake_r:
                    try:
                        sigs = os.read(wake_r, 512)
                    except BlockingIOError:
                        sigs = b""
                    self.reaper.reap()
                    if signal.SIGUSR1 in sigs:  # a stop was requested: shims sleeping in back-off look
                        self.wake_all()
                    if signal.SIGHUP in sigs:
                        self.request_handoff()
                elif fd == self.listener.fileno() and not self.handing_off:
                    self.accept()
            if self.handing_off:
                if listening:
                    p.unregister(self.listener)  # new requests wait in the backlog for the next image
                    listening = False
                if self.ready_to_exec() or time.monotonic() > self.handoff_deadline:
                    self.exec_next()
            now = time.monotonic()
            if now - last_tick >= TICK:
                last_tick = now
                self.reaper.prune()
                if not self.orphaned and not self.socket_is_ours():
                    self.orphaned = True
                    with self.lock:
                        for shim in self.shims.values():
                            shim.kill_container()
                with self.lock:
                    idle = not self.shims and not self.handlers and not self.handing_off
                if idle and (self.orphaned or now - self.last_active >= IDLE_EXIT):
                    self.exit_if_idle()
                    return 0

    def socket_is_ours(self) -> bool:
        try:
            return os.stat(self.sock_path).st_ino == self.sock_ino
        except OSError:
            return False

    def exit_if_idle(self) -> None:
        """Stop listening and go. A client whose connection was still queued sees it reset without an
        answer: its request was not looked at, and it retries (with a new supervisor)."""
        if self.socket_is_ours():
            os.unlink(self.sock_path)
        self.listener.close()
        from runtime.linux.cgroups import remove_parent_if_unused

        remove_parent_if_unused()  # no container of this root is left in it; others' keep it busy

    def accept(self) -> None:
        fd, _ = self.listener._accept()  # BlockingIOError when nothing is queued
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
        with self.lock:
            self.handlers += 1
            self.last_active = time.monotonic()
        threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def wake_all(self) -> None:
        with self.lock:
            for shim in self.shims.values():
                shim.wake()
            for run in self.runs:
                _poke(run.w)

    # ------------------------------------------------------------ requests
    def handle(self, conn: socket.socket) -> None:
        counted = True
        fds: list[int] = []
        try:
            conn.settimeout(600)  # the engine connects first, then prepares the bundle, then asks
            req = _read_request(conn, fds)
            if req is None:
                return
            op = req.get("op")
            if op in ("start", "run"):  # the runtime will move the container's init between cgroups
                self.primer.kick()
            if op == "start":
                counted = False
                self.start(conn, req)
                return
            if op == "run" and len(fds) == 3:
                counted = False
                self.run_worker(conn, req, fds)
                return
            if op == "ping":
                with self.lock:
                    ids = sorted(self.shims)
                _reply(conn, dumps({"pid": os.getpid(), "containers": ids}))
            elif op == "restart":
                _reply(conn, "ok")
                os.kill(os.getpid(), signal.SIGHUP)
            else:
                _reply(conn, f"error:125:unknown supervisor request {op!r}")
        except OSError:
            pass
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            if counted:
                conn.close()
                with self.lock:
                    self.handlers -= 1
                    self.last_active = time.monotonic()

    def start(self, conn: socket.socket, req: dict) -> None:
        """Supervise container req["id"] in this thread; the reply goes out once it runs (or failed)."""
        cid = req["id"]
        replied = []

        def reply(msg: str) -> None:
            replied.append(msg)
            try:
                _reply(conn, msg)
            except OSError:
                pass
            conn.close()

        shim = None
        try:
            cfg = read_json(os.path.join(req["dir"], "shim.json"))
            os.makedirs(cfg["run_dir"], exist_ok=True)
            lock_fd = _lock_supervision(os.path.join(cfg["run_dir"], "supervise.lock"))
            try:
                shim = Shim(cfg, self, lock_fd, bool(req.get("wait_attach")), reply)
                shim.listen()
            except BaseException:
                if shim is None:
                    os.close(lock_fd)
                raise
            with self.lock:
                if cid in self.shims:
                    raise RuntimeError(f"container {cid[:12]} is already supervised")
                self.shims[cid] = shim
                self.handlers -= 1
        except Exception as e:  # noqa: BLE001 - the engine must get an answer
            with self.lock:
                self.handlers -= 1
            reply(f"error:125:supervisor: {e}")
            return
        self._run_shim(shim)

    def _run_shim(self, shim: Shim) -> None:
        shim.thread = threading.get_ident()
        try:
            shim.run()
        except Exception as e:  # noqa: BLE001 - one container's bug must not take the others down
            import traceback

            traceback.print_exc()
            shim.ready(f"error:125:supervisor: {e!r}")
            shim.abort(f"supervisor: {e!r}")
        finally:
            with self.lock:
                if self.shims.get(shim.id) is shim:
                    del self.shims[shim.id]
                self.stop_requested.discard(shim.id)
                self.last_active = time.monotonic()

    # ------------------------------------------------------------ `wharf run` workers
    def run_worker(self, conn: socket.socket, req: dict, fds: list[int]) -> None:
        """Fork a worker that does `wharf run ARGS` for the client (its stdio are `fds`), tell the
        client its pid, then its exit code; SIGKILL it if the client goes away (as if it had been it)."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            child = self.reaper.spawn(lambda: _fork_run(fds, req), notify=lambda: _poke(w))
        except BaseException:
            for fd in (r, w):
                os.close(fd)
            with self.lock:
                self.handlers -= 1
            conn.close()
            raise
        finally:
            for fd in fds:
                os.close(fd)
            fds.clear()
        run = Run(conn, child, r, w)
        with self.lock:
            self.handlers -= 1
            self.runs.append(run)
        try:
            _reply(conn, dumps({"pid": child.pid}))
        except OSError:
            pass
        self._serve_run(run)

    def _serve_run(self, run: Run) -> None:
        import select

        try:
            run.conn.setblocking(False)
            p = select.poll()
            p.register(run.r, select.POLLIN)
            p.register(run.conn, select.POLLIN)
            while not run.child.done.is_set():
                for fd, _ in p.poll():
                    if fd == run.r:
                        _drain(run.r)
                    elif not _recv_some(run.conn):  # the client is gone: so is its `run`
                        os.kill(run.child.pid, 9)
                        run.child.wait()
                        run.client_gone = True
                if self.handing_off and not run.child.done.is_set():
                    run.saved = {"conn": run.conn.fileno(), "pid": run.child.pid}
                    os.set_inheritable(run.conn.fileno(), True)
                    self.parked(run)
                    threading.Event().wait()  # the supervisor execs
            if not run.client_gone:
                run.conn.setblocking(True)
                _reply(run.conn, dumps({"exit": run.child.code}))
        except OSError:
            pass
        finally:
            run.conn.close()
            for fd in (run.r, run.w):
                os.close(fd)
            with self.lock:
                self.runs.remove(run)
                self.last_active = time.monotonic()

    # ------------------------------------------------------------ work done for the shims
    def cleanup(self, cid: str) -> None:
        """The engine's cleanup after exit (unmount, network release, --rm removal) in a forked child
        (which imports the engine's code itself: nothing is imported in this process's threads)."""
        child = self.reaper.spawn(lambda: _fork_cleanup(cid))
        child.wait()

    # ------------------------------------------------------------ hand-off
    def request_handoff(self) -> None:
        if self.handing_off:
            return
        self.handing_off = True
        self.handoff_deadline = time.monotonic() + HANDOFF_WAIT
        self.wake_all()

    def parked(self, what: Shim | Run) -> None:
        with self.lock:
            self.parked_shims.append(what)
        os.kill(os.getpid(), signal.SIGUSR1)  # the main thread re-checks

    def ready_to_exec(self) -> bool:
        with self.lock:
            return not self.handlers and all(s in self.parked_shims for s in [*self.shims.values(), *self.runs])

    def exec_next(self) -> None:
        self.reaper.paused = True  # from now on, exit statuses wait for the next image
        with self.lock:
            shims = [s for s in self.parked_shims if isinstance(s, Shim) and self.shims.get(s.id) is s]
            runs = [r.saved for r in self.parked_shims if isinstance(r, Run) and r in self.runs]
            lost = [s for s in self.shims.values() if s not in shims]
        if lost:
            import traceback

            frames = sys._current_frames()
            for s in lost:
                where = "".join(traceback.format_stack(frames[s.thread])) if s.thread in frames else "?"
                print(f"wharf supervisor: hand-off without container {s.id[:12]}, which did not park:\n{where}",
                      file=sys.stderr)
        saved = []
        for s in shims:
            st = dict(s.saved)
            if st["exited"] is None and s.init is not None and s.init.done.is_set():
                st["exited"] = s.init.code  # it ended after parking
            saved.append(st)
        os.set_inheritable(self.pid_fd, True)
        os.set_inheritable(self.listener.fileno(), True)
        path = os.path.join(self.run_root, "supervisor.handoff")
        atomic_write_json(path, {"pid_fd": self.pid_fd, "listener": self.listener.fileno(),
                                 "sock_ino": self.sock_ino, "shims": saved, "runs": runs})
        sys.stderr.flush()
        os.execv(sys.executable, [sys.executable, "-I", SUPERVISE, self.run_root, "--adopt", path])


class Run:
    """A `wharf run` worker and its client's connection."""

    def __init__(self, conn: socket.socket, child, r: int, w: int) -> None:
        self.conn, self.child, self.r, self.w = conn, child, r, w
        self.client_gone = False
        self.saved: dict = {}


def _poke(fd: int) -> None:
    try:
        os.write(fd, b"x")
    except OSError:
        pass


def _drain(fd: int) -> None:
    try:
        os.read(fd, 512)
    except BlockingIOError:
        pass


def _recv_some(conn: socket.socket) -> bool:
    """False when the peer closed the connection."""
    try:
        return bool(conn.recv(4096))
    except BlockingIOError:
        return True
    except OSError:
        return False


def _fork_run(fds: list[int], req: dict) -> int:
    """A worker for `wharf run`: the client's stdio, environment and directory, the engine's code
    already imported (preload_engine), then the same `run` the CLI would have done itself."""
    pid = os.fork()
    if pid:
        return pid
    rc = 125
    try:
        set_name("wharf-run")  # what ps/top show for this `wharf run`'s worker
        reset_signals()
        import _signal

        _signal.signal(_signal.SIGINT, _signal.default_int_handler)  # Ctrl-C as in the CLI
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        os.environ.clear()
        os.environ.update(req["env"])
        try:
            os.chdir(req["cwd"])
        except OSError:
            os.chdir("/")
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - fresh objects: the inherited ones' locks
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - may be held by a thread that is gone
        sys.stderr = open(2, "w", closefd=False, errors="backslashreplace")  # noqa: SIM115
        from runtime.cli.fast import run_in_worker

        try:
            rc = run_in_worker(req["args"])
        except KeyboardInterrupt:
            rc = 130
    except BaseException:  # noqa: BLE001 - a forked child never returns into the supervisor
        import traceback

        traceback.print_exc()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def _fork_cleanup(cid: str) -> int:
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            set_name("wharf-cleanup")
            reset_signals()
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # other containers' locks, pipes... are not its
            from runtime.containers.manager import LocalContainers
            from runtime.errors import WharfError

            try:
                LocalContainers().cleanup_after_exit(cid)
                rc = 0
            except WharfError as e:
                print(f"wharf cleanup of {cid[:12]}: {e}", file=sys.stderr)
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - a forked child never returns into the supervisor
            import traceback

            traceback.print_exc()
        os._exit(rc)
    return pid


def _lock_supervision(path: str) -> int:
    """The exclusive flock that says "supervised"; a reader probing with LOCK_SH|LOCK_NB may hold
    it for an instant, and a previous supervision of the same container may still clean up."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + 30
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise RuntimeError(f"{path} stays locked: another supervisor has this container") from None
            time.sleep(0.005)


def _read_request(conn: socket.socket, fds: list[int]) -> dict | None:
    """The one CONTROL frame a client opens with; fds passed along with it are added to `fds`."""
    reader = stream.FrameReader()
    while True:
        data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_LEN(3 * 4))
        for lvl, typ, raw in anc:
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds += [int.from_bytes(raw[i:i + 4], sys.byteorder) for i in range(0, len(raw) - 3, 4)]
        if not data:
            return None
        for kind, payload in reader.feed(data):
            if kind == stream.CONTROL:
                return loads(payload)


def _reply(conn: socket.socket, msg: str) -> None:
    conn.sendall(stream.frame(stream.CONTROL, msg.encode()))


def daemonize() -> None:
    if os.fork():
        os._exit(0)
    os.setsid()


def preload() -> None:
    """Everything the shim threads and the forked children (built-in runtime, health probes) use,
    imported before any thread starts. A fork copies only the forking thread: had another thread
    been importing a module at that moment, its module lock would stay taken in the child forever,
    and the child would hang at its first import of that module. So no thread ever imports."""
    import faulthandler  # noqa: F401
    import fcntl  # noqa: F401
    import json  # noqa: F401
    import struct  # noqa: F401
    import subprocess  # noqa: F401 - OCI poststart/poststop hooks run from shim threads
    import termios  # noqa: F401
    import traceback  # noqa: F401
    import warnings  # noqa: F401

    import runtime.containers.health  # noqa: F401
    import runtime.containers.nsexec  # noqa: F401 - health probes fork exec helpers
    import runtime.linux.cgroups  # noqa: F401
    import runtime.linux.mount  # noqa: F401
    import runtime.linux.mount_desc  # noqa: F401
    import runtime.linux.ns  # noqa: F401
    import runtime.oci.cli  # noqa: F401
    import runtime.oci.console  # noqa: F401
    from runtime.linux.cgroups import freezer, fs, manager, misc, v1, v2  # noqa: F401
    from runtime.oci import create, hooks, init, lifecycle, spec, state  # noqa: F401 - what create/start/delete use

    runtime.containers.nsexec.preload()  # seccomp (libseccomp dlopen), caps, rlimits, paths


def preload_engine() -> None:
    """What a `wharf run` worker needs (so that it starts with nothing left to import), imported by
    the main thread before it serves. Threads never import (see preload): a worker may still
    import what is missing here, only more slowly."""
    import select  # noqa: F401
    import signal  # noqa: F401
    import socket  # noqa: F401

    import runtime.cli.fast  # noqa: F401
    import runtime.cli.run_flags  # noqa: F401
    import runtime.containers.attach  # noqa: F401
    import runtime.containers.bundle  # noqa: F401
    import runtime.containers.flags  # noqa: F401
    import runtime.containers.imagesrc  # noqa: F401
    import runtime.containers.manager  # noqa: F401
    import runtime.containers.users  # noqa: F401
    import runtime.images.store  # noqa: F401
    import runtime.network.manager  # noqa: F401
    import runtime.util.events  # noqa: F401 - the volume unmount events of a shim's finish
    import runtime.util.fs  # noqa: F401
    import runtime.volumes.store  # noqa: F401


def main(argv: list[str]) -> int:
    """supervise.py RUN_ROOT [READY_FD]  |  supervise.py RUN_ROOT --adopt FILE (a hand-off)."""
    from runtime.linux.prctl import set_child_subreaper

    run_root = argv[1]
    preload()
    threading.stack_size(THREAD_STACK)
    sup = Supervisor(run_root)
    if len(argv) > 3 and argv[2] == "--adopt":
        set_child_subreaper()
        set_name("wharf-supervise")
        preload_engine()
        sup.adopt(argv[3])
        return sup.serve()
    ready_fd = int(argv[2]) if len(argv) > 2 else -1
    daemonize()
    set_child_subreaper()
    set_name("wharf-supervise")  # ps/top: the supervisor, its workers "wharf-run", runtimes "wharf-runtime"
    os.makedirs(run_root, exist_ok=True)
    log = os.open(os.path.join(run_root, "supervisor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    try:
        sup.bind()
    except Exception as e:
        if ready_fd >= 0:
            os.write(ready_fd, f"error:125:supervisor: {e}".encode())
        raise
    if ready_fd >= 0:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    preload_engine()  # clients queue meanwhile
    return sup.serve()
