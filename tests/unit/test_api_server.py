"""The daemon's HTTP server without an engine: connection threads are reused, several
connections are served at once, one write per answer, and closing the server ends idle workers."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from runtime.api.router import Router
from runtime.api.server import UnixServer, make_handler


@pytest.fixture
def server(tmp_path):
    router = Router()
    seen: list[str] = []
    release = threading.Event()

    @router.route("GET", r"/who")
    def who(engine, req):
        seen.append(threading.current_thread().name + str(threading.get_ident()))
        return {"ok": True}

    @router.route("GET", r"/block")
    def block(engine, req):
        seen.append("block")
        assert release.wait(10)
        return {"released": True}

    srv = UnixServer(str(tmp_path / "s.sock"), make_handler(router, None))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield srv, str(tmp_path / "s.sock"), seen, release
    finally:
        release.set()
        srv.shutdown()
        srv.server_close()
        t.join(5)


def get(path: str, url: str) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_connection_threads_are_reused(server):
    srv, path, seen, _ = server
    for _ in range(20):
        reply = get(path, "/who")
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b'{"ok": true}\n')
        deadline = time.monotonic() + 5
        while not srv._idle and time.monotonic() < deadline:  # the worker is back in the pool
            time.sleep(0.001)
    assert len(set(seen)) == 1


def test_busy_workers_do_not_hold_up_new_connections(server):
    srv, path, seen, release = server
    results: list[bytes] = []
    blockers = [threading.Thread(target=lambda: results.append(get(path, "/block"))) for _ in range(3)]
    for b in blockers:
        b.start()
    deadline = time.monotonic() + 5
    while seen.count("block") < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert seen.count("block") == 3
    assert get(path, "/who").startswith(b"HTTP/1.1 200 ")  # while three others are busy
    release.set()
    for b in blockers:
        b.join(10)
    assert len(results) == 3 and all(b'"released": true' in r for r in results)


def test_closing_the_server_ends_idle_workers(tmp_path):
    srv = UnixServer(str(tmp_path / "c.sock"), make_handler(Router(), None))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    assert get(str(tmp_path / "c.sock"), "/nothing").startswith(b"HTTP/1.1 404 ")
    deadline = time.monotonic() + 5
    while not srv._idle and time.monotonic() < deadline:
        time.sleep(0.001)
    workers = [w for w in threading.enumerate() if w.name == "api-conn"]
    assert workers
    srv.shutdown()
    srv.server_close()
    t.join(5)
    for w in workers:
        w.join(5)
        assert not w.is_alive()


def test_tcp_connections_do_not_wait_for_nagle():
    """Small stream writes (chunks, hijacked frames) go out at once: a delayed ACK would hold each ~40 ms."""
    from runtime.api.server import TCPServer

    router = Router()

    @router.route("GET", r"/nodelay")
    def nodelay(engine, req):
        return {"nodelay": req.handler.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)}

    srv = TCPServer(("127.0.0.1", 0), make_handler(router, None))
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        with socket.create_connection(srv.server_address, timeout=10) as s:
            s.sendall(b"GET /nodelay HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        assert out.endswith(b'{"nodelay": 1}\n')
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)
