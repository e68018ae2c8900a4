"""A minimal synchronous rtnetlink client for the per-container hot path (veth, address, route, up/down).

pyroute2 0.9 costs ~130 ms to import (asyncio and every message class), more than all of a
container's network setup; the dozen requests a container needs are built here with struct
instead. pyroute2 stays for the rest (dumps of routes and addresses when a network is created).
A Netlink object talks to the netns of the thread that created it.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from ipaddress import IPv4Address

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_GROUP, IFLA_NET_NS_FD = \
    1, 3, 4, 10, 18, 20, 27, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_OIF, RTA_GATEWAY = 4, 5
IFF_UP = 1
NLA_F_NESTED = 0x8000
_IFINFO = struct.Struct("=BxHiII")
_NLHDR = struct.Struct("=IHHII")


def _attr(kind: int, data: bytes) -> bytes:
    size = 4 + len(data)
    return struct.pack("=HH", size, kind) + data + b"\0" * (-size % 4)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _name(name: str) -> bytes:
    return _attr(IFLA_IFNAME, name.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _mac(mac: str) -> bytes:
    return _attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", "")))


def _ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


class Netlink:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[bytes]:
        """Send one request, return the payloads of the replies; raise OSError on a netlink error."""
        self.seq += 1
        seq = self.seq
        self.sock.send(_NLHDR.pack(_NLHDR.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0) + body)
        out: list[bytes] = []
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + _NLHDR.size <= len(data):
                size, mtype, _, mseq, _ = _NLHDR.unpack_from(data, off)
                payload = data[off + _NLHDR.size: off + size]
                off += (size + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, os.strerror(err))
                    return out
                if mtype == NLMSG_DONE:
                    return out
                out.append(payload)

    # -------------------------------------------------------------- links

    def index(self, name: str) -> int | None:
        try:
            replies = self._request(RTM_GETLINK, 0, _ifinfo() + _name(name))
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _IFINFO.unpack_from(replies[0])[2] if replies else None

    def add_bridge(self, name: str, mtu: int | None = None) -> None:
        attrs = _name(name) + _nested(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"bridge"))
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo() + attrs)

    def add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int | None = None) -> None:
        """A veth pair `name` (here) <-> `peer` (created directly in the netns behind the fd)."""
        peer_attrs = _name(peer) + _u32(IFLA_NET_NS_FD, peer_netns_fd) + (_u32(IFLA_MTU, mtu) if mtu else b"")
        info = _nested(IFLA_LINKINFO, _attr(IFLA_INFO_KIND, b"veth"),
                       _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, _ifinfo() + peer_attrs)))
        attrs = _name(name) + info + (_u32(IFLA_MTU, mtu) if mtu else b"")
        self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, _ifinfo() + attrs)

    def set_link(self, index: int, *, up: bool | None = None, master: int | None = None,
                 ifname: str | None = None, mac: str | None = None, group: int | None = None,
                 alias: str | None = None) -> None:
        attrs = b""
        if alias is not None:
            attrs += _attr(IFLA_IFALIAS, alias.encode())
        if master is not None:
            attrs += _u32(IFLA_MASTER, master)
        if ifname is not None:
            attrs += _name(ifname)
        if mac is not None:
            attrs += _mac(mac)
        if group is not None:
            attrs += _u32(IFLA_GROUP, group)
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        self._request(RTM_NEWLINK, 0, _ifinfo(index, flags, change) + attrs)

    def delete(self, index: int) -> None:
        self._request(RTM_DELLINK, 0, _ifinfo(index))

    # -------------------------------------------------------------- addresses and routes

    def add_address(self, index: int, address: str, prefix: int) -> None:
        raw = IPv4Address(address).packed
        body = struct.pack("=BBBBI", socket.AF_INET, prefix, 0, 0, index) + _attr(IFA_LOCAL, raw) + \
            _attr(IFA_ADDRESS, raw)
        self._request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)

    def add_default_route(self, gateway: str, oif: int) -> None:
        # rtmsg: family, dst_len, src_len, tos, table main, protocol static, scope universe, type unicast
        body = struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 254, 4, 0, 1, 0) + \
            _attr(RTA_GATEWAY, IPv4Address(gateway).packed) + _u32(RTA_OIF, oif)
        self._request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body)
