"""The daemon's HTTP server: threaded, keep-alive, over unix sockets, TCP and TLS.

One thread per connection (socketserver.ThreadingMixIn over http.server). Each request
is matched by the router, the route's answer is written (JSON, bytes, chunked stream,
or nothing after a hijack), and WharfError becomes Docker's {"message": ...} with its
http_status. Nothing a client sends or does (bad JSON, huge bodies, hanging up in the
middle of a stream) takes the daemon down.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import socketserver
import ssl
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler
from typing import Any

from runtime.api.http import HIJACKED, Reply, Request, Stream
from runtime.api.router import API_VERSION, Router
from runtime.errors import WharfError

log = logging.getLogger("wharf.api")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Wharf"
    sys_version = ""
    timeout = 600  # an idle keep-alive connection is closed after this long
    hijacked = False

    # the server sets these on the class it makes per listener
    router: Router
    engine: Any
    cors = ""

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(30)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                log.info("TLS handshake refused: %s", e)
                raise ConnectionAbortedError(str(e)) from None
            self.request.settimeout(None)
        super().setup()

    def address_string(self) -> str:
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if log.isEnabledFor(logging.DEBUG):  # formatted only when it is written
            super().log_request(code, size)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def __getattr__(self, name: str):
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    # ------------------------------------------------------------ dispatch
    def dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        if self.cors and self.command == "OPTIONS":  # a browser's preflight
            self._send(200, b"", "text/plain")
            return
        req = None
        try:
            fn, params, version = self.router.match(self.command, path)
            req = Request(self, self.command, path, query, params, version)
            result = fn(self.engine, req)
        except WharfError as e:
            self._error(e.http_status, e.message + (f" ({e.hint})" if e.hint else ""), req)
            return
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
            return
        except Exception as e:  # noqa: BLE001 - a bug must answer 500, not kill the connection thread
            log.error("%s %s failed:\n%s", self.command, self.path, traceback.format_exc())
            self._error(500, f"internal error: {type(e).__name__}: {e}", req)
            return
        if result is HIJACKED or self.hijacked:
            self.close_connection = True
            return
        try:
            self._finish_body(req)
            self._write(result)
        except (ConnectionError, BrokenPipeError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def _finish_body(self, req: Request | None) -> None:
        if req is not None and not req.body.done:
            try:
                if not req.body.drain():
                    self.close_connection = True
            except WharfError:
                self.close_connection = True

    def _error(self, status: int, message: str, req: Request | None) -> None:
        log.debug("%s %s -> %s %s", self.command, self.path, status, message)
        if self.hijacked:
            return
        if req is None or not req.body.done:
            self.close_connection = True  # the body was not (fully) read: do not try to skip it
        try:
            self._send(status, json.dumps({"message": message}).encode() + b"\n", "application/json")
        except (ConnectionError, BrokenPipeError, TimeoutError, ssl.SSLError):
            self.close_connection = True

    def _common_headers(self) -> None:
        self.send_header("Api-Version", API_VERSION)
        self.send_header("Docker-Experimental", "false")
        self.send_header("Ostype", "linux")
        self.send_header("Server", f"Wharf/{_version()} (linux)")
        if self.cors:  # as dockerd's CORS middleware
            self.send_header("Access-Control-Allow-Origin", self.cors)
            self.send_header("Access-Control-Allow-Headers",
                             "Origin, X-Requested-With, Content-Type, Accept, X-Registry-Auth")
            self.send_header("Access-Control-Allow-Methods", "HEAD, GET, POST, DELETE, PUT, OPTIONS")

    def send_response(self, code: int, message: str | None = None) -> None:
        self.log_request(code)
        self.send_response_only(code, message)
        self._common_headers()

    def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if status != 204 and status != 304:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and status not in (204, 304):
            self._headers_buffer.append(body)
        self.flush_headers()  # head and body in one write: one wake-up of the client

    def _write(self, result: Any) -> None:
        if result is None:
            self._send(204, b"", "")
        elif isinstance(result, Reply):
            body = result.body
            if not isinstance(body, bytes | bytearray):
                body = b"" if body is None and result.status == 204 else json.dumps(body).encode() + b"\n"
            self._send(result.status, bytes(body), result.content_type, result.headers)
        elif isinstance(result, Stream):
            self._stream(result)
        else:
            self._send(200, json.dumps(result).encode() + b"\n", "application/json")

    def _stream(self, s: Stream) -> None:
        self.send_response(s.status)
        self.send_header("Content-Type", s.content_type)
        for k, v in s.headers.items():
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", "0")
            self.end_headers()
            _close(s.chunks)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        it = iter(s.chunks)
        try:
            for chunk in it:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
        except WharfError as e:  # an error after the headers: report it in-band (as dockerd does)
            msg = json.dumps({"error": e.message, "errorDetail": {"message": e.message}}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(msg), msg))
        except (ConnectionError, BrokenPipeError, TimeoutError, ssl.SSLError):
            self.close_connection = True
            return
        except Exception:  # noqa: BLE001 - a bug mid-stream: end the connection, keep the daemon
            log.error("stream %s failed:\n%s", self.path, traceback.format_exc())
            self.close_connection = True
            return
        finally:
            _close(it)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _close(it: Any) -> None:
    close = getattr(it, "close", None)
    if close:
        close()


def _version() -> str:
    from runtime import __version__

    return __version__


# ---------------------------------------------------------------- listeners


class _Threaded(socketserver.ThreadingMixIn):
    """One thread per connection, but threads are reused: a worker that finished its connection
    waits a while for the next one (starting a thread costs as much as answering a /_ping)."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128
    max_idle_workers = 16
    idle_timeout = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._idle: list[queue.SimpleQueue] = []
        self._lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        with self._lock:
            inbox = self._idle.pop() if self._idle else None
        if inbox is not None:
            inbox.put((request, client_address))
            return
        threading.Thread(target=self._worker, args=(request, client_address), daemon=True,
                         name="api-conn").start()

    def _worker(self, request, client_address) -> None:
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        job = (request, client_address)
        while job is not None:
            self.process_request_thread(*job)  # handles the connection, then closes it
            with self._lock:
                if len(self._idle) >= self.max_idle_workers:
                    return
                self._idle.append(inbox)
            try:
                job = inbox.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._lock:
                    if inbox in self._idle:
                        self._idle.remove(inbox)
                        return
                job = inbox.get()  # taken from the idle list just now: its connection is on the way

    def server_close(self) -> None:
        super().server_close()
        with self._lock:
            idle, self._idle = self._idle, []
        for inbox in idle:
            inbox.put(None)

    def handle_error(self, request, client_address) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | ssl.SSLError | TimeoutError):
            log.debug("connection dropped: %s", exc)  # refused TLS clients, hang-ups: not daemon errors
        else:
            log.error("connection failed:\n%s", traceback.format_exc())


class UnixServer(_Threaded, socketserver.UnixStreamServer):
    """Bound under a temporary name and renamed into place once it listens: a client that sees the
    path can connect (no 'connection refused' window while the daemon starts)."""

    def server_bind(self) -> None:
        self.final_path = path = self.server_address
        tmp = os.path.join(os.path.dirname(path), f".{os.getpid()}.sock")
        if len(tmp.encode()) < 108:  # sun_path's size; else bind in place
            self.server_address = tmp
        for p in {path, self.server_address}:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        old = os.umask(0o117)  # never world-accessible, not even for an instant
        try:
            super().server_bind()
        finally:
            os.umask(old)

    def server_activate(self) -> None:
        super().server_activate()
        if self.server_address != self.final_path:
            os.rename(self.server_address, self.final_path)
            self.server_address = self.final_path


class TCPServer(_Threaded, socketserver.TCPServer):
    ssl_context: ssl.SSLContext | None = None

    def get_request(self):
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait on small stream writes
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class TCP6Server(TCPServer):
    address_family = socket.AF_INET6


def make_handler(router: Router, engine: Any, cors: str = "") -> type[Handler]:
    """cors: the Access-Control-Allow-Origin of every answer (`serve --api-enable-cors`: *)."""
    return type("BoundHandler", (Handler,), {"router": router, "engine": engine, "cors": cors})


def debug_logging(enabled: bool) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if enabled else logging.INFO)
