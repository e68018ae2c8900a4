"""Helper processes of the network area (DNS daemon, userland proxies): identify, stop, wait."""

from __future__ import annotations

import contextlib
import os
import signal
import time


def cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def find(module: bytes, arg: bytes) -> list[int]:
    """Pids of `python -m <module> ...` processes with `arg` among their arguments."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            cmd = cmdline(int(name))
            if module in cmd and arg in cmd:
                out.append(int(name))
    return out


def alive(pid: int) -> bool:
    """Whether pid runs (reaping it when it is our own exited child)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop(pid: int, module: bytes, sig: int = signal.SIGTERM, timeout: float = 5) -> None:
    """Send sig to pid if it still runs `python -m <module>`, and wait until it is gone."""
    if module not in cmdline(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.002)
