"""The shim's socket protocol (stdlib only: the shim imports it).

Every message both ways is a frame: 1 byte stream, 3 zero bytes, 4 bytes big-endian
length, payload (Docker's multiplexed stream header). A client opens with one
CONTROL frame holding a JSON request: {"op": "attach", "stdin": bool, "start": bool}
or {"op": "wait"}. The shim then sends STDOUT/STDERR frames and, when the container
exits, one EXIT frame whose payload is the exit code in ASCII. The client sends
STDIN, STDIN_EOF and RESIZE ("rows cols") frames.

Unix socket paths are limited to 108 bytes, so long paths go through /proc/self/fd.
"""

from __future__ import annotations

import os
import struct

STDIN, STDOUT, STDERR, EXIT, RESIZE, STDIN_EOF, CONTROL = 0, 1, 2, 3, 4, 5, 6
_HDR = struct.Struct(">BxxxI")
HEADER_SIZE = _HDR.size


def frame(stream: int, payload: bytes) -> bytes:
    return _HDR.pack(stream, len(payload)) + payload


def parse_header(hdr: bytes) -> tuple[int, int]:
    return _HDR.unpack(hdr)


class FrameReader:
    """Incremental decoder: feed bytes, get complete (stream, payload) frames."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while len(self.buf) >= HEADER_SIZE:
            stream, size = _HDR.unpack_from(self.buf)
            if len(self.buf) < HEADER_SIZE + size:
                break
            out.append((stream, self.buf[HEADER_SIZE:HEADER_SIZE + size]))
            self.buf = self.buf[HEADER_SIZE + size:]
        return out


def recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return buf


def recv_frame(sock) -> tuple[int, bytes]:
    stream, size = parse_header(recv_exact(sock, HEADER_SIZE))
    return stream, recv_exact(sock, size) if size else b""


def short_path(path: str | os.PathLike[str]) -> tuple[str, int | None]:
    """A path usable for bind/connect, plus a dir fd to close afterwards (or None)."""
    path = os.fspath(path)
    if len(path.encode()) < 100:
        return path, None
    dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    return f"/proc/self/fd/{dfd}/{os.path.basename(path)}", dfd


def connect(path: str | os.PathLike[str], request: dict):
    """A client socket to a shim, the request sent (json/socket imported here: the shim never needs them)."""
    import json
    import socket

    p, dfd = short_path(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(p)
    except OSError:
        s.close()
        raise
    finally:
        if dfd is not None:
            os.close(dfd)
    s.sendall(frame(CONTROL, json.dumps(request).encode()))
    return s
