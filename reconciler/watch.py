"""`wharf watch`: re-plan and apply when the spec, its env files or .env change (debounced),
and heal drift every `interval` seconds. An invalid edit is reported and the running stack is
left as it is; Ctrl-C stops cleanly. Level-triggered: every pass re-reads the live state."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from runtime.errors import WharfError


class _Changes:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.last = 0.0
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    def watch(self, paths: set[Path]) -> None:
        with self.lock:
            self.paths = {str(p.absolute()) for p in paths}

    def dispatch(self, event: Any) -> None:  # watchdog handler protocol
        if event.is_directory or event.event_type not in ("modified", "created", "moved", "deleted", "closed"):
            return  # "opened"/"closed_no_write": our own reads of the files
        with self.lock:
            hit = {getattr(event, "src_path", ""), getattr(event, "dest_path", "")} & self.paths
        if hit:
            self.last = time.monotonic()
            self.event.set()


def watch(engine: Any, opts: Any, *, prune: bool = False, interval: float = 10.0, debounce: float = 0.3,
          timeout: float = 300.0, workers: int = 4, out: Any = None, stop: threading.Event | None = None) -> int:
    from watchdog.observers import Observer

    from reconciler import reconcile as R

    from .cli.render import LineReporter, console

    con = out or console()
    stop = stop or threading.Event()
    changes = _Changes()
    observer = Observer()
    scheduled: set[str] = set()
    target = None

    def reschedule(paths: set[Path]) -> None:
        changes.watch(paths)
        for d in sorted({str(p.absolute().parent) for p in paths}):
            if d not in scheduled and Path(d).is_dir():
                observer.schedule(changes, d, recursive=False)
                scheduled.add(d)

    def load() -> bool:
        nonlocal target
        try:
            loaded = opts.load()
        except WharfError as e:
            con.print(f"[red]invalid spec, the stack is left as it is:[/] {e}")
            return False
        reschedule(loaded.watched)
        target = R.Target.from_loaded(loaded)
        return True

    def converge(why: str) -> None:
        if target is None:
            return
        t0 = time.monotonic()
        try:
            the_plan, result = R.apply(engine, target, prune=prune, timeout=timeout, reporter=LineReporter(),
                                       workers=workers)
        except WharfError as e:
            con.print(f"[red]{why}: apply failed:[/] {e}")
            return
        except KeyboardInterrupt:
            con.print(f"{why}: interrupted; the operations under way were finished, the rest not started "
                      f"(`wharf apply` goes on from there)")
            raise
        if the_plan.empty:
            if why != "drift check":
                con.print(f"{why}: up to date")
            return
        state = "converged" if result.ok else "[red]incomplete[/]: " + result.error_summary()
        con.print(f"{why}: {the_plan.summary()} -> {state} in {time.monotonic() - t0:.2f}s")

    observer.start()
    import signal

    previous = None
    if threading.current_thread() is threading.main_thread():  # SIGTERM stops as cleanly as Ctrl-C
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if load():
            converge("start")
        con.print("watching " + ", ".join(sorted(str(p) for p in changes.paths)) + " (Ctrl-C to stop)")
        next_check = time.monotonic() + interval if interval > 0 else float("inf")
        while not stop.is_set():
            wait_for = min(max(next_check - time.monotonic(), 0.0), 0.5)
            if changes.event.wait(wait_for):
                while time.monotonic() - changes.last < debounce:  # debounce bursts of writes
                    time.sleep(max(debounce - (time.monotonic() - changes.last), 0.01))
                changes.event.clear()
                if load():
                    converge("spec changed")
            if time.monotonic() >= next_check:
                converge("drift check")
                next_check = time.monotonic() + interval
    except KeyboardInterrupt:
        pass
    finally:
        observer.stop()
        observer.join(timeout=2)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    con.print("watch stopped; the stack keeps running")
    return 0
