"""Logs of all replicas of a project's services, prefixed like compose (`web-1 | ...`)."""

from __future__ import annotations

import queue
import sys
import threading
from typing import Any

from runtime.errors import NotFound

from . import labels as L

COLORS = ("36", "33", "32", "35", "34", "31")


def service_containers(engine: Any, project: str, services: list[str]) -> list[Any]:
    cs = engine.containers.list(all=True, filters=L.project_filter(project))
    cs = [c for c in cs if not services or c.labels.get(L.SERVICE) in services]
    return sorted(cs, key=lambda c: (c.labels.get(L.SERVICE, ""), int(c.labels.get(L.REPLICA, "0") or 0)))


def service_logs(engine: Any, desired: Any, services: list[str], follow: bool = False, tail: int | None = None,
                 timestamps: bool = False, out: Any = None) -> None:
    out = out or sys.stdout
    unknown = [s for s in services if s not in desired.services]
    if unknown:
        raise NotFound(f"no service {unknown[0]!r} in project {desired.project}",
                       hint=f"services are: {', '.join(sorted(desired.services))}")
    cs = service_containers(engine, desired.project, services)
    if not cs:
        return
    color = out.isatty() if hasattr(out, "isatty") else False
    width = max(len(_prefix(c)) for c in cs)
    lines: queue.Queue = queue.Queue()

    def pump(c: Any, prefix: str) -> None:
        try:
            for _stream, line in engine.containers.logs(c.id, follow=follow, tail=tail, timestamps=timestamps):
                lines.put((prefix, line))
        except NotFound:
            pass
        finally:
            lines.put(None)

    threads = []
    for i, c in enumerate(cs):
        p = f"{_prefix(c):<{width}} | "
        if color:
            p = f"\x1b[{COLORS[i % len(COLORS)]}m{p}\x1b[0m"
        t = threading.Thread(target=pump, args=(c, p), daemon=True)
        t.start()
        threads.append(t)
        if not follow:  # one after the other: the output keeps each container's order
            t.join()
    left = len(threads)
    while left:
        item = lines.get()
        if item is None:
            left -= 1
            continue
        prefix, line = item
        text = line.decode(errors="replace") if isinstance(line, bytes) else str(line)
        out.write(prefix + text + ("" if text.endswith("\n") else "\n"))
        out.flush()


def _prefix(c: Any) -> str:
    return f"{c.labels.get(L.SERVICE, c.name)}-{c.labels.get(L.REPLICA, '?')}"


def try_service_logs(name: str, engine: Any = None, follow: bool = False, tail: int | None = None,
                     timestamps: bool = False, files: list[str] | None = None) -> bool:
    """For `wharf logs NAME`: when NAME is a service of the project in the compose file(s) (given,
    or found from the current directory), show all its replicas prefixed and return True;
    otherwise return False (no compose file, or no such service) and print nothing."""
    from runtime.errors import WharfError

    from .desired import build_desired
    from .spec import load_project

    try:
        loaded = load_project(files)
    except WharfError:
        return False
    if name not in loaded.project.services:
        return False
    if engine is None:
        from runtime.engine import connect

        engine = connect()
    desired = build_desired(loaded.project, loaded.file_digests, loaded.project_dir)
    service_logs(engine, desired, [name], follow=follow, tail=tail, timestamps=timestamps)
    return True
