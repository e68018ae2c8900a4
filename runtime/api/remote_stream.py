"""The client end of Docker's hijacked connections (attach, exec start): RemoteEngine's streams.

`hijack()` sends one request with `Connection: Upgrade` / `Upgrade: tcp` on a fresh connection
and returns the raw socket once the engine answers 101 (or 200), as the docker CLI does.
`pump()` then copies the user's terminal to it and its output back: raw bytes with a tty,
Docker's multiplexed frames (8-byte header: stream, 0, 0, 0, big-endian size) without one.
With a terminal on stdin it watches for the detach keys (Ctrl-P Ctrl-Q) itself, as the
docker CLI does, and passes them on as `detachKeys` so engines that detach server-side agree.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # on `wharf --host ... run`'s fast path: no typing import at run time
    from collections.abc import Callable
    from typing import Any

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
DETACHED = "detached"


def parse_detach_keys(spec: str) -> bytes:
    """Docker's `--detach-keys` syntax ("ctrl-p,ctrl-q", "a,ctrl-@") -> the byte sequence."""
    from runtime.errors import InvalidArgument

    out = bytearray()
    for key in spec.split(","):
        k = key.strip().lower()
        if len(k) == 1:
            out.append(ord(k))
        elif k.startswith("ctrl-") and len(k) == 6 and (k[5].isalpha() or k[5] in "@[\\]^_"):
            out.append(ord(k[5].upper()) & 0x1F)
        else:
            raise InvalidArgument(f"invalid detach key {key!r}", hint="use e.g. ctrl-p,ctrl-q or a single character")
    return bytes(out)


def hijack(client, path: str, query: dict[str, Any] | None = None, body: Any = None,
           what: str = "") -> tuple[socket.socket, bytes]:
    """POST `path` with the upgrade headers; (the raw socket, bytes already read past the head)."""
    import json

    from runtime.api.remote_http import error as _error
    from runtime.api.remote_http import query_string
    from runtime.errors import RuntimeFailure

    sock = client.raw_socket()
    url = client.prefix() + path + query_string(query)
    data = b"" if body is None else json.dumps(body).encode()
    head = (f"POST {url} HTTP/1.1\r\nHost: docker\r\nUser-Agent: wharf\r\nConnection: Upgrade\r\n"
            f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
    try:
        sock.sendall(head.encode() + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeFailure(f"{what or path}: the engine at {client.host} closed the connection")
            buf += chunk
            if len(buf) > 65536:
                raise RuntimeFailure(f"{what or path}: the engine sent an oversized response head")
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"{what or path}: {e}") from None
    except BaseException:
        sock.close()
        raise
    raw_head, _, rest = buf.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        sock.close()
        raise RuntimeFailure(f"{what or path}: bad response from the engine: {lines[0][:80]!r}") from None
    if status >= 300:
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = int(headers.get("content-length") or 0)
        try:
            while len(rest) < want and (chunk := sock.recv(65536)):
                rest += chunk
        except OSError:
            pass
        sock.close()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            rest = _unchunk(rest)
        raise _error(status, rest, what)
    return sock, rest


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        try:
            n = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def terminal_size(fd: int) -> tuple[int, int] | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return b""


def pump(sock: socket.socket, first: bytes, stdin: bool, tty: bool,
         resize: Callable[[int, int], None] | None = None, signal_to: Callable[[int], None] | None = None,
         detach_keys: bytes = DETACH_KEYS, out=None, err=None) -> str | None:
    """Copy stdin -> sock and sock -> stdout/stderr until the engine ends the stream (None)
    or the user types the detach keys (DETACHED). `resize(rows, cols)` runs at once and on
    SIGWINCH when tty; `signal_to(signum)` forwards SIGINT/SIGTERM/SIGHUP without a tty."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    in_fd = 0 if stdin else -1
    is_term = in_fd >= 0 and os.isatty(in_fd)
    watch_keys = bool(detach_keys) and is_term
    saved = None
    if tty and is_term:
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd, termios.TCSANOW)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w)
    handlers = {}
    sigs = [signal.SIGWINCH] if tty else []
    if signal_to and not tty:
        sigs += [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    for s in sigs:
        handlers[s] = signal.signal(s, lambda *_: None)
    size_fd = 0 if os.isatty(0) else 1

    def send_size(tries: int = 1) -> None:
        size = terminal_size(size_fd)
        for i in range(tries if size and resize else 0):
            try:
                resize(*size)
                return
            except Exception:  # noqa: BLE001 - a resize that races the start or the exit is not an error
                if i + 1 < tries:
                    import time

                    time.sleep(0.02 * (i + 1))

    from runtime.containers.stream import FrameReader  # Docker's multiplexed framing (stdlib only)

    demux = None if tty else FrameReader()

    def emit(data: bytes) -> None:
        if demux is None:
            out.write(data)
            out.flush()
            return
        for kind, payload in demux.feed(data):
            w = err if kind == 2 else out
            w.write(payload)
            w.flush()

    pending = b""
    try:
        if tty:
            send_size(tries=8)  # as the docker CLI: the engine may not report the container running yet
        if first:
            emit(first)
        while True:
            fds = [sock, wake_r] + ([in_fd] if in_fd >= 0 else [])
            if getattr(sock, "pending", None) and sock.pending():  # TLS: bytes already decrypted
                ready = [sock]
            else:
                try:
                    ready, _, _ = select.select(fds, [], [])
                except InterruptedError:
                    continue
            if wake_r in ready:
                for signum in os.read(wake_r, 64):
                    if signum == signal.SIGWINCH:
                        send_size()
                    elif signal_to is not None:
                        signal_to(signum)
            if in_fd >= 0 and in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    in_fd = -1
                    if not hasattr(sock, "unwrap"):  # TLS cannot half-close here: the engine keeps stdin open
                        try:
                            sock.shutdown(socket.SHUT_WR)  # docker's CloseWrite: stdin ended
                        except OSError:
                            pass
                else:
                    data = pending + data
                    pending = b""
                    if watch_keys:
                        idx = data.find(detach_keys)
                        if idx >= 0:
                            if idx:
                                sock.sendall(data[:idx])
                            return DETACHED
                        for n in range(len(detach_keys) - 1, 0, -1):
                            if data.endswith(detach_keys[:n]):
                                data, pending = data[:-n], data[-n:]
                                break
                    if data:
                        try:
                            sock.sendall(data)
                        except OSError:
                            in_fd = -1
            if sock in ready:
                chunk = _recv(sock)
                if not chunk:
                    return None
                emit(chunk)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        for s, h in handlers.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
        sock.close()
