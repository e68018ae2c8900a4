"""mount(2), umount2(2) and the flags Wharf uses; everything that mounts comes through here."""

from __future__ import annotations

import ctypes
import os

from runtime.linux.libc import check, libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.mount_desc import Mount  # noqa: F401

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2

libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _b(s: str | os.PathLike[str] | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str | None, target: str | os.PathLike[str], fstype: str | None = None,
          flags: int = 0, data: str | None = None) -> None:
    check(libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)),
          f"mount {fstype or ''} {source or ''} on {os.fspath(target)}", os.fspath(target))


def umount(target: str | os.PathLike[str], flags: int = 0) -> None:
    check(libc.umount2(_b(target), flags), f"umount {os.fspath(target)}", os.fspath(target))


def __getattr__(name: str) -> object:
    # Mount is a dataclass; `dataclasses` costs the runtime's hot path ~10 ms, so load it on use
    if name == "Mount":
        from runtime.linux.mount_desc import Mount

        return Mount
    raise AttributeError(name)


def mountpoints() -> list[str]:
    """Mount points from /proc/self/mountinfo (octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            raw = line.split()[4].decode()
            points.append(raw.encode().decode("unicode_escape") if "\\" in raw else raw)
    return points


def is_mountpoint(path: str | os.PathLike[str]) -> bool:
    return os.path.realpath(path) in mountpoints()


def umount_all_under(path: str | os.PathLike[str]) -> None:
    """Lazily unmount every mount at or below `path`, deepest first (crash repair)."""
    base = os.path.realpath(path)
    for p in sorted((m for m in mountpoints() if m == base or m.startswith(base + "/")),
                    key=len, reverse=True):
        try:
            umount(p, MNT_DETACH)
        except OSError:
            pass


_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}


def pivot_root(new_root: str | os.PathLike[str], put_old: str | os.PathLike[str]) -> None:
    """pivot_root(2) (glibc has no wrapper): `new_root` becomes / and the old root moves to `put_old`."""
    nr = _SYS_PIVOT_ROOT[os.uname().machine]
    check(libc.syscall(nr, _b(new_root), _b(put_old)), f"pivot_root {os.fspath(new_root)}",
          os.fspath(new_root))


def make_propagation(target: str | os.PathLike[str], kind: int, recursive: bool = True) -> None:
    """Change mount propagation: kind is MS_PRIVATE, MS_SLAVE, MS_SHARED or MS_UNBINDABLE."""
    mount(None, target, None, kind | (MS_REC if recursive else 0))
