"""The event log: paths.root()/events.jsonl, one JSON object per line, appended (O_APPEND).

Writers: the engine (create, destroy, rename, pause, ...) and the shims (start, die, oom,
health_status). `wharf events` reads and follows it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:  # the shim imports this module: keep typing and runtime.engine out of its memory
    from runtime.engine import Event, Filters


def events_path() -> str:
    from runtime import paths

    return str(paths.root() / "events.jsonl")


def emit(type_: str, action: str, id_: str, attributes: dict[str, str] | None = None) -> None:
    line = json.dumps({"type": type_, "action": action, "id": id_, "attributes": attributes or {},
                       "time": time.time()}) + "\n"
    os.makedirs(os.path.dirname(events_path()), exist_ok=True)
    fd = os.open(events_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _match(ev: Event, filters: Filters | None) -> bool:
    if not filters:
        return True
    for key, wanted in filters.items():
        if not wanted:
            continue
        if key == "type" and ev.type not in wanted:
            return False
        if key == "event" and ev.action not in wanted and ev.action.split(":")[0] not in wanted:
            return False
        if key in ("container", "volume", "network", "image"):
            if ev.type != key or not any(w in (ev.id, ev.attributes.get("name")) or ev.id.startswith(w)
                                         for w in wanted):
                return False
        if key == "label":
            for w in wanted:
                k, sep, v = w.partition("=")
                if k not in ev.attributes or (sep and ev.attributes[k] != v):
                    return False
    return True


def _parse(raw: bytes) -> Event | None:
    from runtime.engine import Event

    try:
        d = json.loads(raw)
        return Event(type=d["type"], action=d["action"], id=d["id"], attributes=d.get("attributes", {}),
                     time=d.get("time", 0.0))
    except (ValueError, KeyError, TypeError):
        return None


def read_events(since: float | None = None, until: float | None = None, filters: Filters | None = None,
                follow: bool = False, stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
    """Past events (since..until), then with follow=True new ones until `until` or stop()."""
    try:
        f = open(events_path(), "rb")  # noqa: SIM115
    except FileNotFoundError:
        if not follow:
            return
        emit("daemon", "reload", "wharf")
        f = open(events_path(), "rb")  # noqa: SIM115
    buf = b""
    with f:
        while True:
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    ev = _parse(raw)
                    if ev is None or (since is not None and ev.time < since):
                        continue
                    if until is not None and ev.time > until:
                        return
                    if _match(ev, filters):
                        yield ev
                continue
            if not follow or stop() or (until is not None and time.time() > until):
                return
            time.sleep(0.05)
