"""The client end of attach: pump the user's terminal <-> the shim's socket.

-t puts the local terminal in raw mode and forwards window-size changes (SIGWINCH);
Ctrl-P Ctrl-Q detaches; without a tty, SIGINT/SIGTERM are proxied to the container.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

from runtime.containers import stream

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
DETACHED = -1


def terminal_size(fd: int = 0) -> str | None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return f"{size.lines} {size.columns}"


def pump(sock: socket.socket, stdin: bool, tty: bool, sig_proxy: bool = True,
         out=None, err=None) -> int | None:
    """Until the container exits (its exit code), the user detaches (DETACHED) or the shim goes (None)."""
    out = out or sys.stdout.buffer
    err = err or sys.stderr.buffer
    in_fd = sys.stdin.fileno() if stdin else -1
    saved = None
    if tty and in_fd >= 0 and os.isatty(in_fd):
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(in_fd)
        ttymod.setraw(in_fd, termios.TCSANOW)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w)
    handlers = {}

    def on_signal(signum, _frame):
        pass

    sigs = [signal.SIGWINCH] + ([signal.SIGINT, signal.SIGTERM, signal.SIGHUP] if sig_proxy and not tty else [])
    for s in sigs:
        handlers[s] = signal.signal(s, on_signal)
    if tty:
        size = terminal_size(in_fd if in_fd >= 0 else 1)
        if size:
            sock.sendall(stream.frame(stream.RESIZE, size.encode()))
    reader = stream.FrameReader()
    pending = b""
    try:
        while True:
            fds = [sock, wake_r] + ([in_fd] if in_fd >= 0 else [])
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if wake_r in ready:
                for signum in os.read(wake_r, 64):
                    if signum == signal.SIGWINCH and tty:
                        size = terminal_size(in_fd if in_fd >= 0 else 1)
                        if size:
                            sock.sendall(stream.frame(stream.RESIZE, size.encode()))
                    elif signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                        sock.sendall(stream.frame(stream.CONTROL,
                                                  json.dumps({"op": "kill", "signal": signum}).encode()))
            if in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    sock.sendall(stream.frame(stream.STDIN_EOF, b""))
                    in_fd = -1
                else:
                    data = pending + data
                    pending = b""
                    if tty or stdin:
                        idx = data.find(DETACH_KEYS)
                        if idx >= 0:
                            if idx:
                                sock.sendall(stream.frame(stream.STDIN, data[:idx]))
                            return DETACHED
                        if data.endswith(DETACH_KEYS[:1]):
                            data, pending = data[:-1], data[-1:]
                    if data:
                        sock.sendall(stream.frame(stream.STDIN, data))
            if sock in ready:
                chunk = sock.recv(65536)
                if not chunk:
                    return None
                for kind, payload in reader.feed(chunk):
                    if kind == stream.STDOUT:
                        out.write(payload)
                        out.flush()
                    elif kind == stream.STDERR:
                        err.write(payload)
                        err.flush()
                    elif kind == stream.EXIT:
                        return int(payload)
    finally:
        if saved is not None:
            import termios

            termios.tcsetattr(in_fd if in_fd >= 0 else sys.stdin.fileno(), termios.TCSADRAIN, saved)
        for s, h in handlers.items():
            signal.signal(s, h)
        signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
