"""Attach and wait over the API: the hijacked client <-> the container's supervisor (shim).

The shim speaks Docker's multiplexed framing already (runtime/containers/stream.py), so a
non-tty attach forwards STDOUT/STDERR frames as they are; a tty attach sends raw bytes.

`docker run` attaches and asks for `wait?condition=next-exit` *before* it starts the
container. Those requests park here (Pending); `start` then launches the container held
at the start line (LocalContainers.start(wait_attach=True)), connects every parked
request to the shim, and lets it go, so no output and no exit code is missed — not even
for `run --rm busybox true`.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from runtime.containers import stream

RUNNING = ("running", "paused", "restarting")


@dataclass
class Parked:
    request: dict
    ready: threading.Event = field(default_factory=threading.Event)
    sock: socket.socket | None = None
    error: str = ""
    cancelled: bool = False


class Pending:
    """Requests waiting for a container to start (per container id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.parked: dict[str, list[Parked]] = {}
        self.start_locks: dict[str, threading.Lock] = {}

    def park(self, cid: str, request: dict) -> Parked:
        p = Parked(request)
        with self.lock:
            self.parked.setdefault(cid, []).append(p)
        return p

    def unpark(self, cid: str, p: Parked) -> None:
        with self.lock:
            lst = self.parked.get(cid, [])
            if p in lst:
                lst.remove(p)
            if not lst:
                self.parked.pop(cid, None)

    def take(self, cid: str) -> list[Parked]:
        with self.lock:
            return self.parked.pop(cid, [])

    def start_lock(self, cid: str) -> threading.Lock:
        with self.lock:
            return self.start_locks.setdefault(cid, threading.Lock())


PENDING = Pending()


def start(engine, cid: str) -> bool:
    """Start a container, handing the shim to parked attach/wait requests. False: it already ran."""
    cs = engine.containers
    with PENDING.start_lock(cid):
        info = cs.inspect(cid)
        if info.state.status in RUNNING:
            return False
        parked = PENDING.take(cid)
        if not parked:
            cs.start(cid)
            return True
        try:
            cs.start(cid, wait_attach=True)
        except Exception as e:
            for p in parked:
                p.error = getattr(e, "message", str(e))
                p.ready.set()
            raise
        # wait requests first, attach requests last: the last one carries "start"
        parked.sort(key=lambda p: p.request.get("op") == "attach")
        for i, p in enumerate(parked):
            req = dict(p.request)
            if i == len(parked) - 1:
                req["start"] = True
            try:
                p.sock = stream.connect(cs.store.run_dir(cid) / "attach.sock", req)
            except OSError as e:
                p.error = f"cannot reach the supervisor of {cid[:12]}: {e}"
            p.ready.set()
        # the supervisor lets the container go when it reads "start": answer once it has (as dockerd
        # does), so an inspect or attach right after `docker run -d` (which also parks a wait) sees it running
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and cs.store.dir(cid).exists() \
                and cs.store.load_state(cid).get("status") == "created":
            time.sleep(0.002)
        return True


def connect_running(engine, cid: str, request: dict) -> socket.socket | None:
    cs = engine.containers
    try:
        return stream.connect(cs.store.run_dir(cid) / "attach.sock", request)
    except OSError:
        return None


def wait_for_shim(engine, cid: str, request: dict, gone, timeout: float | None = None,
                  parked: Parked | None = None) -> socket.socket | None:
    """A shim connection for `request` once the container runs (parked, or started elsewhere).
    Park first (`parked`, from PENDING.park) when the client may send `start` as soon as it has
    the response head: a start that comes before the park would leave this waiting forever."""
    from runtime.containers.store import shim_alive

    cs = engine.containers
    p = parked or PENDING.park(cid, request)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not p.ready.wait(0.1):
            if gone():
                p.cancelled = True
                return None
            if deadline is not None and time.monotonic() > deadline:
                return None
            if not cs.store.dir(cid).exists():
                return None  # removed meanwhile (e.g. --rm after a start that did not see this request)
            try:
                st = cs.store.load_state(cid)
            except Exception:  # noqa: BLE001 - removed meanwhile
                return None
            if st.get("status") in RUNNING and shim_alive(st) and not PENDING.start_lock(cid).locked():
                sock = connect_running(engine, cid, request)
                if sock is not None:
                    return sock
        if p.error:
            return None
        return p.sock
    finally:
        PENDING.unpark(cid, p)


def pump(shim: socket.socket, client: socket.socket, reader, stdin: bool, tty: bool) -> int | None:
    """Copy until the container exits (its code), either side leaves (None)."""
    done = threading.Event()

    def from_client() -> None:
        try:
            while not done.is_set():
                data = reader.read1(65536)
                if not data:
                    if stdin and not tty:
                        shim.sendall(stream.frame(stream.STDIN_EOF, b""))
                    elif stdin:  # a tty client left (detach keys): end the attach, as dockerd keeps a tty's stdin open
                        shim.shutdown(socket.SHUT_RDWR)
                    return
                if stdin:
                    shim.sendall(stream.frame(stream.STDIN, data))
        except (OSError, ValueError):
            return

    t = threading.Thread(target=from_client, daemon=True)
    t.start()
    fr = stream.FrameReader()
    code = None
    try:
        while code is None:
            chunk = shim.recv(65536)
            if not chunk:
                break
            for kind, payload in fr.feed(chunk):
                if kind in (stream.STDOUT, stream.STDERR):
                    client.sendall(payload if tty else stream.frame(kind, payload))
                elif kind == stream.EXIT:
                    code = int(payload)
    except OSError:
        pass
    finally:
        done.set()
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        shim.close()
        t.join(5)
    return code


def read_exit(sock: socket.socket) -> int | None:
    """Block until the shim reports the exit code on a wait connection."""
    try:
        with sock:
            while True:
                kind, payload = stream.recv_frame(sock)
                if kind == stream.EXIT:
                    return int(payload)
    except (EOFError, OSError, ValueError):
        return None
