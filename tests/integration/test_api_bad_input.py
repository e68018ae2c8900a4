"""Bad input over the API: the right status and message, and the daemon keeps serving
(no leaked connections or descriptors)."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import tarfile

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]


def request(sock_path, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
            ) -> tuple[int, bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock_path))
    hdrs = {"Host": "x", "Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    s.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()).encode()
              + b"\r\n" + body)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest


def daemon_pid(sock_path) -> int:
    return int((sock_path.parent / "api.pid").read_text())


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_ping_headers_and_versions(wharf_daemon):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(wharf_daemon))
    s.sendall(b"HEAD /_ping HTTP/1.1\r\nHost: x\r\n\r\nGET /v1.30/_ping HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n\r\nOK"):
        data += s.recv(4096)
    s.close()
    assert data.count(b"HTTP/1.1 200") == 2  # keep-alive: two answers on one connection
    assert b"Api-Version: 1.41" in data and b"Ostype: linux" in data
    status, body = request(wharf_daemon, "GET", "/v1.12/version")
    assert status == 400 and b"too old" in body
    assert request(wharf_daemon, "GET", "/v1.41/version")[0] == 200


@pytest.mark.parametrize("body,needle", [
    (b"{not json", b"malformed JSON"),
    (b"[1, 2]", b"JSON object"),
    (b'{"Image": 5}', b"Config.Image"),
    (b'{"Image": "busybox", "Cmd": [1]}', b"Config.Cmd"),
    (b'{"Image": "busybox", "HostConfig": {"Memory": "lots"}}', b"HostConfig.Memory"),
    (b'{"Image": "busybox", "HostConfig": {"PortBindings": {"http": []}}}', b"invalid port"),
])
def test_create_rejects_bad_bodies(wharf_daemon, body, needle):
    status, out = request(wharf_daemon, "POST", "/containers/create", body, {"Content-Type": "application/json"})
    assert status == 400, out
    assert needle in json.loads(out)["message"].encode()
    status, out = request(wharf_daemon, "GET", "/containers/json?all=1")
    assert status == 200 and json.loads(out) == []  # nothing half-created


def test_not_found_and_conflict(wharf_daemon):
    status, out = request(wharf_daemon, "GET", "/containers/nope/json")
    assert status == 404 and b"nope" in out
    assert request(wharf_daemon, "GET", "/images/nope:1/json")[0] == 404
    assert request(wharf_daemon, "GET", "/no/such/route")[0] == 404
    status, out = request(wharf_daemon, "POST", "/containers/create?name=dup", b'{"Image": "busybox"}')
    assert status == 201
    status, out = request(wharf_daemon, "POST", "/containers/create?name=dup", b'{"Image": "busybox"}')
    assert status == 409
    status, _ = request(wharf_daemon, "POST", "/containers/dup/kill")
    assert status == 409
    assert request(wharf_daemon, "GET", "/containers/json?filters=%7Bbad")[0] == 400
    assert request(wharf_daemon, "DELETE", "/containers/dup")[0] == 204


def test_oversized_body_is_refused(wharf_daemon):
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(wharf_daemon))
    # refused on the declared length, before the daemon reads (or we send) the body: sending 17 MiB first
    # raced with the daemon hanging up mid-write
    s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n{" + b" " * 1024)
    s.settimeout(30)
    data = s.recv(4096)
    s.close()
    assert b" 413 " in data.split(b"\r\n")[0]
    assert request(wharf_daemon, "GET", "/_ping")[0] == 200


def test_archive_put_refuses_path_traversal(wharf_daemon):
    status, out = request(wharf_daemon, "POST", "/containers/create?name=arc", b'{"Image": "busybox"}')
    assert status == 201
    for name, kind in (("../../escape", tarfile.REGTYPE), ("/abs/../../x", tarfile.REGTYPE)):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            ti = tarfile.TarInfo(name)
            ti.type, ti.size = kind, 3
            tar.addfile(ti, io.BytesIO(b"bad"))
        status, out = request(wharf_daemon, "PUT", "/containers/arc/archive?path=/tmp", buf.getvalue())
        assert status == 400 and b"traversal" in out, out
    buf = io.BytesIO()  # a symlink, then a file written through it
    with tarfile.open(fileobj=buf, mode="w") as tar:
        ln = tarfile.TarInfo("lnk")
        ln.type, ln.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(ln)
        f = tarfile.TarInfo("lnk/pwned")
        f.size = 1
        tar.addfile(f, io.BytesIO(b"x"))
    status, out = request(wharf_daemon, "PUT", "/containers/arc/archive?path=/tmp", buf.getvalue())
    assert status == 400 and b"through the link" in out
    assert not os.path.exists("/etc/pwned")
    assert request(wharf_daemon, "PUT", "/containers/arc/archive?path=/tmp", b"not a tar")[0] == 400
    assert request(wharf_daemon, "DELETE", "/containers/arc?force=1")[0] == 204


def test_client_disconnects_leak_nothing(wharf_daemon):
    pid = daemon_pid(wharf_daemon)
    assert request(wharf_daemon, "GET", "/_ping")[0] == 200
    before = fd_count(pid)
    for _ in range(5):  # hang up in the middle of a streaming answer (events follows forever)
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(wharf_daemon))
        s.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in s.recv(4096)
        s.close()
    for _ in range(5):  # and in the middle of a request body
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(wharf_daemon))
        s.sendall(b"POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"Ima")
        s.close()
    import time

    deadline = time.monotonic() + 10
    while fd_count(pid) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fd_count(pid) <= before
    assert request(wharf_daemon, "GET", "/_ping")[0] == 200


def test_socket_is_not_world_accessible(wharf_daemon):
    mode = stat.S_IMODE(os.stat(wharf_daemon).st_mode)
    assert mode == 0o660
