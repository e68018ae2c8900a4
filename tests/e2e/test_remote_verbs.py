"""`wharf --host unix://...` against `wharf serve`, a private dockerd and a private podman API
service: run, attach, exec, cp, export, build, the other container verbs and the reconciler
go through the Engine API (hijacked connections), as the docker CLI's do.

dockerd and podman are optional peers: their cases skip when the binary is missing (or the
daemon does not come up here). Each runs in a private directory (its own data root, exec root,
socket, cgroup parent, registry access blocked: a pull never leaves 127.0.0.1), started once
per test module and worker, and everything it made is removed afterwards."""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]

WHARF = str(Path(sys.executable).with_name("wharf"))
NO_REGISTRY = "127.0.0.1:9/nope:1"  # a reference whose pull fails at once, on loopback


def busybox_tar(d: Path) -> Path:
    env = {**os.environ, "WHARF_ROOT": str(d / "wroot"), "WHARF_RUN": str(d / "wrun")}
    env.pop("WHARF_HOST", None)
    env.pop("DOCKER_HOST", None)
    subprocess.run([WHARF, "image", "bootstrap", "busybox"], env=env, check=True, capture_output=True)
    subprocess.run([WHARF, "save", "-o", str(d / "bb.tar"), "busybox"], env=env, check=True, capture_output=True)
    shutil.rmtree(d / "wroot", ignore_errors=True)
    shutil.rmtree(d / "wrun", ignore_errors=True)
    return d / "bb.tar"


def _procs_under(d: Path) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if str(d).encode() in f.read():
                        out.append(int(pid))
            except OSError:
                continue
    return out


def stop_peer(proc: subprocess.Popen, host: str, d: Path, cgroup_parents: list[str]) -> None:
    """Remove every container the peer holds, stop it, then whatever it left: processes, mounts,
    cgroups, files."""
    from runtime.api.remote import RemoteEngine

    try:
        eng = RemoteEngine(host)
        for c in eng.containers.list(all=True):
            try:
                eng.containers.remove(c.id, force=True, volumes=True)
            except Exception:  # noqa: BLE001 - best effort before the stop
                pass
    except Exception:  # noqa: BLE001 - the peer may be gone already
        pass
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid in _procs_under(d):  # containerd, shims, conmon of this private instance only
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for m in sorted((m for m in mounts if m.startswith(str(d) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)
    for parent in cgroup_parents:
        for base in Path("/sys/fs/cgroup").glob("*"):
            cg = base / parent
            if cg.is_dir():
                for sub in sorted(cg.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                    try:
                        os.rmdir(sub)
                    except OSError:
                        pass


def start_peer(argv: list[str], sock: Path, d: Path, env: dict[str, str], cgroup_parents: list[str]):
    from runtime.api.remote import RemoteEngine

    log = open(d / "log", "wb")  # noqa: SIM115 - closed when the process is
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    log.close()
    host = f"unix://{sock}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if sock.exists() and RemoteEngine(host).ping():
                break
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = (d / "log").read_text(errors="replace")[-600:]
            stop_peer(proc, host, d, cgroup_parents)
            pytest.skip(f"{argv[0]} did not come up here: {tail}")
        time.sleep(0.05)
    try:
        RemoteEngine(host).client.call("POST", "/images/load", body=(d / "bb.tar").read_bytes(),
                                       headers={"Content-Type": "application/x-tar"})
    except BaseException:
        stop_peer(proc, host, d, cgroup_parents)
        raise
    return proc, host


def start_dockerd(exe: str):
    """A private dockerd: no bridge, no iptables/ip_forward changes, its own roots, socket and cgroup
    parent, pulls only from loopback. (process, host, dir, cgroup parents) for stop_peer."""
    d = Path(tempfile.mkdtemp(prefix="h3d-", dir="/tmp"))
    busybox_tar(d)
    cg = [d.name]
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "NO_PROXY": "127.0.0.1,localhost"}  # a pull that is not for a loopback registry fails at once
    argv = [exe, "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
            "--bridge=none", "-H", f"unix://{d}/docker.sock", "--data-root", str(d / "root"),
            "--exec-root", str(d / "exec"), "--pidfile", str(d / "pid"), "--cgroup-parent", f"/{d.name}",
            "--default-address-pool", "base=10.214.0.0/16,size=24", "--config-file", str(d / "daemon.json")]
    (d / "daemon.json").write_text("{}")
    proc, host = start_peer(argv, d / "docker.sock", d, env, cg)
    return proc, host, d, cg


@pytest.fixture(scope="module")
def dockerd():
    exe = shutil.which("dockerd")
    if exe is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    proc, host, d, cg = start_dockerd(exe)
    yield host
    stop_peer(proc, host, d, cg)


@pytest.fixture(scope="module")
def podman():
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed (apt-get install podman)")
    d = Path(tempfile.mkdtemp(prefix="h3p-", dir="/tmp"))
    busybox_tar(d)
    # PEERS.md: the VM's hard limits are lower than podman's defaults; runc copes with hybrid cgroups
    (d / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        '[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n')
    (d / "registries.conf").write_text(  # nothing leaves the machine: only loopback registries
        'unqualified-search-registries = []\n[[registry]]\nlocation = "docker.io"\nblocked = true\n')
    env = {**os.environ, "CONTAINERS_CONF": str(d / "containers.conf"),
           "CONTAINERS_REGISTRIES_CONF": str(d / "registries.conf")}
    argv = [exe, "--root", str(d / "root"), "--runroot", str(d / "run"), "--tmpdir", str(d / "tmp"),
            "system", "service", "-t", "0", f"unix://{d}/podman.sock"]
    cg = ["libpod_parent"]
    proc, host = start_peer(argv, d / "podman.sock", d, env, cg)
    yield host
    stop_peer(proc, host, d, cg)


@pytest.fixture(params=["wharf", "dockerd", "podman"])
def host(request, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("WHARF_HOST", raising=False)
    if request.param == "wharf":
        return f"unix://{request.getfixturevalue('wharf_daemon')}"
    return request.getfixturevalue(request.param)


def wharf(host: str, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60):
    p = subprocess.run([WHARF, "--host", host, *args], capture_output=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def out(host: str, *args: str, **kw) -> str:
    return wharf(host, *args, **kw).stdout.decode()


def name() -> str:
    return "rv" + os.urandom(3).hex()


def kind(host: str) -> str:
    return "dockerd" if "/h3d-" in host else "podman" if "/h3p-" in host else "wharf"


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
    gone = name()
    p = wharf(host, "run", "--rm", "--name", gone, "--network", "none", "busybox", "sh", "-c",
              "echo out; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out\n", b"err\n")
    assert gone not in out(host, "ps", "-a")  # --rm removed it
    p = wharf(host, "run", "--rm", "-i", "--network", "none", "busybox", "tr", "a-z", "A-Z", input=b"hello\n")
    assert p.stdout == b"HELLO\n"
    n = name()
    cid = out(host, "run", "-d", "--name", n, "--network", "none", "-l", "k=v", "busybox", "sleep", "60").strip()
    assert len(cid) == 64
    doc = json.loads(out(host, "inspect", n))[0]
    assert doc["State"]["Running"] and doc["Config"]["Labels"]["k"] == "v"
    assert wharf(host, "run", "--rm", "--network", "none", "busybox", "nonexistent-cmd", check=False).returncode == 127
    p = wharf(host, "run", "--rm", "--network", "none", NO_REGISTRY, check=False)
    assert p.returncode == 125 and b"Traceback" not in p.stderr
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
    # dockerd (API 1.41) sizes an exec's pty only after it started: ask until the size is there
    t = Term(host, "exec", "-it", n, "sh", "-c", 'tty; until [ "$(stty size)" = "21 77" ]; do sleep 0.05; done; '
             'stty size; exit 3', rows=21, cols=77)
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
    assert len(img.removeprefix("sha256:")) == 64
    cid = json.loads(out(host, "inspect", n))[0]["Id"]
    r = name()
    wharf(host, "run", "-d", "--name", r, "--network", "none", "busybox", "sleep", "60")
    top = out(host, "top", r)
    assert "sleep 60" in top
    if kind(host) == "podman":  # podman 4.3 has no POST /containers/{id}/update
        p = wharf(host, "update", "-m", "64m", r, check=False)
        assert p.returncode == 1 and b"does not serve this call" in p.stderr
    else:
        wharf(host, "update", "-m", "64m", "--memory-swap", "128m", r)
        assert json.loads(out(host, "inspect", r))[0]["HostConfig"]["Memory"] == 64 << 20
    st = out(host, "stats", "--no-stream", r)
    assert r in st and (kind(host) == "podman" or "64MiB" in st)
    wharf(host, "rm", "-f", r)
    assert cid in out(host, "container", "prune", "-f")
    assert cid not in out(host, "ps", "-aq", "--no-trunc")


STACK = """\
name: {name}
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "echo $$GREETING > /data/hello; exec sleep 100000"]
    environment: {{GREETING: hi}}
    labels: {{tier: front}}
    network_mode: none
    volumes: [data:/data]
    stop_grace_period: 1s
  worker:
    image: busybox:latest
    command: ["sleep", "100000"]
    network_mode: none
    deploy: {{replicas: 2}}
    stop_grace_period: 1s
  app:
    build: {{context: ./app, args: {{FLAVOUR: mint}}}}
    command: ["sleep", "100000"]
    network_mode: none
    stop_grace_period: 1s
volumes:
  data: {{}}
"""


def test_reconciler_apply_diff_down(host, tmp_path):
    """A stack (2 services, a volume, env, labels) applied through RemoteEngine: converged, then a no-op
    diff, then down removes what it made."""
    from runtime.api.remote import RemoteEngine

    proj = name()
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=proj))
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox\nARG FLAVOUR\nCOPY . /app\nRUN echo $FLAVOUR > /flavour\n")
    (tmp_path / "app" / "keep.txt").write_text("k")
    (tmp_path / "app" / "secret.txt").write_text("s")
    (tmp_path / "app" / ".dockerignore").write_text("secret.txt\n")
    r = wharf(host, "apply", "-f", str(f), "--progress", "plain", timeout=120)
    assert b"applied" in r.stdout
    eng = RemoteEngine(host)
    flt = {"label": [f"io.wharf.project={proj}"]}
    cs = eng.containers.list(all=True, filters=flt)
    assert sorted(c.name for c in cs) == [f"{proj}-app-1", f"{proj}-web-1", f"{proj}-worker-1", f"{proj}-worker-2"]
    assert all(c.state.status == "running" for c in cs)
    web = eng.containers.inspect(f"{proj}-web-1")
    assert web.labels["tier"] == "front" and web.labels["io.wharf.service"] == "web"
    assert "GREETING=hi" in web.spec.env
    assert [v.name for v in eng.volumes.list(filters=flt)] == [f"{proj}_data"]
    assert out(host, "exec", f"{proj}-web-1", "cat", "/data/hello") == "hi\n"
    built = out(host, "exec", f"{proj}-app-1", "sh", "-c", "cat /flavour; ls /app").split()
    assert built[0] == "mint" and "keep.txt" in built and "secret.txt" not in built  # .dockerignore honoured
    r = wharf(host, "diff", "-f", str(f))
    assert b"nothing to do" in r.stdout  # converged: the second look plans nothing
    wharf(host, "down", "-v", "-t", "1", "-f", str(f), timeout=120)
    assert eng.containers.list(all=True, filters=flt) == []
    assert eng.volumes.list(filters=flt) == []


def test_volumes_inspect_events_info_logs(host):
    v = name()
    assert out(host, "volume", "create", "-l", "k=v", v).strip() == v
    assert v in out(host, "volume", "ls", "-q", "--filter", "label=k=v").split()
    assert json.loads(out(host, "volume", "inspect", v))[0]["Labels"] == {"k": "v"}
    t0 = time.time()
    n = name()
    cid = out(host, "run", "-d", "--name", n, "--network", "none", "busybox", "sh", "-c",
              "echo to-out; echo to-err >&2; exec sleep 60").strip()
    docs = json.loads(out(host, "inspect", n, v, "busybox"))  # the engine's own JSON, container first
    assert docs[0]["Id"] == cid and docs[1]["Name"] == v and docs[2]["Id"].startswith("sha256:")
    p = wharf(host, "inspect", "nosuch" + n, check=False)
    assert p.returncode == 1 and b"nosuch" in p.stderr
    deadline = time.monotonic() + 10
    while (p := wharf(host, "logs", n)).stdout != b"to-out\n" or p.stderr != b"to-err\n":
        assert time.monotonic() < deadline, p
        time.sleep(0.05)
    wharf(host, "rm", "-f", n)
    deadline = time.monotonic() + 10
    while True:  # podman writes some events from its cleanup process, a moment later
        ev = out(host, "events", "--since", str(int(t0) - 1), "--until", str(int(time.time()) + 1),
                 "--filter", f"container={cid}", "--format", "json")
        actions = [json.loads(line)["Action"] for line in ev.splitlines()]
        if "start" in actions and ("destroy" in actions or "remove" in actions):  # podman says remove
            break
        assert time.monotonic() < deadline, actions
    assert out(host, "info", "--format", "json").strip().startswith("{")
    wharf(host, "volume", "rm", v)
    assert v not in out(host, "volume", "ls", "-q").split()


def test_docker_cli_detach_leaves_a_tty_container_running(wharf_daemon, tmp_path):
    """The docker CLI detaches client-side (Ctrl-P Ctrl-Q) and hangs up: wharf serve must end the attach
    without closing the container's terminal."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("the docker CLI is not installed (apt-get install docker.io)")
    import pty

    env = {**os.environ, "DOCKER_HOST": f"unix://{wharf_daemon}", "DOCKER_CONFIG": str(tmp_path / "dcfg")}
    n = name()
    subprocess.run([docker, "run", "-d", "-it", "--name", n, "--network", "none", "busybox", "sh"], env=env,
                   check=True, capture_output=True)
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(docker, [docker, "attach", n], env)
    t = Term.__new__(Term)
    t.pid, t.fd, t.buf = pid, fd, b""
    try:
        t.write(b"echo attach''ed\r")
        t.read_until(b"attached")
        t.write(b"\x10\x11")
        t.exit_code()  # docker 28 says "read escape sequence" and exits 1
        assert b"read escape sequence" in t.buf
    finally:
        t.close()
    doc = json.loads(subprocess.run([docker, "inspect", n], env=env, check=True, capture_output=True).stdout)[0]
    assert doc["State"]["Running"] is True
    subprocess.run([docker, "rm", "-f", n], env=env, check=True, capture_output=True)
