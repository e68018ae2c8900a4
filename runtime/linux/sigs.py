"""Signal state a container's process starts with: every disposition default, nothing blocked.

A process inherits ignored signals and the signal mask across execve. Ours descend from Python
processes, which ignore SIGPIPE and SIGXFSZ: without a reset, `yes | head -1` in a container
prints "Broken pipe" instead of dying quietly, as it does under Docker (whose containers start
with SigIgn and SigBlk all zero). The reset uses the raw syscall, which also reaches the signals
glibc keeps for itself (32, 33), which it may have left ignored.
"""

from __future__ import annotations

import ctypes
import os

from runtime.linux.libc import libc

SYSCALLS = {"x86_64": (13, 14), "aarch64": (134, 135)}  # rt_sigaction, rt_sigprocmask
SIG_SETMASK = 2
NSIG = 64
SIGKILL, SIGSTOP = 9, 19


def defaults_for_exec() -> None:
    """Right before execve: SIG_DFL for every signal, an empty signal mask. (Handlers are reset by
    execve itself; ignored signals and the mask are not.)"""
    nrs = SYSCALLS.get(os.uname().machine)
    if nrs is None:  # elsewhere: what Python can reach (not glibc's own 32 and 33)
        import signal

        for sig in signal.valid_signals():
            if sig not in (SIGKILL, SIGSTOP):
                signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        return
    sigaction, sigprocmask = (ctypes.c_long(n) for n in nrs)
    act = ctypes.create_string_buffer(32)  # struct kernel_sigaction zeroed: handler SIG_DFL, no flags, empty mask
    size = ctypes.c_long(8)
    for sig in range(1, NSIG + 1):
        if sig not in (SIGKILL, SIGSTOP):
            libc.syscall(sigaction, ctypes.c_long(sig), act, None, size)
    empty = ctypes.c_uint64(0)
    libc.syscall(sigprocmask, ctypes.c_long(SIG_SETMASK), ctypes.byref(empty), None, size)
