"""Route table of the Docker Engine API: (method, path pattern) -> function(engine, req).

Paths may carry a version prefix (/v1.24 ... /v1.45; we advertise 1.41) or none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from runtime.errors import InvalidArgument, NotFound

API_VERSION = "1.41"
MIN_API_VERSION = "1.24"
_VERSION = re.compile(r"^/v(\d+)\.(\d+)(/.*)$")

Handler = Callable[..., Any]


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, fn: Handler) -> None:
        self.routes.append((method, re.compile("^" + pattern + "$"), fn))

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.add(method, pattern, fn)
            return fn

        return deco

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str], str | None]:
        version = None
        m = _VERSION.match(path)
        if m:
            major, minor, path = int(m.group(1)), int(m.group(2)), m.group(3)
            version = f"{major}.{minor}"
            if (major, minor) < (1, 24):
                raise InvalidArgument(f"client version {version} is too old. Minimum supported API version "
                                      f"is {MIN_API_VERSION}, please upgrade your client to a newer version")
        allowed = False
        for meth, rx, fn in self.routes:
            mm = rx.match(path)
            if mm:
                if meth == method or (meth == "GET" and method == "HEAD"):
                    return fn, mm.groupdict(), version
                allowed = True
        if allowed:
            raise MethodNotAllowed(f"method {method} is not allowed on {path}")
        raise NotFound(f"page not found: {path}")


class MethodNotAllowed(InvalidArgument):
    http_status = 405


router = Router()


def load_routes() -> Router:
    """Import every resource module (each registers its routes on `router`)."""
    from runtime.api import containers, exec_routes, images, networks, system, volumes  # noqa: F401

    return router
