"""HTTP/1.1 plumbing of the daemon: one request, its body, and the ways to answer it.

Answers are values a route returns (the handler writes them):
    dict / list          -> 200 application/json
    Reply(status, ...)   -> any status, JSON or raw bytes
    Stream(chunks, ...)  -> chunked transfer encoding, one chunk per item (flushed)
    None                 -> 204 No Content
Hijacking (attach/exec) is `req.hijack()`: it answers 101 UPGRADED (or 200 when the
client did not ask for an upgrade) and returns the raw socket to the route.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from runtime.errors import InvalidArgument

MAX_JSON_BODY = 16 * 1024 * 1024  # a create/update body is a few KiB; refuse absurd ones


class PayloadTooLarge(InvalidArgument):
    http_status = 413


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able value, or bytes with content_type
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    chunks: Iterable[bytes]
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Hijacked:
    """Returned by a route that took over the connection: the handler writes nothing more."""


HIJACKED = Hijacked()


class BodyReader:
    """The request body as a file-like object (Content-Length or chunked), never past its end."""

    def __init__(self, rfile, length: int | None, chunked: bool) -> None:
        self.rfile = rfile
        self.left = length if length is not None else (0 if not chunked else -1)
        self.chunked = chunked
        self.chunk_left = 0
        self.done = not chunked and self.left == 0

    def _next_chunk(self) -> None:
        line = self.rfile.readline(1024)
        if not line:
            raise InvalidArgument("request body ended early (chunked encoding)")
        try:
            self.chunk_left = int(line.split(b";")[0].strip(), 16)
        except ValueError:
            raise InvalidArgument("bad chunk size in request body") from None
        if self.chunk_left == 0:
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self.done = True

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        if not self.chunked:
            want = self.left if n < 0 else min(n, self.left)
            data = self.rfile.read(want)
            if len(data) < want:
                raise InvalidArgument("request body ended early")
            self.left -= len(data)
            self.done = self.left == 0
            return data
        out = []
        while (n < 0 or n > 0) and not self.done:
            if self.chunk_left == 0:
                self._next_chunk()
                if self.done:
                    break
            want = self.chunk_left if n < 0 else min(n, self.chunk_left)
            data = self.rfile.read(want)
            if not data:
                raise InvalidArgument("request body ended early")
            self.chunk_left -= len(data)
            if self.chunk_left == 0:
                self.rfile.readline(16)  # CRLF after the chunk
            out.append(data)
            if n > 0:
                n -= len(data)
                break
        return b"".join(out)

    def drain(self, limit: int = 64 * 1024 * 1024) -> bool:
        """Read what is left (so the connection can be reused); False when too much was left."""
        if not self.chunked and self.left > limit:
            return False  # not worth reading: the connection is closed instead
        total = 0
        while not self.done:
            data = self.read(65536)
            total += len(data)
            if total > limit:
                return False
        return True


class Request:
    def __init__(self, handler, method: str, path: str, query: str, params: dict[str, str],
                 version: str | None) -> None:
        self.handler = handler
        self.method = method
        self.path = path
        self.params = params
        self.version = version
        self.headers = handler.headers
        self._query = parse_qs(query, keep_blank_values=True)
        length = handler.headers.get("Content-Length")
        chunked = "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower()
        try:
            n = int(length) if length is not None and not chunked else None
        except ValueError:
            raise InvalidArgument(f"bad Content-Length {length!r}") from None
        if n is not None and n < 0:
            raise InvalidArgument(f"bad Content-Length {length!r}")
        self.body = BodyReader(handler.rfile, n, chunked)

    # ------------------------------------------------------------ query
    def q(self, name: str, default: str | None = None) -> str | None:
        v = self._query.get(name)
        return v[-1] if v else default

    def qlist(self, name: str) -> list[str]:
        return list(self._query.get(name, []))

    def qbool(self, name: str, default: bool = False) -> bool:
        v = self.q(name)
        if v is None:
            return default
        return v.lower() not in ("", "0", "false", "no")

    def qint(self, name: str, default: int | None = None) -> int | None:
        v = self.q(name)
        if v in (None, ""):
            return default
        try:
            return int(v)
        except ValueError:
            raise InvalidArgument(f"query parameter {name}={v!r} is not an integer") from None

    def qfloat(self, name: str, default: float | None = None) -> float | None:
        v = self.q(name)
        if v in (None, ""):
            return default
        try:
            return float(v)
        except ValueError:
            raise InvalidArgument(f"query parameter {name}={v!r} is not a number") from None

    def qjson(self, name: str, default: Any = None) -> Any:
        v = self.q(name)
        if v in (None, ""):
            return default
        try:
            return json.loads(v)
        except ValueError:
            raise InvalidArgument(f"query parameter {name} is not valid JSON") from None

    def filters(self) -> dict[str, list[str]]:
        """Docker's `filters` parameter: {"k": ["v"]} or the older {"k": {"v": true}}."""
        raw = self.qjson("filters", {})
        if not isinstance(raw, dict):
            raise InvalidArgument("filters must be a JSON object", hint='e.g. {"label": ["a=b"]}')
        out: dict[str, list[str]] = {}
        for k, v in raw.items():
            if isinstance(v, dict):
                out[k] = [str(x) for x, on in v.items() if on]
            elif isinstance(v, list):
                out[k] = [str(x) for x in v]
            elif isinstance(v, str):
                out[k] = [v]
            else:
                raise InvalidArgument(f"filter {k!r} must be a list of strings")
        return out

    # ------------------------------------------------------------ body
    def read_body(self, limit: int = MAX_JSON_BODY) -> bytes:
        if not self.body.chunked and self.body.left > limit:  # refused on the declared length, unread
            raise PayloadTooLarge(f"request body of {self.body.left} bytes is larger than {limit} bytes")
        data = self.body.read(limit + 1) if not self.body.chunked else self._read_chunked(limit)
        if len(data) > limit:
            raise PayloadTooLarge(f"request body larger than {limit} bytes")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        parts, total = [], 0
        while chunk := self.body.read(65536):
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                break
        return b"".join(parts)

    def json(self, default: Any = None, kind: type = dict) -> Any:
        data = self.read_body()
        if not data.strip():
            return default if default is not None else kind()
        try:
            value = json.loads(data)
        except ValueError as e:
            raise InvalidArgument(f"malformed JSON in request body: {e}") from None
        if value is None:
            return kind()
        if not isinstance(value, kind):
            raise InvalidArgument(f"request body must be a JSON {'object' if kind is dict else 'array'}")
        return value

    # ------------------------------------------------------------ hijack
    def hijack(self, content_type: str = "application/vnd.docker.raw-stream"):
        """Answer 101 UPGRADED (or 200) and hand the connection to the caller.

        Returns (socket, reader): read the client's bytes from `reader` (it may already hold
        some), write to the socket."""
        h = self.handler
        upgrade = (self.headers.get("Upgrade") or "").lower() in ("tcp", "h2c")
        h.log_request(101 if upgrade else 200)
        if upgrade:
            h.send_response_only(101, "UPGRADED")
            h.send_header("Connection", "Upgrade")
            h.send_header("Upgrade", "tcp")
        else:
            h.send_response_only(200)
        h.send_header("Content-Type", content_type)
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True
        h.hijacked = True
        return h.connection, h.rfile
