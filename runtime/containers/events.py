"""The event log: paths.root()/events.jsonl, one JSON object per line, appended (O_APPEND).

Writers: the engine (create, destroy, rename, pause, ...) and the shims (start, die, oom,
health_status). `wharf events` reads and follows it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

from runtime.util.labels import match_labels

TYPE_CHECKING = False
if TYPE_CHECKING:  # the shim imports this module: keep typing and runtime.engine out of its memory
    from runtime.engine import Event, Filters


MAX_LOG_BYTES = 4 << 20


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
        if os.fstat(fd).st_size > MAX_LOG_BYTES:  # keep the log bounded: one older generation
            os.replace(events_path(), events_path() + ".1")
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
        if key == "label" and not match_labels(ev.attributes, wanted):
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
    path = events_path()
    if not os.path.exists(path):
        if not follow:
            return
        emit("daemon", "reload", "wharf")
    for name in (path + ".1", path):
        try:
            f = open(name, "rb")  # noqa: SIM115 - kept open while following
        except FileNotFoundError:
            continue
        buf = b""
        try:
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
                if name != path or not follow or stop() or (until is not None and time.time() > until):
                    break
                try:
                    if os.stat(path).st_ino != os.fstat(f.fileno()).st_ino:  # rotated: go on in the new file
                        f.close()
                        f = open(path, "rb")  # noqa: SIM115
                        buf = b""
                        continue
                except FileNotFoundError:
                    pass
                time.sleep(0.05)
        finally:
            f.close()
