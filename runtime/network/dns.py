"""The embedded DNS daemon: `python -m runtime.network.dns STATE_DIR` (started by dnsctl).

Listens on each user network's gateway (UDP and TCP port 53) and answers A queries for the
container names and aliases of that network only; anything else is NXDOMAIN. It never forwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

IP_FREEBIND = 15
TTL = 600


class Records:
    """dns.json, read for every query: it is small, and a stat stamp (inode, mtime, size) can miss a
    rewrite within one timer tick that reuses the inode and keeps the size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}

    def get(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                self.data = json.load(f)
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError):
            pass  # keep the last good copy
        return self.data


def lookup(data: dict[str, Any], gateway: str, client: str, name: str) -> list[str] | None:
    """The addresses of `name` for a client that asked on `gateway`: its networks' zones, this one first."""
    zones = data.get("zones", {})
    for gw in data.get("views", {}).get(gateway, {}).get(client, [gateway]):
        found = zones.get(gw, {}).get(name)
        if found is not None:
            return found
    return None


def answer(packet: bytes, resolve: Any) -> bytes | None:
    """The reply to one DNS query; resolve(name) -> [ips] or None (NXDOMAIN)."""
    from dnslib import QTYPE, RCODE, RR, A, DNSRecord

    try:
        req = DNSRecord.parse(packet)
    except Exception:
        return None
    reply = req.reply()
    if req.header.opcode != 0 or not req.questions:
        reply.header.rcode = RCODE.NOTIMP
        return reply.pack()
    q = req.questions[0]
    name = str(q.qname).rstrip(".").lower()
    ips = resolve(name)
    if ips is None:
        reply.header.rcode = RCODE.NXDOMAIN
    elif q.qtype in (QTYPE.A, QTYPE.ANY):
        for ip in ips:
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(ip), ttl=TTL))
    return reply.pack()


class Server:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        self.records = Records(state_dir / "dns.json")
        self.sel = selectors.DefaultSelector()
        self.socks: dict[str, tuple[socket.socket, socket.socket]] = {}
        self.reload_wanted = True
        self.running = True

    def resolver(self, gateway: str, client: str) -> Any:
        return lambda name: lookup(self.records.get(), gateway, client, name)

    def reload(self) -> None:
        data = self.records.get()
        wanted = set(data.get("zones", {}))
        for gw in list(self.socks):
            if gw not in wanted:
                for s in self.socks.pop(gw):
                    self.sel.unregister(s)
                    s.close()
        for gw in sorted(wanted - set(self.socks)):
            try:
                self.socks[gw] = self._listen(gw)
            except OSError as e:
                print(f"wharf-dns: cannot listen on {gw}:53: {e.strerror}", file=sys.stderr, flush=True)
        if not wanted:
            self.running = False
            return
        tmp = self.dir / f".dns.loaded.{os.getpid()}"
        tmp.write_text(data.get("listeners", ""))
        os.replace(tmp, self.dir / "dns.loaded")

    def _listen(self, gw: str) -> tuple[socket.socket, socket.socket]:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        for s in (udp, tcp):
            s.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)  # the bridge address may come up after us
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((gw, 53))
            s.setblocking(False)
        tcp.listen(64)
        self.sel.register(udp, selectors.EVENT_READ, ("udp", gw))
        self.sel.register(tcp, selectors.EVENT_READ, ("tcp", gw))
        return udp, tcp

    def serve(self) -> None:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reload_wanted", True))
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "running", False))
        self.sel.register(rfd, selectors.EVENT_READ, ("wake", ""))
        while self.running:
            if self.reload_wanted:
                self.reload_wanted = False
                self.reload()
                continue
            events = self.sel.select(timeout=5)
            if not events and not (self.dir / "dns.json").exists():
                break  # our state dir is gone (a test's tmp dir removed without teardown): nothing to serve
            for key, _ in events:
                kind, gw = key.data
                if kind == "wake":
                    with contextlib.suppress(BlockingIOError):
                        os.read(rfd, 512)
                elif kind == "udp":
                    self._udp(key.fileobj, gw)  # type: ignore[arg-type]
                else:
                    self._tcp(key.fileobj, gw)  # type: ignore[arg-type]

    def _udp(self, s: socket.socket, gw: str) -> None:
        try:
            packet, peer = s.recvfrom(4096)
        except (BlockingIOError, InterruptedError):
            return
        out = answer(packet, self.resolver(gw, peer[0]))
        if out is not None:
            with contextlib.suppress(OSError):
                s.sendto(out, peer)

    def _tcp(self, s: socket.socket, gw: str) -> None:
        try:
            conn, peer = s.accept()
        except (BlockingIOError, InterruptedError):
            return
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                head = _recv(conn, 2)
                packet = _recv(conn, struct.unpack("!H", head)[0])
                out = answer(packet, self.resolver(gw, peer[0]))
                if out is not None:
                    conn.sendall(struct.pack("!H", len(out)) + out)


def _recv(conn: socket.socket, n: int) -> bytes:
    data = conn.recv(n, socket.MSG_WAITALL)
    if len(data) != n:
        raise ConnectionError("short read")
    return data


def main(argv: list[str]) -> int:
    import dnslib  # noqa: F401 - loaded before we report ready, so the first answer is not slow

    state_dir = Path(argv[1])
    Server(state_dir).serve()
    for name in ("dns.loaded",):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    with contextlib.suppress(FileNotFoundError, ValueError):
        if int((state_dir / "dns.pid").read_text()) == os.getpid():
            (state_dir / "dns.pid").unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
