"""One reconciler at a time per project on this host: apply, down and each pass of watch
hold an flock on WHARF_RUN/reconciler/<project>.lock, so a `down` started while an
interrupted `watch` finishes its current step waits for that step instead of racing it."""

from __future__ import annotations

import fcntl
import hashlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from runtime import paths


def lock_path(project: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in project)[:64]
    return str(paths.run_dir() / "reconciler" / f"{safe}-{hashlib.sha256(project.encode()).hexdigest()[:8]}.lock")


@contextmanager
def project_lock(project: str, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the project's lock for the block; `on_wait` is called once if another holds it."""
    path = lock_path(project)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:  # no writable run dir (a remote engine, a user without one): nothing to share it with
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def say_waiting(project: str) -> Callable[[], None]:
    def on_wait() -> None:
        print(f"waiting for another apply/down/watch of project {project} to finish its current step...",
              file=sys.stderr, flush=True)
    return on_wait
