"""RemoteEngine's client side against a scripted engine on a unix socket (no root): API version
step-down, engines that answer JSON as text/plain (podman), calls an engine does not serve,
the hijack handshake and its errors, multiplexed output, detach keys, the build context tar."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import tarfile
import threading
from pathlib import Path

import pytest

from runtime.api.remote import RemoteEngine
from runtime.api.remote_build import context_tar, stdin_context
from runtime.api.remote_stream import DETACHED, hijack, parse_detach_keys, pump
from runtime.errors import InvalidArgument, NotFound, RuntimeFailure


class Engine:
    """Answers each request with `handler(method, path, body) -> bytes` (a whole HTTP response)."""

    def __init__(self, tmp: Path, handler) -> None:
        self.path = str(tmp / "e.sock")
        self.seen: list[str] = []
        self.handler = handler
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(self.path)
        self.srv.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.conn, args=(c,), daemon=True).start()

    def conn(self, c: socket.socket) -> None:
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                length = 0
                while (h := f.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                body = f.read(length) if length else b""
                self.seen.append(f"{method} {path}")
                reply = self.handler(method, path, body, c, f)
                if reply is None:
                    return
                c.sendall(reply)
        except OSError:
            return
        finally:
            c.close()

    def close(self) -> None:
        self.srv.close()


def response(status: int, body: bytes = b"", ctype: str = "application/json") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
def engine(tmp_path):
    made = []

    def make(handler) -> tuple[Engine, RemoteEngine]:
        e = Engine(tmp_path, handler)
        made.append(e)
        return e, RemoteEngine(f"unix://{e.path}")

    yield make
    for e in made:
        e.close()


def test_api_version_steps_down_to_the_engines_maximum(engine, monkeypatch):
    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)

    def handler(method, path, body, c, f):
        if path.startswith("/v1.41/"):
            return response(400, b'{"message":"client version 1.41 is too new. Maximum supported API version '
                                  b'is 1.40"}')
        return response(200, b'{"Volumes":[{"Name":"v1","Driver":"local","Labels":null}]}')

    e, eng = engine(handler)
    assert [v.name for v in eng.volumes.list()] == ["v1"]
    assert [s.split("?")[0] for s in e.seen] == ["GET /v1.41/volumes", "GET /v1.40/volumes"]
    eng.volumes.list()
    assert e.seen[-1].startswith("GET /v1.40/")  # remembered


def test_text_plain_json_and_calls_an_engine_does_not_serve(engine):
    def handler(method, path, body, c, f):
        if "/top" in path:
            return response(200, b'{"Titles":["PID"],"Processes":[["1"]]}', "text/plain; charset=utf-8")
        if "/update" in path:
            return response(404, b"Not Found", "text/plain")
        return response(404, b'{"message":"No such container: zz"}')

    _, eng = engine(handler)
    assert eng.containers.top("c") == (["PID"], [["1"]])
    with pytest.raises(NotFound, match="does not serve this call"):
        eng.containers.update("c")
    with pytest.raises(NotFound, match="No such container: zz"):
        eng.containers.inspect("zz")


def test_hijack_handshake_errors_and_multiplexed_output(engine, tmp_path):
    def handler(method, path, body, c, f):
        if "/nosuch/" in path:
            return response(404, b'{"message":"No such container: nosuch"}')
        c.sendall(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
                  + struct.pack(">BxxxI", 1, 4) + b"out\n")
        c.sendall(struct.pack(">BxxxI", 2, 4) + b"err\n" + struct.pack(">BxxxI", 1, 2) + b"o2")
        return None  # hang up: the stream ended

    _, eng = engine(handler)
    with pytest.raises(NotFound, match="No such container: nosuch"):
        eng.containers.attach_stream("nosuch", stdin=False)
    sock, first = eng.containers.attach_stream("c1", stdin=False)
    out, err = io.BytesIO(), io.BytesIO()
    assert pump(sock, first, stdin=False, tty=False, out=out, err=err) is None
    assert out.getvalue() == b"out\no2" and err.getvalue() == b"err\n"


def test_detach_keys_on_a_terminal(engine):
    import pty

    got = []

    def handler(method, path, body, c, f):
        c.sendall(b"HTTP/1.1 101 UPGRADED\r\n\r\n")
        got.append(c.recv(100))
        threading.Event().wait(5)  # the client leaves first
        return None

    _, eng = engine(handler)
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)  # bytes arrive as typed, no line editing
    saved = os.dup(0)
    os.dup2(slave, 0)
    try:
        sock, first = hijack(eng.client, "/containers/c/attach", {"stdin": 1})
        os.write(master, b"ls\x10\x11more")
        assert pump(sock, first, stdin=True, tty=False, out=io.BytesIO(), err=io.BytesIO()) == DETACHED
    finally:
        os.dup2(saved, 0)
        os.close(saved)
        os.close(master)
        os.close(slave)
    import time

    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:  # the engine's thread reads what was sent
        time.sleep(0.01)
    assert got == [b"ls"]  # the keys themselves and what follows stay here
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("a,ctrl-@") == b"a\x00"
    with pytest.raises(InvalidArgument):
        parse_detach_keys("ctrl-pp")


def test_refused_connection_is_one_clear_error(tmp_path):
    with pytest.raises(RuntimeFailure, match="cannot connect to the engine API"):
        RemoteEngine(f"unix://{tmp_path}/none.sock").volumes.list()


def test_context_tar_honours_dockerignore_and_outside_dockerfile(tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "src" / "cache").mkdir(parents=True)
    (ctx / "src" / "a.py").write_text("a")
    (ctx / "src" / "cache" / "x").write_text("x")
    (ctx / "src" / "cache" / "keep").write_text("k")
    (ctx / "notes.md").write_text("n")
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    (ctx / ".dockerignore").write_text("*.md\nsrc/cache\n!src/cache/keep\nDockerfile\n")
    tar, name = context_tar(str(ctx))
    with tarfile.open(fileobj=tar) as t:
        names = set(t.getnames())
    assert name == "Dockerfile"
    # the Dockerfile and .dockerignore always go, excluded files do not, `!` brings one back
    assert {"Dockerfile", ".dockerignore", "src/a.py", "src/cache/keep"} <= names
    assert "notes.md" not in names and "src/cache/x" not in names
    (tmp_path / "Other.Dockerfile").write_text("FROM busybox\n")
    tar, name = context_tar(str(ctx), str(tmp_path / "Other.Dockerfile"))
    with tarfile.open(fileobj=tar) as t:
        assert name.startswith(".dockerfile.") and t.extractfile(name).read() == b"FROM busybox\n"
        assert name in t.extractfile(".dockerignore").read().decode().split()
    tar, name = context_tar(str(ctx), str(ctx / "src" / "a.py"))
    assert name == "src/a.py"
    with pytest.raises(NotFound):
        context_tar(str(tmp_path / "nope"))
    buf, name = stdin_context(b"FROM busybox\n", None)
    with tarfile.open(fileobj=buf) as t:
        assert t.getnames() == ["Dockerfile"] and name == "Dockerfile"


def test_exec_body_and_build_stream(engine, tmp_path):
    bodies = {}

    def handler(method, path, body, c, f):
        bodies[path.split("?")[0]] = body
        if path.startswith("/v1.41/build"):
            lines = [{"stream": "Step 1/1 : FROM busybox\n"}, {"aux": {"ID": "sha256:" + "a" * 64}},
                     {"stream": "Successfully built aaaaaaaaaaaa\n"}]
            return response(200, b"".join(json.dumps(m).encode() + b"\n" for m in lines))
        if path.startswith("/v1.41/images/"):
            return response(200, json.dumps({"Id": "sha256:" + "a" * 64, "RepoTags": ["t:1"]}).encode())
        return response(201, b'{"Id":"e1"}')

    _, eng = engine(handler)
    assert eng.containers.exec_create("c", ["sh"], tty=True, stdin=True, size=(30, 90)) == "e1"
    sent = json.loads(bodies["/v1.41/containers/c/exec"])
    assert sent["ConsoleSize"] == [30, 90] and sent["AttachStdin"] and sent["Tty"]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    seen = []
    img = eng.images.build(str(ctx), tags=["t:1"], progress=seen.append)
    assert img.id == "sha256:" + "a" * 64 and seen[0] == "Step 1/1 : FROM busybox\n"
    with tarfile.open(fileobj=io.BytesIO(bodies["/v1.41/build"])) as t:
        assert "Dockerfile" in t.getnames()
