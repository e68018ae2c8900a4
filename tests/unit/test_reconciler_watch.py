"""`wharf watch` against the in-memory engine: applies on start, re-applies on save,
leaves the stack untouched on an invalid edit, heals drift on --interval, stops cleanly."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

from reconciler.cli.options import ProjectOptions
from reconciler.watch import watch
from tests.unit.test_reconciler_apply import (
    FakeEngine,
    private_run,  # noqa: F401 - autouse
)

SPEC = "name: w\nservices:\n  a:\n    image: busybox\n    command: [sleep, '1000']\n    env_file: a.env\n"


def until(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def env_of(e: FakeEngine) -> list[str]:
    cs = list(e.containers.items.values())
    return cs[0].spec.env if len(cs) == 1 else []


def test_watch_cycle(tmp_path: Path) -> None:
    from rich.console import Console

    (tmp_path / "compose.yaml").write_text(SPEC)
    (tmp_path / "a.env").write_text("MSG=one\n")
    e = FakeEngine()
    e.images.pull("busybox:latest")
    stop = threading.Event()
    buf = io.StringIO()
    opts = ProjectOptions([str(tmp_path / "compose.yaml")])
    t = threading.Thread(target=watch, args=(e, opts), kwargs=dict(interval=0.3, debounce=0.05, timeout=5,
                                                                  out=Console(file=buf), stop=stop))
    t.start()
    try:
        until(lambda: env_of(e) == ["MSG=one"])
        (tmp_path / "a.env").write_text("MSG=two\n")  # an env file is watched too
        until(lambda: env_of(e) == ["MSG=two"])
        (tmp_path / "compose.yaml").write_text(SPEC + "    ports: ['bad:port']\n")
        until(lambda: "invalid spec" in buf.getvalue())
        assert env_of(e) == ["MSG=two"]  # untouched
        cid = next(iter(e.containers.items))
        e.containers.stop(cid)  # drift: healed by the interval check
        until(lambda: e.containers.items[cid].state.status == "running")
        (tmp_path / "compose.yaml").write_text(SPEC.replace("1000", "2000"))
        until(lambda: [c.spec.command for c in e.containers.items.values()] == [["sleep", "2000"]])
    finally:
        stop.set()
        t.join(10)
    assert not t.is_alive() and "watch stopped" in buf.getvalue()
