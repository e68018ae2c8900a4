"""`wharf gitops --listen ADDR`: a push webhook that wakes the watcher at once (a pass fetches
the head as usual; the payload is not trusted for anything). With a secret, a request must be
signed like GitHub, Gitea and Forgejo sign (X-Hub-Signature-256: sha256=HMAC(secret, body)) or
carry it like GitLab does (X-Gitlab-Token: secret); anything else is refused with 401."""

from __future__ import annotations

import hashlib
import hmac
import threading
from typing import Any

from runtime.errors import InvalidArgument, RuntimeFailure

MAX_BODY = 32 << 20


def parse_listen(addr: str) -> tuple[str, int]:
    """HOST:PORT or :PORT (127.0.0.1: a hook is reachable from elsewhere only when asked)."""
    host, sep, port = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidArgument(f"--listen {addr}: expected HOST:PORT", hint="e.g. --listen 127.0.0.1:9000")
    return host, int(port)


def authorized(secret: bytes | None, headers: Any, body_mac: Any) -> bool:
    if secret is None:
        return True
    sig = headers.get("X-Hub-Signature-256", "")
    if sig.startswith("sha256=") and hmac.compare_digest(sig[7:], body_mac.hexdigest()):
        return True
    token = headers.get("X-Gitlab-Token")
    return token is not None and hmac.compare_digest(token.encode(), secret)


class HookServer:
    """An HTTP server on its own thread; every authorized POST sets `wake`."""

    def __init__(self, addr: str, wake: threading.Event, secret: bytes | None = None) -> None:
        self.host, self.port = parse_listen(addr)
        self.wake, self.secret = wake, secret
        self.server: Any = None
        self.hits = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.server.server_address[1]}/"

    def start(self) -> None:
        import socket
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        hook = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, text: str) -> None:
                body = (text + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                try:
                    n = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    n = -1
                if not 0 <= n <= MAX_BODY:
                    return self._reply(400, "a body with a Content-Length up to 32 MiB, please")
                mac = hmac.new(hook.secret or b"", digestmod=hashlib.sha256)
                while n > 0:
                    chunk = self.rfile.read(min(n, 1 << 16))
                    if not chunk:
                        return self._reply(400, "short body")
                    mac.update(chunk)
                    n -= len(chunk)
                if not authorized(hook.secret, self.headers, mac):
                    return self._reply(401, "bad or missing signature")
                hook.hits += 1
                hook.wake.set()
                self._reply(202, "a sync pass is on its way")

            def do_GET(self) -> None:  # noqa: N802
                self._reply(405, "POST a push event here")

            def log_message(self, *args: Any) -> None:  # the watcher's output is the log
                pass

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            daemon_threads = True

        try:
            self.server = Server((self.host, self.port), Handler)
        except OSError as e:
            raise RuntimeFailure(f"cannot listen on {self.host}:{self.port}: {e.strerror}",
                                 hint="pick another --listen address or port") from None
        threading.Thread(target=self.server.serve_forever, name="gitops-hook", daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


__all__ = ["HookServer", "authorized", "parse_listen"]
