"""Namespaces: unshare(2), setns(2) and the CLONE_* flags, named as the OCI runtime-spec names them."""

from __future__ import annotations

import ctypes
import os

from runtime.linux.libc import check, libc

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
_AF_INET, _SOCK_DGRAM, _SOCK_CLOEXEC = 2, 2, 0o2000000

# OCI runtime-spec linux.namespaces[].type -> clone flag
FLAGS: dict[str, int] = {
    "pid": CLONE_NEWPID,
    "network": CLONE_NEWNET,
    "mount": CLONE_NEWNS,
    "ipc": CLONE_NEWIPC,
    "uts": CLONE_NEWUTS,
    "user": CLONE_NEWUSER,
    "cgroup": CLONE_NEWCGROUP,
    "time": CLONE_NEWTIME,
}
# OCI type -> name under /proc/<pid>/ns/
PROC_NAMES: dict[str, str] = {
    "pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
    "user": "user", "cgroup": "cgroup", "time": "time",
}


def unshare(flags: int) -> None:
    """Move the calling process into new namespaces (CLONE_NEWPID only affects children)."""
    check(libc.unshare(flags), f"unshare(0x{flags:x})")


def setns(fd_or_path: int | str | os.PathLike[str], nstype: int = 0) -> None:
    """Join the namespace behind an open fd or a path such as /proc/PID/ns/net or a bind-mounted file."""
    if isinstance(fd_or_path, int):
        check(libc.setns(fd_or_path, nstype), f"setns(fd {fd_or_path})")
        return
    path = os.fspath(fd_or_path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        check(libc.setns(fd, nstype), f"setns({path})", path)
    finally:
        os.close(fd)


def loopback_up() -> None:
    """Bring `lo` of the caller's network namespace up (SIOCSIFFLAGS), as runc does for a netns it creates.

    Plain libc calls: this runs in a new user namespace too, where Python may not import more modules."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    ifreq = ctypes.create_string_buffer(b"lo", 40)  # struct ifreq: name[16], then short ifr_flags
    fd = check(libc.socket(_AF_INET, _SOCK_DGRAM | _SOCK_CLOEXEC, 0), "socket(AF_INET)")
    try:
        check(libc.ioctl(fd, siocgifflags, ifreq), "ioctl(lo, SIOCGIFFLAGS)")
        flags = int.from_bytes(ifreq.raw[16:18], "little")
        if not flags & iff_up:
            ifreq[16:18] = (flags | iff_up).to_bytes(2, "little")
            check(libc.ioctl(fd, siocsifflags, ifreq), "ioctl(lo, SIOCSIFFLAGS)")
    finally:
        os.close(fd)


def same(pid: int, kind: str) -> bool:
    """Whether process `pid` shares namespace `kind` (OCI type) with the caller."""
    name = PROC_NAMES[kind]
    return os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/self/ns/{name}")
