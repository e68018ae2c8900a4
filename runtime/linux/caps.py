"""Capabilities: names, capget/capset (effective, permitted, inheritable), bounding and ambient sets."""

from __future__ import annotations

import ctypes

from runtime.linux import prctl
from runtime.linux.libc import check, libc

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: i for i, name in enumerate(NAMES)}

# Docker's default set (moby oci/caps/defaults.go)
DOCKER_DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]

_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_last_cap: list[int] = []


def last_cap() -> int:
    """The highest capability this kernel knows (read once per process)."""
    if not _last_cap:
        try:
            with open("/proc/sys/kernel/cap_last_cap") as f:
                _last_cap.append(int(f.read()))
        except OSError:
            _last_cap.append(len(NAMES) - 1)
    return _last_cap[0]


def number(name: str) -> int:
    """CAP_SYS_ADMIN (or SYS_ADMIN) -> 21; ValueError naming unknown capabilities."""
    key = name.upper()
    if not key.startswith("CAP_"):
        key = "CAP_" + key
    if key not in NUMBERS:
        raise ValueError(f"unknown capability {name!r}")
    return NUMBERS[key]


def mask(names: list[str] | None) -> int:
    m = 0
    for n in names or ():
        c = number(n)
        if c <= last_cap():
            m |= 1 << c
    return m


def names(m: int) -> list[str]:
    return [NAMES[i] for i in range(len(NAMES)) if m >> i & 1]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) bit masks of `pid` (0: the caller)."""
    hdr = _Header(_VERSION_3, pid)
    data = (_Data * 2)()
    check(libc.capget(ctypes.byref(hdr), data), "capget")
    def join(f: str) -> int:
        return getattr(data[0], f) | getattr(data[1], f) << 32

    return join("effective"), join("permitted"), join("inheritable")


def capset(effective: int, permitted: int, inheritable: int) -> None:
    hdr = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    for i in (0, 1):
        sh = 32 * i
        data[i].effective = effective >> sh & 0xFFFFFFFF
        data[i].permitted = permitted >> sh & 0xFFFFFFFF
        data[i].inheritable = inheritable >> sh & 0xFFFFFFFF
    check(libc.capset(ctypes.byref(hdr), data), "capset")


def drop_bounding(keep: int) -> None:
    """Drop every capability not in `keep` from the bounding set (needs CAP_SETPCAP)."""
    for c in range(last_cap() + 1):
        if not keep >> c & 1:
            prctl.capbset_drop(c)


def raise_ambient(m: int) -> None:
    for c in range(last_cap() + 1):
        if m >> c & 1:
            prctl.ambient_raise(c)


def apply(bounding: list[str] | None, effective: list[str] | None, permitted: list[str] | None,
          inheritable: list[str] | None, ambient: list[str] | None) -> None:
    """Set all five sets as an OCI process.capabilities object asks (after the user switch)."""
    drop_bounding(mask(bounding))
    capset(mask(effective), mask(permitted), mask(inheritable))
    if ambient:
        raise_ambient(mask(ambient))
