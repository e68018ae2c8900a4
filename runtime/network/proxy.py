"""Userland port proxy (like docker-proxy): `python -m runtime.network.proxy SPEC_JSON CONTAINER_ID`.

The alternative to DNAT for published ports (WHARF_USERLAND_PROXY=1). The publisher binds the
host sockets itself (so a taken port is a synchronous Conflict) and hands them over as inherited
fds; SPEC_JSON is [{"fd": N, "proto": "tcp"|"udp", "target": [ip, port]}]. TCP is copied with
splice(2) through a pipe (no copy into Python), one thread per direction; UDP keeps one
connected socket per client.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sys
import threading

CHUNK = 1 << 20


def _pump(src: socket.socket, dst: socket.socket) -> None:
    r, w = os.pipe()
    try:
        while True:
            n = os.splice(src.fileno(), w, CHUNK)
            if n == 0:
                break
            while n:
                n -= os.splice(r, dst.fileno(), n)
    except OSError:
        pass
    finally:
        os.close(r)
        os.close(w)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _serve_conn(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _tcp(listener: socket.socket, target: tuple[str, int]) -> None:
    listener.setblocking(True)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve_conn, args=(client, target), daemon=True).start()


def _udp(sock: socket.socket, target: tuple[str, int]) -> None:
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    peers: dict[tuple[str, int], socket.socket] = {}
    while True:
        for key, _ in sel.select():
            if key.data is None:
                data, client = sock.recvfrom(65535)
                up = peers.get(client)
                if up is None:
                    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    up.connect(target)
                    peers[client] = up
                    sel.register(up, selectors.EVENT_READ, client)
                with contextlib.suppress(OSError):
                    up.send(data)
            else:
                with contextlib.suppress(OSError):
                    sock.sendto(key.fileobj.recv(65535), key.data)  # type: ignore[union-attr]


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threads = []
    for item in json.loads(argv[1]):
        kind = socket.SOCK_STREAM if item["proto"] == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind, fileno=item["fd"])
        fn = _tcp if item["proto"] == "tcp" else _udp
        t = threading.Thread(target=fn, args=(sock, tuple(item["target"])), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
