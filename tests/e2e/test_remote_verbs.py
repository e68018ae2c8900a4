"""`wharf --host unix://...` against `wharf serve`: run, attach, exec, cp, export, build and the other
container verbs go through the Engine API (hijacked connections), as the docker CLI's do."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]

WHARF = str(Path(sys.executable).with_name("wharf"))


@pytest.fixture
def host(wharf_daemon, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("WHARF_HOST", raising=False)
    return f"unix://{wharf_daemon}"


def wharf(host: str, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60):
    p = subprocess.run([WHARF, "--host", host, *args], capture_output=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def out(host: str, *args: str, **kw) -> str:
    return wharf(host, *args, **kw).stdout.decode()


def name() -> str:
    return "rv" + os.urandom(3).hex()


class Term:
    """A wharf command on a real pseudo-terminal (pty.fork), read until markers appear."""

    def __init__(self, host: str, *args: str, rows: int = 24, cols: int = 80) -> None:
        import pty

        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(WHARF, [WHARF, "--host", host, *args])
        self.resize(rows, cols)
        self.buf = b""

    def resize(self, rows: int, cols: int) -> None:
        import fcntl
        import struct
        import termios

        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, marker: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buf and time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.buf += chunk
        assert marker in self.buf, f"{marker!r} not in {self.buf[-400:]!r}"
        return self.buf

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def exit_code(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return os.waitstatus_to_exitcode(status)
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except OSError:
                    pass
        raise AssertionError(f"still running; output: {self.buf[-400:]!r}")

    def close(self) -> None:
        if self.pid:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_run_attached_exit_code_stdin_rm_and_detached(host):
    p = wharf(host, "run", "--rm", "--network", "none", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3",
              check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
    assert out(host, "ps", "-aq") == ""  # --rm removed it
    p = wharf(host, "run", "--rm", "-i", "--network", "none", "busybox", "tr", "a-z", "A-Z", input=b"hello\n")
    assert p.stdout == b"HELLO\n"
    n = name()
    cid = out(host, "run", "-d", "--name", n, "--network", "none", "-l", "k=v", "busybox", "sleep", "60").strip()
    assert len(cid) == 64
    doc = json.loads(out(host, "inspect", n))[0]
    assert doc["State"]["Running"] and doc["Config"]["Labels"]["k"] == "v"
    assert wharf(host, "run", "--network", "none", "busybox", "nonexistent-cmd", check=False).returncode == 127
    assert wharf(host, "run", "--network", "none", "no-such-image:9", check=False).returncode == 125
    wharf(host, "rm", "-f", n)


def test_exec_flags_and_exit_code(host):
    n = name()
    wharf(host, "run", "-d", "--name", n, "--network", "none", "busybox", "sleep", "60")
    p = wharf(host, "exec", "-e", "A=1", "-u", "nobody", "-w", "/tmp", n, "sh", "-c", 'echo "$A $(id -u) $PWD"; exit 4',
              check=False)
    assert (p.returncode, p.stdout) == (4, b"1 65534 /tmp\n")
    assert wharf(host, "exec", "-i", n, "cat", input=b"piped\n").stdout == b"piped\n"
    wharf(host, "exec", "-d", n, "sh", "-c", "echo bg > /tmp/bg")
    deadline = time.monotonic() + 5
    while wharf(host, "exec", n, "cat", "/tmp/bg", check=False).stdout != b"bg\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    p = wharf(host, "exec", "nosuch" + n, "true", check=False)
    assert p.returncode == 1 and b"nosuch" in p.stderr and b"Traceback" not in p.stderr
    wharf(host, "rm", "-f", n)


def test_cp_both_ways_tar_stream_and_export(host, tmp_path):
    n = name()
    wharf(host, "run", "-d", "--name", n, "--network", "none", "busybox", "sleep", "60")
    (tmp_path / "f.txt").write_text("one")
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "sub" / "x").write_text("x")
    wharf(host, "cp", str(tmp_path / "f.txt"), f"{n}:/tmp/")  # into a directory: keeps its name
    wharf(host, "cp", str(tmp_path / "f.txt"), f"{n}:/tmp/renamed")  # a new path: the copy's name
    wharf(host, "cp", str(tmp_path / "d"), f"{n}:/tmp/")
    assert out(host, "exec", n, "cat", "/tmp/f.txt", "/tmp/renamed", "/tmp/d/sub/x") == "oneonex"
    back = tmp_path / "back"
    back.mkdir()
    wharf(host, "cp", f"{n}:/tmp/d", str(back))  # into an existing directory
    wharf(host, "cp", f"{n}:/tmp/f.txt", str(back / "g.txt"))  # to a new name
    wharf(host, "cp", f"{n}:/tmp/d/.", str(back / "contents"))  # the directory's contents
    assert (back / "d" / "sub" / "x").read_text() == "x"
    assert (back / "g.txt").read_text() == "one"
    assert (back / "contents" / "sub" / "x").read_text() == "x"
    raw = wharf(host, "cp", f"{n}:/tmp/f.txt", "-").stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as t:
        assert t.getnames() == ["f.txt"] and t.extractfile("f.txt").read() == b"one"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("from-stdin")
        info.size = 3
        t.addfile(info, io.BytesIO(b"std"))
    wharf(host, "cp", "-", f"{n}:/tmp", input=buf.getvalue())
    assert out(host, "exec", n, "cat", "/tmp/from-stdin") == "std"
    p = wharf(host, "cp", f"{n}:/nonexistent", str(back), check=False)
    assert p.returncode == 1 and b"nonexistent" in p.stderr
    wharf(host, "export", "-o", str(tmp_path / "fs.tar"), n)
    with tarfile.open(tmp_path / "fs.tar") as t:
        names = set(t.getnames())
    assert {"bin/busybox", "tmp/f.txt", "tmp/d/sub/x"} <= {x.lstrip("./") for x in names}
    wharf(host, "rm", "-f", n)


def test_pty_run_resize_attach_detach_and_exec_tty(host):
    t = Term(host, "run", "--rm", "-it", "--network", "none", "busybox", "sh", rows=33, cols=101)
    try:
        t.read_until(b"#")
        t.write(b"tty; stty size; echo mark-$((6*7))\r")
        t.read_until(b"mark-42")
        assert b"/dev/pts/" in t.buf and b"33 101" in t.buf
        t.resize(40, 120)  # SIGWINCH to wharf -> POST /containers/{id}/resize
        for i in range(50):  # the resize is asynchronous: ask until the shell sees it
            t.write(b"stty size; echo sz-%d-$((1+1))\r" % i)
            t.read_until(b"sz-%d-2" % i)
            if b"40 120" in t.buf:
                break
            time.sleep(0.05)
        assert b"40 120" in t.buf
        t.write(b"exit 7\r")
        assert t.exit_code() == 7
    finally:
        t.close()
    n = name()
    cid = out(host, "run", "-d", "-it", "--name", n, "--network", "none", "busybox", "sh").strip()
    t = Term(host, "attach", n)
    try:
        t.write(b"echo attach''ed\r")
        t.read_until(b"attached")
        t.write(b"\x10\x11")  # ctrl-p ctrl-q
        assert t.exit_code() == 0
    finally:
        t.close()
    assert json.loads(out(host, "inspect", cid))[0]["State"]["Running"] is True
    t = Term(host, "exec", "-it", n, "sh", "-c", "tty; stty size; exit 3", rows=21, cols=77)
    try:
        assert t.exit_code() == 3
        assert b"/dev/pts/" in t.buf and b"21 77" in t.buf
    finally:
        t.close()
    t = Term(host, "attach", n)  # attach again: the shell is still there; exit ends the attach
    try:
        t.write(b"exit 5\r")
        assert t.exit_code() == 5
    finally:
        t.close()
    wharf(host, "rm", "-f", n)


def test_build_context_dockerignore_args_target_file(host, tmp_path):
    ctx = tmp_path / "ctx"
    (ctx / "keep").mkdir(parents=True)
    (ctx / "keep" / "a").write_text("a")
    (ctx / "secret.key").write_text("no")
    (ctx / "logs").mkdir()
    (ctx / "logs" / "x.log").write_text("no")
    (ctx / ".dockerignore").write_text("*.key\nlogs\n")
    (tmp_path / "Outside.Dockerfile").write_text(
        "FROM busybox AS base\nARG GREETING=none\nCOPY . /ctx\nRUN echo $GREETING > /greeting\n"
        "FROM base AS final\nRUN echo final > /final\n")
    tag = name() + ":1"
    p = wharf(host, "build", "-t", tag, "-f", str(tmp_path / "Outside.Dockerfile"), "--build-arg", "GREETING=hi",
              "--target", "base", str(ctx))
    assert b"Successfully" in p.stdout
    listing = out(host, "run", "--rm", "--network", "none", tag, "sh", "-c",
                  "cat /greeting; cd /ctx && find . | sort; test -e /final && echo has-final || true")
    lines = listing.split()
    assert lines[0] == "hi" and "./keep/a" in lines and "./.dockerignore" in lines
    assert "./secret.key" not in lines and "./logs" not in lines and "has-final" not in lines
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN false\n")
    p = wharf(host, "build", "-q", str(ctx), check=False)
    assert p.returncode == 1 and p.stderr.strip().splitlines()[-1].startswith(b"wharf: error: build:")
    assert b"false" in p.stderr
    wharf(host, "run", "--rm", "--network", "none", tag, "true")


def test_start_attach_top_diff_commit_update_stats_prune(host):
    n = name()
    out(host, "create", "--name", n, "--network", "none", "busybox", "sh", "-c", "echo hi > /made; echo started")
    p = wharf(host, "start", "-a", n)
    assert p.stdout == b"started\n"
    assert "A /made" in out(host, "container", "diff", n).splitlines()
    img = out(host, "commit", n, name() + ":c").strip()
    assert img.startswith("sha256:")
    cid = json.loads(out(host, "inspect", n))[0]["Id"]
    r = name()
    wharf(host, "run", "-d", "--name", r, "--network", "none", "busybox", "sleep", "60")
    top = out(host, "top", r)
    assert "sleep 60" in top
    wharf(host, "update", "-m", "64m", r)
    assert json.loads(out(host, "inspect", r))[0]["HostConfig"]["Memory"] == 64 << 20
    st = out(host, "stats", "--no-stream", r)
    assert r in st and "64MiB" in st
    wharf(host, "rm", "-f", r)
    assert cid in out(host, "container", "prune", "-f")
    assert out(host, "ps", "-aq") == ""
