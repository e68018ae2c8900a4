"""Long work (pull, push, build, load) as a JSON message stream: the work runs in a thread and
reports through a callback; the response yields each message as one JSON line as it comes."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from runtime.errors import WharfError

_END = object()


def json_line(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg).encode() + b"\r\n"


def error_line(message: str) -> bytes:
    return json_line({"errorDetail": {"message": message}, "error": message})


def run(work: Callable[[Callable[[Any], None]], Any],
        finish: Callable[[Any], list[dict[str, Any]]] | None = None) -> Iterator[bytes]:
    """work(report) in a thread; report(str | dict) becomes {"stream": str} | dict lines.
    finish(result) gives the closing messages; a WharfError becomes Docker's error message."""
    q: queue.Queue[Any] = queue.Queue()

    def report(msg: Any) -> None:
        q.put({"stream": msg if msg.endswith("\n") else msg + "\n"} if isinstance(msg, str) else dict(msg))

    def target() -> None:
        try:
            result = work(report)
            for m in (finish(result) if finish else []):
                q.put(m)
        except WharfError as e:
            q.put(("error", e.message + (f" ({e.hint})" if e.hint else "")))
        except Exception as e:  # noqa: BLE001 - reported to the client in-band
            q.put(("error", f"{type(e).__name__}: {e}"))
        finally:
            q.put(_END)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    while True:
        item = q.get()
        if item is _END:
            return
        if isinstance(item, tuple):
            yield error_line(item[1])
        else:
            yield json_line(item)
