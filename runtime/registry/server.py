"""`wharf registry serve`: the OCI distribution API over HTTP/1.1 (keep-alive, sendfile, TLS).

A threaded stdlib server: one thread per connection, bodies streamed (Content-Length or
chunked), blob GETs sent with sendfile(2). The routes live in api.py, the layout in storage.py.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from runtime.errors import InvalidArgument
from runtime.registry.api import Registry, Request, Response
from runtime.registry.apierrors import ApiError
from runtime.registry.htpasswd import Htpasswd
from runtime.registry.proxy import Upstream
from runtime.registry.storage import Storage

CHUNK = 1 << 20


class _TruncatedBody(ConnectionError):
    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def version_string(self) -> str:
        return "wharf-registry"

    def setup(self) -> None:
        super().setup()
        self._tls_to_plain = False
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        else:  # a TLS hello to this plain server: answer at once (it may hold no newline to wait for)
            try:
                self._tls_to_plain = self.request.recv(1, socket.MSG_PEEK) == b"\x16"
            except OSError:
                self._tls_to_plain = True

    def handle(self) -> None:
        if self._tls_to_plain:
            self.wfile.write(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        super().handle()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # -------------------------------------------------------------- bodies
    def _body_chunks(self):
        if self._body_started:
            raise RuntimeError("request body read twice")
        self._body_started = True
        rfile = self.rfile
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise _TruncatedBody("request body ended inside a chunk header")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ApiError("BLOB_UPLOAD_INVALID", "malformed chunked request body") from None
                if size == 0:
                    while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                while size:
                    data = rfile.read(min(size, CHUNK))
                    if not data:
                        raise _TruncatedBody("request body ended early")
                    size -= len(data)
                    yield data
                rfile.readline(8)
        else:
            remaining = self._content_length
            while remaining > 0:
                data = rfile.read(min(remaining, CHUNK))
                if not data:
                    raise _TruncatedBody(f"request body ended {remaining} bytes early")
                remaining -= len(data)
                yield data
        self._body_done = True

    def _read_body(self, limit: int) -> bytes:
        if self._content_length > limit:
            raise ApiError("SIZE_INVALID", f"body larger than {limit} bytes", status=413)
        out = bytearray()
        for chunk in self._body_chunks():
            out += chunk
            if len(out) > limit:
                raise ApiError("SIZE_INVALID", f"body larger than {limit} bytes", status=413)
        return bytes(out)

    # ------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            self._content_length = int(headers.get("content-length", "0") or 0)
        except ValueError:
            self._content_length = 0
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._body_started = False
        self._body_done = not chunked and self._content_length == 0
        try:
            auth = self.server.htpasswd
            if auth is not None and auth.check(headers.get("authorization")) is None:
                raise ApiError("UNAUTHORIZED", "authentication required",
                               headers={"WWW-Authenticate": f'Basic realm="{self.server.realm}"'})
            req = Request(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                          headers, self._body_chunks, self._read_body)
            resp = self.server.registry.handle(req)
        except ApiError as e:
            resp = Response(e.status, {"Content-Type": "application/json", **e.headers}, e.body())
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True
            return
        except Exception as e:  # a bug or the disk (ENOSPC...): 500, and keep serving
            print(f"wharf registry: {self.command} {self.path}: {type(e).__name__}: {e}", file=sys.stderr)
            resp = Response(500, {"Content-Type": "application/json"}, ApiError("UNKNOWN", f"internal error: {e}").body())
        if not self._body_done:
            self.close_connection = True  # unread request body: the connection cannot be reused
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if "Content-Length" not in resp.headers:
            length = resp.file[2] if resp.file else len(resp.body)
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.file:
            path, offset, length = resp.file
            with open(path, "rb") as f:
                if length:
                    self.connection.sendfile(f, offset, length)
        elif resp.body:
            self.wfile.write(resp.body)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    block_on_close = False

    def __init__(self, address, registry: Registry, htpasswd: Htpasswd | None, tls: ssl.SSLContext | None,
                 verbose: bool, family: int) -> None:
        self.address_family = family
        self.registry = registry
        self.htpasswd = htpasswd
        self.realm = "wharf-registry"
        self.tls = tls
        self.verbose = verbose
        super().__init__(address, _Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(300)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if self.verbose or not isinstance(exc, (OSError, ssl.SSLError)):
            print(f"wharf registry: {client_address[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)


def parse_addr(addr: str) -> tuple[str, int, int]:
    """'host:port', ':port' or '[v6]:port' -> (host, port, address family)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"invalid listen address {addr!r}", hint="use HOST:PORT, e.g. 127.0.0.1:5000")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port), socket.AF_INET6 if ":" in host else socket.AF_INET


class RegistryServer:
    """A registry on `addr` storing under `root`; `start()` serves in a thread, `serve_forever()` in this one."""

    def __init__(self, root: str | os.PathLike[str], addr: str = "127.0.0.1:5000",
                 htpasswd: str | os.PathLike[str] | None = None, tls_cert: str | None = None,
                 tls_key: str | None = None, verbose: bool = False, proxy_remote: str | None = None,
                 proxy_username: str | None = None, proxy_password: str | None = None) -> None:
        host, port, family = parse_addr(addr)
        tls = None
        if tls_cert or tls_key:
            if not (tls_cert and tls_key):
                raise InvalidArgument("TLS needs both --tls-cert and --tls-key")
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            try:
                tls.load_cert_chain(tls_cert, tls_key)
            except (OSError, ssl.SSLError) as e:
                raise InvalidArgument(f"cannot load TLS certificate {tls_cert} / key {tls_key}: {e}") from None
        auth = Htpasswd(htpasswd) if htpasswd else None
        try:
            storage = Storage(Path(root))
        except OSError as e:
            raise InvalidArgument(f"cannot use {root} as the registry root: {e.strerror or e}",
                                  hint="pass a writable directory with --root") from None
        try:
            upstream = Upstream(proxy_remote, proxy_username, proxy_password) if proxy_remote else None
            self.httpd = _HTTPServer((host, port), Registry(storage, upstream), auth, tls, verbose, family)
        except OSError as e:
            raise InvalidArgument(f"cannot listen on {addr}: {e.strerror or e}",
                                  hint="pick a free port or stop what is using it") from None
        self.scheme = "https" if tls else "http"
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}"

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever(poll_interval=0.2)
        finally:
            self.httpd.server_close()
            if self.httpd.registry.upstream is not None:
                self.httpd.registry.upstream.close()

    def start(self) -> RegistryServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="wharf-registry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()
        if self.httpd.registry.upstream is not None:
            self.httpd.registry.upstream.close()
