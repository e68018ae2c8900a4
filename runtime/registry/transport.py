"""HTTP(S) to one registry: keep-alive connections per thread, the plain-HTTP probe for insecure
registries (hosts.py), the 401 challenge flow (auth.py), redirects, retries, spec error bodies."""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError
from runtime.registry import credentials
from runtime.registry.auth import Authenticator, unauthorized
from runtime.registry.hosts import api_host, is_insecure

RETRIES = 3
BLOCK = 1 << 20

# bytes, or (file, offset, count[, on_sent(bytes so far)]) sent with sendfile
Body = bytes | tuple[BinaryIO, int, int] | tuple[BinaryIO, int, int, Callable[[int], None]] | None


def _ssl_context(insecure: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _connect(scheme: str, netloc: str, insecure: bool, timeout: float = 60) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(netloc, context=_ssl_context(insecure), timeout=timeout, blocksize=BLOCK)
    return http.client.HTTPConnection(netloc, timeout=timeout, blocksize=BLOCK)


def one_shot(method: str, url: str, headers: dict[str, str], insecure: bool = False) -> tuple[int, bytes]:
    """A single request on a fresh connection (token servers)."""
    u = urlsplit(url)
    conn = _connect(u.scheme, u.netloc, insecure)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as e:
        raise RuntimeFailure(f"cannot reach token server {u.netloc}: {e}") from None
    finally:
        conn.close()


def _why(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "timed out"
    if isinstance(e, http.client.IncompleteRead):
        return f"connection closed after {len(e.partial)} bytes"
    return str(e) or type(e).__name__


class Session:
    """Requests to one registry for a set of auth scopes ("repository:NAME:pull,push")."""

    def __init__(self, domain: str, scopes: tuple[str, ...] = (), creds: tuple[str, str] | None = None,
                 scheme: str | None = None) -> None:
        self.domain = domain
        self.host = api_host(domain)
        self.insecure = is_insecure(domain)
        self.scopes = scopes
        self.auth = Authenticator(domain, creds or credentials.get(domain), self.insecure)
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._all_lock = threading.Lock()
        self._scheme = scheme  # http or https: given, or probed on first use (insecure registries)

    # ----------------------------------------------------------- connections
    def _conn(self, scheme: str, netloc: str) -> tuple[http.client.HTTPConnection, bool]:
        pool = self._local.__dict__.setdefault("pool", {})
        conn = pool.get((scheme, netloc))
        if conn is not None:
            return conn, True
        conn = pool[(scheme, netloc)] = _connect(scheme, netloc, self.insecure)
        with self._all_lock:
            self._all.append(conn)
        return conn, False

    def reset(self) -> None:
        """Close this thread's connections (after a response was abandoned half-read)."""
        for conn in self._local.__dict__.pop("pool", {}).values():
            conn.close()

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body) -> http.client.HTTPResponse:
        u = urlsplit(url)
        target = (u.path or "/") + (f"?{u.query}" if u.query else "")
        for attempt in (0, 1):
            conn, reused = self._conn(u.scheme, u.netloc)
            try:
                conn.putrequest(method, target, skip_accept_encoding=True)
                for k, v in headers.items():
                    conn.putheader(k, v)
                if isinstance(body, tuple):
                    conn.putheader("Content-Length", str(body[2]))
                elif body is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body if isinstance(body, bytes) and body else None)
                if isinstance(body, tuple) and body[2]:
                    f, offset, count = body[:3]
                    on_sent = body[3] if len(body) > 3 else None
                    step = count if on_sent is None else 8 << 20
                    for start in range(0, count, step):
                        conn.sock.sendfile(f, offset + start, min(step, count - start))
                        if on_sent is not None:
                            on_sent(min(start + step, count))
                return conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self._local.pool.pop((u.scheme, u.netloc), None)
                if attempt or not reused:
                    raise
            except BaseException:
                conn.close()
                self._local.pool.pop((u.scheme, u.netloc), None)
                raise
        raise AssertionError("unreachable")

    def _base(self) -> str:
        if self._scheme:
            return f"{self._scheme}://{self.host}"
        if not self.insecure:
            return f"https://{self.host}"
        # insecure: plain HTTP if a registry answers there, else HTTPS without verification. (Probing
        # HTTP first is safe both ways: a TLS server rejects the plain request at once, while a plain
        # server may wait forever for the rest of a TLS hello.)
        conn = _connect("http", self.host, True, timeout=10)
        try:
            conn.request("GET", "/v2/")
            resp = conn.getresponse()
            resp.read()
            registry = resp.status in (200, 401) or resp.getheader("Docker-Distribution-API-Version")
            scheme = "http" if registry else "https"
        except (ConnectionResetError, BrokenPipeError, http.client.HTTPException):
            scheme = "https"
        except OSError as e:
            raise self._down(e) from None
        finally:
            conn.close()
        self._scheme = scheme
        return f"{scheme}://{self.host}"

    def _down(self, e: BaseException) -> RuntimeFailure:
        return RuntimeFailure(f"cannot reach registry {self.domain}: {_why(e)}",
                              hint="check that the registry is running and the address is right")

    # --------------------------------------------------------------- requests
    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, body: Body = None,
                ok: tuple[int, ...] = (200,), scopes: tuple[str, ...] | None = None, what: str = "",
                retry: bool | None = None) -> http.client.HTTPResponse:
        """Send and return the response (status in `ok`, body unread); WharfError otherwise."""
        scopes = scopes or self.scopes
        url = path if "://" in path else self._base() + path
        retry = method in ("GET", "HEAD") if retry is None else retry
        attempt = auth_rounds = redirects = 0
        while True:
            h = dict(headers or {})
            same_host = urlsplit(url).netloc == self.host
            if same_host:
                cred = self.auth.header(scopes)
                if cred:
                    h["Authorization"] = cred
            try:
                resp = self._send(method, url, h, body)
            except (OSError, http.client.HTTPException) as e:
                if retry and attempt < RETRIES:
                    attempt += 1
                    time.sleep(0.1 * 3 ** (attempt - 1))
                    continue
                if isinstance(e, (ConnectionRefusedError, TimeoutError, ssl.SSLError)):
                    raise self._down(e) from None
                raise RuntimeFailure(f"registry {self.domain}: {what or method + ' ' + path}: {_why(e)}") from None
            if resp.status == 401 and same_host:
                resp.read()
                if auth_rounds >= 2:
                    raise unauthorized(self.domain, "the registry keeps refusing", bool(self.auth.creds))
                auth_rounds += 1
                self.auth.challenge(resp.getheader("WWW-Authenticate"), scopes, h.get("Authorization"))
                continue
            if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location") and redirects < 5:
                resp.read()
                redirects += 1
                url = urljoin(url, resp.getheader("Location"))
                if resp.status == 303:
                    method, body = "GET", None
                continue
            if resp.status in (408, 429, 500, 502, 503, 504) and retry and attempt < RETRIES:
                resp.read()
                attempt += 1
                time.sleep(0.1 * 3 ** (attempt - 1))
                continue
            if resp.status not in ok:
                raise self.error(resp.status, resp.read(), what or f"{method} {path}")
            return resp

    def fetch(self, method: str, path: str, **kw) -> tuple[http.client.HTTPResponse, bytes]:
        resp = self.request(method, path, **kw)
        return resp, resp.read()  # (HEAD: b"", and it marks the response done)

    def error(self, status: int, body: bytes, what: str) -> WharfError:
        try:
            errs = json.loads(body)["errors"]
            detail = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}".rstrip(": ") for e in errs)
        except (ValueError, KeyError, TypeError):
            detail = body[:200].decode(errors="replace").strip() or http.client.responses.get(status, "")
        msg = f"{what}: {status} {detail}"
        if status in (401, 403):
            return unauthorized(self.domain, msg, bool(self.auth.creds))
        if status == 404:
            return NotFound(f"registry {self.domain}: {msg}")
        if 400 <= status < 500:
            return InvalidArgument(f"registry {self.domain}: {msg}")
        return RuntimeFailure(f"registry {self.domain}: {msg}")
