"""The C library, loaded once, and errno -> OSError."""

from __future__ import annotations

import ctypes
import os

try:  # the common name first: find_library runs `ldconfig -p`, which costs milliseconds
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # pragma: no cover - non-glibc systems
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def check(ret: int, what: str, path: str | None = None) -> int:
    """Raise OSError(errno) naming `what` when a libc call returned -1."""
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret
