"""Reading and writing cgroup files with errors that name the file and the value."""

from __future__ import annotations

import os


def write(directory: str, name: str, value: str | int) -> None:
    path = f"{directory}/{name}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OSError(2, f"cgroup file {path} does not exist (controller missing or not enabled)",
                      path) from None
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise OSError(e.errno, f"writing {value!r} to {path}: {os.strerror(e.errno or 0)}", path) from None
    finally:
        os.close(fd)


def read(directory: str, name: str) -> str:
    with open(f"{directory}/{name}") as f:
        return f.read().strip()


def read_int(directory: str, name: str, default: int = 0) -> int:
    try:
        v = read(directory, name)
    except OSError:
        return default
    return default if v == "max" else int(v)


def read_keyed(directory: str, name: str) -> dict[str, int]:
    """Files of `key value` lines (memory.stat, cpu.stat, memory.events ...)."""
    out: dict[str, int] = {}
    try:
        text = read(directory, name)
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def makedirs(directory: str) -> None:
    for _ in range(5):  # a parent removed meanwhile (remove_parent_if_unused): make it again
        try:
            os.makedirs(directory, exist_ok=True)
            return
        except FileExistsError:
            return
        except FileNotFoundError:
            continue
    os.makedirs(directory, exist_ok=True)


def procs(directory: str) -> list[int]:
    try:
        return [int(x) for x in read(directory, "cgroup.procs").split()]
    except OSError:
        return []


def rmdir_tree(directory: str, timeout: float = 2.0) -> None:
    """Remove `directory` and any child cgroups (deepest first); missing is fine.

    A cgroup stays busy for a moment after its last process was killed: retry EBUSY until
    `timeout`.
    """
    if not os.path.isdir(directory):
        return
    for root, dirs, _files in os.walk(directory, topdown=False):
        for d in dirs:
            _rmdir(os.path.join(root, d), timeout)
    _rmdir(directory, timeout)


def _rmdir(path: str, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != 16 or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def cg_value(v: int | None) -> str:
    """-1/None -> "max" (v2 style)."""
    return "max" if v is None or v < 0 else str(v)
