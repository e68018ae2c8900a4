"""freezer: pause and resume every process of a cgroup, waiting until the kernel says it is done."""

from __future__ import annotations

import time

from runtime.linux.cgroups.fs import read, write


def _wait(check, what: str, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not check():
        if time.monotonic() > deadline:
            raise OSError(16, f"cgroup did not become {what} within {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def set_v1(d: str, frozen: bool) -> None:
    state = "FROZEN" if frozen else "THAWED"
    write(d, "freezer.state", state)
    _wait(lambda: read(d, "freezer.state") == state, state.lower())


def set_v2(d: str, frozen: bool) -> None:
    write(d, "cgroup.freeze", int(frozen))
    want = f"frozen {int(frozen)}"
    _wait(lambda: want in read(d, "cgroup.events").splitlines(), "frozen" if frozen else "thawed")


def state_v1(d: str) -> str:
    return read(d, "freezer.state")


def state_v2(d: str) -> str:
    return "FROZEN" if "frozen 1" in read(d, "cgroup.events").splitlines() else "THAWED"
