"""The create-time channel between the runtime (parent) and the container's processes.

Two pipes carry one line per protocol step; method names say the step. The child side
is inherited through fork, so the intermediate process and the init share it.
"""

from __future__ import annotations

import os


class Channel:
    def __init__(self) -> None:
        self.to_parent = os.pipe2(os.O_CLOEXEC)   # (r, w)
        self.to_child = os.pipe2(os.O_CLOEXEC)
        self._buf = b""

    def as_parent(self) -> Channel:
        os.close(self.to_parent[1])
        os.close(self.to_child[0])
        self.rfd, self.wfd = self.to_parent[0], self.to_child[1]
        return self

    def as_child(self) -> Channel:
        os.close(self.to_parent[0])
        os.close(self.to_child[1])
        self.rfd, self.wfd = self.to_child[0], self.to_parent[1]
        return self

    def send(self, kind: str, arg: str = "") -> None:
        line = f"{kind} {arg}".rstrip().replace("\n", " ") + "\n"
        os.write(self.wfd, line.encode())

    def recv(self) -> tuple[str, str]:
        """Next (kind, arg); ("eof", "") when the other side is gone."""
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 65536)
            if not chunk:
                return "eof", ""
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        kind, _, arg = line.decode().partition(" ")
        return kind, arg

    def expect(self, kind: str) -> str:
        got, arg = self.recv()
        if got != kind:
            raise ConnectionError(f"runtime went away (expected {kind!r}, got {got!r})")
        return arg

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass
