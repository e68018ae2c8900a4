"""process.terminal: a pty from the container's own devpts, its master sent over --console-socket
(SCM_RIGHTS, as runc does) and its slave made the controlling terminal and stdio of the process."""

from __future__ import annotations

import fcntl
import os
import struct

from runtime.linux import mount as m

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414


def connect(path: str) -> int:
    """Connect to the console socket (in the runtime, before the container's root changes)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OSError(e.errno, f"--console-socket {path}: {e.strerror}") from None
    return s.detach()


def setup(sock_fd: int, size: dict | None) -> None:
    """In the container, after pivot_root: open the pty, hand over the master, adopt the slave."""
    import socket

    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    name = f"/dev/pts/{n}"
    slave = os.open(name, os.O_RDWR | os.O_NOCTTY)
    if size:
        fcntl.ioctl(master, TIOCSWINSZ, struct.pack("HHHH", size.get("height", 0), size.get("width", 0), 0, 0))
    if not os.path.exists("/dev/console"):
        os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    try:
        m.mount(name, "/dev/console", None, m.MS_BIND)
    except OSError:
        pass  # a read-only /dev: the console node is a convenience, the pty itself works
    s = socket.socket(fileno=sock_fd)
    try:
        socket.send_fds(s, [name.encode()], [master])
    finally:
        s.close()
        os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    fcntl.ioctl(0, TIOCSCTTY, 0)
