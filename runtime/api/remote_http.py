"""The Engine API's HTTP/1.1 on a plain socket (unix, or TCP without TLS), for the CLI's fast
paths (`wharf --host URL ps|run|rm|...`, runtime/cli/remote_fast.py): socket and json only,
no http.client (its email parser and ssl), urllib, typing or dataclasses on the way.

RemoteEngine (remote.py) keeps http.client for TLS and its streams; both map an engine's
error answer to a WharfError with `error()` and step down the API version with
`step_down()`, both from here.
"""

from __future__ import annotations

import json
import os
import socket

from runtime.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure, WharfError

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the fast path: no typing import at run time
    from typing import Any

API_VERSION = "1.41"  # the newest we speak; older engines say their maximum and we step down


def error(status: int, body: bytes, what: str) -> WharfError:
    """An engine's error answer as the WharfError the CLI prints (400/404/409 keep their kind)."""
    hint = None
    try:
        msg = json.loads(body).get("message") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        msg = body.decode(errors="replace").strip() or f"HTTP {status}"
        if status in (404, 405) and body.strip():  # a router's plain answer, not an object's: the call itself is missing
            msg, hint = f"the engine does not serve this call (HTTP {status} {msg})", "it may be too old for it"
    cls = {400: InvalidArgument, 404: NotFound, 409: Conflict}.get(status, RuntimeFailure)
    return cls(f"{what}: {msg}" if what else msg, hint=hint)


def step_down(status: int, body: bytes, current: str) -> str | None:
    """dockerd refuses a too-new client version with 400 and its maximum: that version, else None."""
    if status != 400 or b"Maximum supported API version is" not in body:
        return None
    import re

    m = re.search(rb"Maximum supported API version is (\d+\.\d+)", body)
    if not m or m.group(1).decode() == current:
        return None
    return m.group(1).decode()


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "") -> str:
    """Percent-encoding (urllib.parse.quote's, without importing urllib)."""
    keep = _SAFE | frozenset(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def query_string(query: dict[str, Any] | None) -> str:
    """`?k=v&...` of the values that are not None; a list repeats its key (urlencode's doseq)."""
    parts = []
    for k, v in (query or {}).items():
        if v is None:
            continue
        for item in v if isinstance(v, list) else [v]:
            parts.append(f"{quote(str(k))}={quote(str(item))}")
    return "?" + "&".join(parts) if parts else ""


def lean_host() -> str | None:
    """The engine address --host / WHARF_HOST / DOCKER_HOST names when this client can speak to it
    (unix://, tcp:// without TLS); None when there is none or it needs TLS (RemoteEngine does)."""
    host = os.environ.get("WHARF_HOST") or os.environ.get("DOCKER_HOST")
    if not host:
        return None
    if host.startswith("unix://"):
        return host
    if os.environ.get("DOCKER_TLS_VERIFY") or os.environ.get("DOCKER_CERT_PATH"):
        return None
    scheme = host.partition("://")[0] if "://" in host else "tcp"
    return host if scheme in ("tcp", "http") else None


def decode(status: int, ctype: str, data: bytes, what: str) -> Any:
    """An answer's body: its JSON, the bytes when it is not JSON, None when empty."""
    if not data or status == 204:
        return None
    if ctype.startswith("application/json") or (not ctype.startswith("application/")
                                                and data.lstrip()[:1] in (b"{", b"[")):
        try:  # podman sends some JSON answers (top, stats) as text/plain
            return json.loads(data)
        except ValueError:
            if ctype.startswith("application/json"):
                raise RuntimeFailure(f"{what}: the engine sent malformed JSON") from None
    return data


class Response:
    """One answer: status, headers (lower-case names), and its body read whole or in pieces."""

    def __init__(self, conn: Http, sock: socket.socket, buf: bytes, what: str) -> None:
        self.conn, self.sock, self._buf, self.what = conn, sock, buf, what
        head = self._line_block()
        lines = head.decode("latin-1").split("\r\n")
        try:
            self.status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            raise RuntimeFailure(f"{what}: bad response from the engine: {lines[0][:80]!r}") from None
        self.headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        length = self.headers.get("content-length")
        self._left = int(length) if length is not None and not self._chunked else -1
        if self.status in (204, 304) or (self._left == -1 and not self._chunked and self.status == 101):
            self._left = 0
        self._chunk_left = 0
        self.done = self._left == 0
        self.keep_alive = self.headers.get("connection", "").lower() != "close" and (self._left >= 0 or self._chunked)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError as e:
            raise RuntimeFailure(f"{self.what}: {e}") from None
        self._buf += data
        return bool(data)

    def _line_block(self) -> bytes:
        while (i := self._buf.find(b"\r\n\r\n")) < 0:
            if not self._fill():
                raise RuntimeFailure(f"{self.what}: the engine at {self.conn.host} closed the connection")
        head, self._buf = self._buf[:i], self._buf[i + 4:]
        return head

    def read1(self, _size: int = -1) -> bytes:
        """The next piece of the body (b"" at its end; as it came, whatever `_size`)."""
        if self.done:
            return b""
        if self._chunked:
            while True:
                if self._chunk_left == 0:
                    while (i := self._buf.find(b"\r\n")) < 0:
                        if not self._fill():
                            self.done = True
                            return b""
                    try:
                        size = int(self._buf[:i].split(b";")[0], 16)
                    except ValueError:
                        raise RuntimeFailure(f"{self.what}: bad chunked answer from the engine") from None
                    self._buf = self._buf[i + 2:]
                    if size == 0:
                        while b"\r\n" not in self._buf and self._fill():  # the (empty) trailer
                            pass
                        self._buf = self._buf[self._buf.find(b"\r\n") + 2:]
                        self.done = True
                        return b""
                    self._chunk_left = size + 2  # and its CRLF
                if not self._buf and not self._fill():
                    self.done = True
                    return b""
                left = self._chunk_left
                piece, self._buf = self._buf[:left], self._buf[left:]
                self._chunk_left -= len(piece)
                piece = piece[:max(0, left - 2)]  # not the chunk's CRLF
                if piece:
                    return piece
        if not self._buf and not self._fill():
            self.done = True
            return b""
        if self._left >= 0:
            piece, self._buf = self._buf[:self._left], self._buf[self._left:]
            self._left -= len(piece)
            self.done = self._left == 0
        else:
            piece, self._buf = self._buf, b""
        return piece

    def read(self) -> bytes:
        parts = []
        while piece := self.read1():
            parts.append(piece)
        return b"".join(parts)

    def json(self) -> Any:
        return decode(self.status, self.headers.get("content-type", ""), self.read(), self.what)

    def close(self) -> None:
        self.sock.close()


class Http:
    """Calls on one keep-alive connection; `open(..., stream=True)` gets a connection of its own.
    The same call shapes as RemoteEngine's http.client Client (call, open, messages, raw_socket)."""

    def __init__(self, host: str) -> None:
        self.host = host
        if host.startswith("unix://"):
            self.target: Any = host[len("unix://"):]
        else:
            hostport = host.partition("://")[2] if "://" in host else host
            hostport = hostport.split("/", 1)[0]
            name, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "")
            self.target = (name.strip("[]") or "127.0.0.1", int(port or 2375))
        self.version = os.environ.get("DOCKER_API_VERSION") or API_VERSION
        self._sock: socket.socket | None = None

    def prefix(self) -> str:
        return "/v" + self.version

    def raw_socket(self) -> socket.socket:
        """A new connection to the engine (RuntimeFailure with a hint when nobody listens)."""
        if isinstance(self.target, str):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.target)
            except OSError as e:
                s.close()
                raise RuntimeFailure(f"cannot connect to the engine API at {self.host}: {e.strerror or e}",
                                     hint="is `wharf serve` (or dockerd) running there?") from None
            return s
        try:
            s = socket.create_connection(self.target)
        except OSError as e:
            raise RuntimeFailure(f"cannot reach the engine at {self.host}: {e.strerror or e}",
                                 hint="is `wharf serve` (or dockerd) listening there?") from None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def request_bytes(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                      headers: dict[str, str] | None = None) -> bytes:
        hdrs = {"Host": "docker", "User-Agent": "wharf"}
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            if not isinstance(body, bytes):
                hdrs["Content-Type"] = "application/json"
        if body is not None or method in ("POST", "PUT"):
            hdrs["Content-Length"] = str(len(data))
        hdrs.update(headers or {})
        head = f"{method} {self.prefix()}{path}{query_string(query)} HTTP/1.1\r\n" + \
            "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        return head.encode("latin-1") + data

    def open(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             headers: dict[str, str] | None = None, stream: bool = False, what: str = "") -> Response:
        """Send one request and read the answer's head; an error answer raises (its WharfError).
        `stream`: on a connection of its own (a stream, or an answer read later), closed with it."""
        msg = self.request_bytes(method, path, query, body, headers)
        for attempt in (0, 1):
            reused = not stream and self._sock is not None
            sock = self._sock if reused else self.raw_socket()
            try:
                sock.sendall(msg)
                resp = Response(self, sock, b"", what or f"{method} {path}")
                break
            except (OSError, RuntimeFailure):
                sock.close()
                self._sock = None
                if reused and not attempt:  # the engine closed the idle keep-alive connection: once more
                    continue
                raise
        if resp.status >= 400:
            data = resp.read()
            self._done(resp, stream)
            newer = step_down(resp.status, data, self.version)
            if newer:
                self.version = newer
                return self.open(method, path, query, body, headers, stream, what)
            raise error(resp.status, data, what)
        if not stream:
            self._sock = None  # until its body is read (call() gives it back)
        return resp

    def _done(self, resp: Response, stream: bool) -> None:
        if not stream and resp.keep_alive and resp.done:
            self._sock = resp.sock
        else:
            resp.close()

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             what: str = "", headers: dict[str, str] | None = None) -> Any:
        """One request on the keep-alive connection: its JSON (bytes when not JSON; None when empty)."""
        resp = self.open(method, path, query, body, headers, what=what)
        try:
            return resp.json()
        finally:
            self._done(resp, False)

    def call_many(self, paths: list[str], what: str = "") -> list[Any]:
        """GET each path, pipelined on one connection (HTTP/1.1: answers come in order): the JSON of
        each, or the WharfError of the ones that failed."""
        if not paths:
            return []
        sock = self.raw_socket()
        out: list[Any] = []
        try:
            sock.sendall(b"".join(self.request_bytes("GET", p) for p in paths))
            buf = b""
            for p in paths:
                resp = Response(self, sock, buf, what or f"GET {p}")
                body = resp.read()
                buf, resp._buf = resp._buf, b""
                if resp.status >= 400:
                    out.append(error(resp.status, body, what))
                else:
                    out.append(json.loads(body) if body else None)
                if not resp.keep_alive:  # the engine stops reading here: the rest one by one
                    sock.close()
                    sock = self.raw_socket()
                    rest = paths[len(out):]
                    sock.sendall(b"".join(self.request_bytes("GET", q) for q in rest))
                    buf = b""
        finally:
            sock.close()
        return out

    def messages(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                 headers: dict[str, str] | None = None, what: str = ""):
        """A JSON-lines stream (pull, events); an in-band error raises."""
        return json_lines(self.open(method, path, query, body, headers, stream=True, what=what), what)


def json_lines(resp, what: str = ""):
    """The messages of a JSON-lines answer (either client's response), closing it at the end;
    an in-band {"error": ...} raises."""
    try:
        buf = b""
        while chunk := resp.read1(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    msg = json.loads(line)
                    if msg.get("error"):
                        raise RuntimeFailure(f"{what}: {msg['error']}" if what else msg["error"])
                    yield msg
    finally:
        resp.close()

def wait_begin(client, ref: str, condition: str = "next-exit"):
    """Send `POST /containers/REF/wait` now (before `start`, as the docker CLI does) on either
    client; the returned function reads the exit code (None when the engine went away)."""
    resp = client.open("POST", f"/containers/{quote(ref, '/')}/wait", {"condition": condition}, stream=True,
                       what=f"wait {ref}")

    def result() -> int | None:
        try:
            data = resp.read()
        except (OSError, RuntimeFailure):
            return None
        finally:
            resp.close()
        for line in data.splitlines():
            if line.strip():
                msg = json.loads(line)
                if msg.get("error"):
                    raise RuntimeFailure(f"wait {ref}: {msg['error']}")
                if (msg.get("Error") or {}).get("Message"):
                    raise RuntimeFailure(f"wait {ref}: {msg['Error']['Message']}")
                return int(msg.get("StatusCode", 0))
        return None

    return result
