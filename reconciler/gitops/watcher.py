"""The `wharf gitops` watcher: a sync pass every --interval, and at once when a local
repository's branch moves (trigger.py) or a push webhook is called (hook.py). SIGTERM and a
first Ctrl-C stop it after the pass under way, a second Ctrl-C at once; the stack keeps running."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from runtime.errors import WharfError

from .hook import HookServer
from .sync import GitOps, Outcome, esc
from .trigger import RefWatcher, local_git_dir

REF_SETTLE = 0.05  # seconds between a local ref change and the pass it wakes
MAX_BACKOFF = 8  # failing passes (fetch, apply) wait up to 8x --interval, doubling each time


def run(ops: GitOps, interval: float, stop: threading.Event | None = None, listen: str | None = None,
        secret: bytes | None = None) -> int:
    """Sync every `interval` seconds (backing off while passes fail), and at once when a local
    repository's branch moves or the webhook on `listen` is called, until `stop` (SIGTERM) or Ctrl-C."""
    stop = stop or threading.Event()
    wake = threading.Event()
    hook = HookServer(listen, wake, secret) if listen else None
    ops.cached = False
    seen: set[str] = set()
    busy = False
    failures = 0

    def on_signal(signum: int, frame: Any) -> None:
        """SIGTERM, first Ctrl-C: stop after the pass under way; a second Ctrl-C: now."""
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        wake.set()
        if busy and signum == signal.SIGINT:
            os.write(2, b"stopping after this pass (Ctrl-C again: now)\n")

    previous: dict[int, Any] = {}
    git_dir = local_git_dir(ops.url)
    refs = RefWatcher(git_dir, wake) if git_dir is not None else None
    try:
        if hook is not None:
            hook.start()  # a taken port is an error before anything is done
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        if refs is not None:
            refs.start()
        first = True
        while not stop.is_set():
            busy = True
            try:
                out = ops.sync()
            except WharfError as e:  # the tree or the state dir: retried at the next pass
                out = Outcome(errors=[e], retry=True)
            finally:
                busy = False
            ops.report(out, once=False, seen=seen)
            if first:
                also = " and when the branch moves" if refs is not None else ""
                if hook is not None:
                    also += f" and on a POST to {hook.url}" + (" (signed)" if secret else "")
                ops.say(f"watching {esc(ops.mirror.where)} every {interval:g}s{also} (Ctrl-C to stop)")
                first = False
            failures = failures + 1 if out.retry else 0
            next_pass = time.monotonic() + interval * min(2 ** max(failures - 1, 0), MAX_BACKOFF)
            while not stop.is_set() and time.monotonic() < next_pass:
                if wake.wait(min(0.2, max(next_pass - time.monotonic(), 0.0))):
                    time.sleep(REF_SETTLE)  # git writes the ref, then the reflog: one pass for both
                    wake.clear()
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if refs is not None:
            refs.stop()
        if hook is not None:
            hook.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    ops.say("gitops stopped; the stack keeps running")
    return 0


__all__ = ["run"]
