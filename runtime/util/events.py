"""The event log: paths.root()/events.jsonl, one JSON object per line, appended (O_APPEND).

Line format: {"type", "action", "id", "attributes", "time"} (type container | image | volume |
network | daemon; time in Unix seconds, a float). Writers: the engine (containers, images,
volumes, networks, whichever entry point does the action: the CLI in-process or `wharf serve`)
through emit(), and the container shims (start, die, oom, health_status), which append the same
line themselves. `wharf events` and the API's GET /events read and follow it (read_events).

Importing this module costs only C modules (_json, os, time): the container paths emit per start.
"""

from __future__ import annotations

import _json
import os
import time
from collections.abc import Callable, Iterator

TYPE_CHECKING = False
if TYPE_CHECKING:  # the supervisor may import this module too: keep typing and runtime.engine out
    from runtime.engine import Event, Filters

MAX_LOG_BYTES = 4 << 20  # then the log moves to events.jsonl.1 (one older generation is kept)

_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ", True, False, True)


def events_path() -> str:
    from runtime import paths

    return os.path.join(paths.root_str(), "events.jsonl")


def event_line(type_: str, action: str, id_: str, attributes: dict[str, str] | None = None,
               when: float | None = None) -> bytes:
    """One line of the log (what a shim appends too)."""
    obj = {"type": type_, "action": action, "id": id_, "attributes": attributes or {},
           "time": time.time() if when is None else when}
    return ("".join(_encode(obj, 0)) + "\n").encode()


def emit(type_: str, action: str, id_: str, attributes: dict[str, str] | None = None) -> None:
    """Append one event. Best effort: a log that cannot be written never fails the action itself."""
    path = events_path()
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, event_line(type_, action, id_, attributes))
            st = os.fstat(fd)
            if st.st_size > MAX_LOG_BYTES and os.stat(path).st_ino == st.st_ino:  # (not rotated meanwhile)
                os.replace(path, path + ".1")
        finally:
            os.close(fd)
    except OSError:
        pass


def emit_image(action: str, image_id: str, name: str = "", labels: dict[str, str] | None = None) -> None:
    """An image event as Docker's LogImageEvent: the image's labels, and `name` when given."""
    attrs = dict(labels or {})
    if name:
        attrs["name"] = name
    emit("image", action, image_id, attrs)


def emit_image_removal(lines: list[str], image_id: str, labels: dict[str, str] | None = None) -> None:
    """untag/delete events for what `rmi`/prune report ("Untagged: REF", "Deleted: ID")."""
    for line in lines:
        kind, _, what = line.partition(": ")
        if kind == "Untagged":
            emit_image("untag", image_id, what, labels)
        elif kind == "Deleted" and what == image_id:
            emit_image("delete", image_id, image_id)


# ------------------------------------------------------------ filters (moby's daemon/events/filter.go)

_FUZZY_EVENTS = ("health_status", "exec_create", "exec_start")
_BY_NAME = ("container", "volume", "network", "daemon", "plugin")


def _strip_tag(ref: str) -> str:
    """`busybox:latest`, `docker.io/library/busybox@sha256:..` -> `busybox` (Docker's stripTag);
    an image id stays as it is."""
    if ref.startswith("sha256:"):
        return ref
    name = ref.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):
        name = name[:name.rfind(":")]
    if name.startswith("docker.io/"):
        name = name[len("docker.io/"):]
        if name.startswith("library/") and name.count("/") == 1:
            name = name[len("library/"):]
    return name


def matches(ev: Event, filters: Filters | None) -> bool:
    """Docker's events filters: type, event, container/volume/network/daemon (id or name, or a
    prefix of either; only events of that type), image (image events by id or name, container
    events by their image, with or without tag), label (attributes)."""
    if not filters:
        return True
    for key, wanted in filters.items():
        if not wanted:
            continue
        if key == "type" and ev.type not in wanted:
            return False
        if key == "event":
            fuzzy = any(w in _FUZZY_EVENTS for w in wanted)
            if ev.action not in wanted and not (fuzzy and any(ev.action.startswith(w) for w in wanted)):
                return False
        if key in _BY_NAME:
            name = ev.attributes.get("name", "")
            if ev.type != key or not any(ev.id.startswith(w) or (name and name.startswith(w)) for w in wanted):
                return False
        if key == "image":
            if ev.type not in ("image", "container"):
                return False
            name = ev.attributes.get("name" if ev.type == "image" else "image", "")
            mine = {ev.id, name, _strip_tag(ev.id), _strip_tag(name)} - {""}
            if not mine.intersection(wanted):
                return False
        if key == "label":
            from runtime.util.labels import match_labels

            if not match_labels(ev.attributes, wanted):
                return False
    return True


# ------------------------------------------------------------ reading

def _parse(raw: bytes) -> Event | None:
    import json

    from runtime.engine import Event

    try:
        d = json.loads(raw)
        return Event(type=d["type"], action=d["action"], id=d["id"], attributes=d.get("attributes") or {},
                     time=float(d.get("time", 0.0)))
    except (ValueError, KeyError, TypeError, AttributeError):
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
                            if ev.time > until + 1:  # (writers race a little: lines are nearly in order)
                                return
                            continue
                        if matches(ev, filters):
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
