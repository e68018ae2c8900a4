"""The seed document (a Docker overview in Chinese, /work/shared/seed/000_*.txt), walked in its
order with `docker` -> `wharf`: the real CLI in subprocesses, one private WHARF_ROOT/WHARF_RUN,
bridge and HOME per module and worker.

Adaptations (offline): images are the bootstrapped busybox or built locally; search/pull/push/
login/logout go to `wharf registry serve` on 127.0.0.1 (`search` names the registry: a bare
`search TERM` would look up Docker Hub); `ubuntu:14.04` is busybox and `apt-get install -y APP`
is a busybox command that writes files. Interactive steps (`run -i -t`, Ctrl-P Ctrl-Q, attach,
`login` prompts) use a real pty.

Dockerfile section: every instruction of the reference, the "Firefox over VNC" example with its
apt-get step replaced by files (x11vnc/firefox are not installable offline, so CMD is only
checked in the image config) and the "Multiple images" example as written (FROM busybox). The
"Nginx" example is skipped: it is only `apt-get install` of packages from the internet.

Namespaces (pid, mnt, net, uts, ipc: the container's differ from the host's; user: shared with the
host, as docker without --userns-remap) and cgroups (memory, cpu.shares, blkio statistics, devices)
are checked from inside and outside a container. The daemon options of the document's `docker`
usage are checked on `wharf serve` at the end.
"""

from __future__ import annotations

import io
import json
import os
import pty
import secrets
import select
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli_containers import until

pytestmark = [pytest.mark.root, pytest.mark.network, pytest.mark.xdist_group("seed_walkthrough")]

WHARF = str(Path(sys.executable).with_name("wharf"))
REPO = Path(__file__).resolve().parents[2]
# the command list of the document's `docker` usage, in its order
DOC_COMMANDS = ("attach build commit cp create diff events exec export history images import info inspect kill "
                "load login logout logs port pause ps pull push restart rm rmi run save search start stop tag top "
                "unpause version wait").split()


class Wharf:
    """`wharf ARGS` with the module's private environment."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.env = {**os.environ, "WHARF_ROOT": str(base / "root"), "WHARF_RUN": str(base / "run"),
                    "WHARF_BRIDGE": "whs" + secrets.token_hex(4), "HOME": str(base / "home"),
                    "DOCKER_CONFIG": str(base / "home" / ".docker"), "PYTHONPATH": str(REPO)}
        for k in ("WHARF_HOST", "DOCKER_HOST", "WHARF_REGISTRY_MIRRORS"):
            self.env.pop(k, None)
        (base / "home").mkdir()

    def __call__(self, *args: str, check: bool = True, input: bytes | None = None, timeout: float = 60,
                 shell: bool = False) -> subprocess.CompletedProcess:
        argv = args[0] if shell else [WHARF, *args]
        p = subprocess.run(argv, capture_output=True, input=input, timeout=timeout, env=self.env, cwd=self.base,
                           shell=shell)
        if check and p.returncode != 0:
            raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
        return p

    def out(self, *args: str) -> str:
        return self(*args).stdout.decode()

    def inspect(self, ref: str) -> dict:
        return json.loads(self.out("inspect", ref))[0]

    def pty(self, *args: str) -> Pty:
        return Pty([WHARF, *args], self.env)


class Pty:
    """A wharf client on a real terminal."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(argv[0], argv, env)
        self.buf = b""

    def expect(self, token: bytes, timeout: float = 15) -> bytes:
        deadline = time.monotonic() + timeout
        while token not in self.buf and time.monotonic() < deadline:
            if not select.select([self.fd], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.buf += chunk
        assert token in self.buf, self.buf
        return self.buf

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                while select.select([self.fd], [], [], 0)[0]:  # drain, or the client blocks on a full terminal
                    chunk = os.read(self.fd, 4096)
                    if not chunk:
                        break
                    self.buf += chunk
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"the client did not exit: {self.buf!r}")


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed (make install)")
    base = tmp_path_factory.mktemp("seed")
    w = Wharf(base)
    w("image", "bootstrap", "busybox")
    try:
        yield w
    finally:
        ids = w("ps", "-a", "-q", "--no-trunc", check=False).stdout.decode().split()
        if ids:
            w("rm", "-f", "-v", *ids, check=False)
        subprocess.run([sys.executable, "-c", "from runtime.network.manager import NetworkManager; "
                        "NetworkManager().teardown()"], env=w.env, cwd=REPO, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """An anonymous registry and one with basic auth (alice / s3cret), both on 127.0.0.1."""
    from runtime.registry.server import RegistryServer

    d = tmp_path_factory.mktemp("registry")
    subprocess.run(["htpasswd", "-Bbc", str(d / "htpasswd"), "alice", "s3cret"], check=True, capture_output=True)
    open_ = RegistryServer(d / "open", "127.0.0.1:0").start()
    auth = RegistryServer(d / "auth", "127.0.0.1:0", htpasswd=d / "htpasswd").start()
    try:
        yield open_.address, auth.address
    finally:
        open_.stop()
        auth.stop()


# ------------------------------------------------------------------ 查看 docker 信息（version、info）


def test_version_info_and_every_command_help(w):
    assert w.out("version").startswith("Wharf ")
    assert w.out("-v") == w.out("--version") == w.out("version")  # docker's -v, --version
    info = w.out("info")
    assert "Images: 1" in info and f"DockerRootDir: {w.env['WHARF_ROOT']}" in info
    usage = w("--help").stdout.decode()
    assert all(f" {cmd} " in usage for cmd in DOC_COMMANDS)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:  # "Run 'docker COMMAND --help' for more information on a command."
        helps = dict(zip(DOC_COMMANDS, pool.map(lambda c: w(c, "--help", check=False), DOC_COMMANDS), strict=True))
    for cmd, p in helps.items():
        assert p.returncode == 0 and b"Usage: wharf " + cmd.encode() in p.stdout, (cmd, p.stderr.decode())


# ------------------------------------------------------------------ 对 image 的操作（search、pull、images、rmi、history）


def test_image_operations_search_pull_images_rmi_history(w, registry):
    reg, _ = registry
    w("tag", "busybox", f"{reg}/library/image_name:latest")
    w("push", f"{reg}/library/image_name:latest")
    w("rmi", f"{reg}/library/image_name:latest")
    assert f"{reg}/library/image_name" in w.out("search", f"{reg}/image_name")
    pulled = w.out("pull", f"{reg}/library/image_name")
    assert pulled.strip().endswith(f"{reg}/library/image_name:latest")
    listing = w.out("images")
    assert f"{reg}/library/image_name" in listing and "busybox" in listing
    assert w.out("images", "-a").count("\n") == listing.count("\n")
    full = w.out("images", "--no-trunc")
    assert "sha256:" + w.inspect("busybox")["Id"].split(":")[1] in full
    quiet = w.out("images", "-q").split()
    assert quiet and all(len(i) == 12 for i in quiet)
    assert w.out("images", "--all=true", "--quiet=true").split() == quiet  # the document's Go-style booleans
    history = w.out("history", f"{reg}/library/image_name")
    assert "CREATED BY" in history and "bootstrap busybox" in history
    assert w.out("history", "--no-trunc", "-q", "busybox").split() == [w.inspect("busybox")["Id"]]  # one layer
    w("rmi", f"{reg}/library/image_name")
    assert f"{reg}/library/image_name" not in w.out("images")
    # "无容器使用该镜像才可删除，否则需删除相关容器才可继续或 -f 强制删除"
    w("create", "--name", "base-of-inuse", "busybox", "true")
    w("commit", "base-of-inuse", "inuse:1")
    w("create", "--name", "user-of-inuse", "inuse:1", "true")
    p = w("rmi", "inuse:1", check=False)
    assert p.returncode == 1 and b"must force" in p.stderr and b"Traceback" not in p.stderr
    w("rmi", "-f", "--no-prune", "inuse:1")
    w("rm", "user-of-inuse", "base-of-inuse")


# ------------------------------------------------------------------ 启动容器（run）


def test_run_echo_interactive_volume_and_install(w, tmp_path):
    assert w.out("run", "busybox", "echo", "hello word") == "hello word\n"
    # 交互式进入容器中: run -i -t, exit with Ctrl-D
    t = w.pty("run", "-i", "-t", "--network", "none", "busybox", "/bin/sh")
    t.send(b"echo inter''active; tty\n")
    t.expect(b"interactive")
    t.expect(b"/dev/pts/0\r\n/ # ")  # the prompt again
    t.send(b"\x04")  # Ctrl-D
    assert t.wait() == 0
    # 挂载本地目录,实现文件共享: -it -v _path:docker_path
    (tmp_path / "shared.txt").write_text("from the host\n")
    t = w.pty("run", "-it", "--rm", "--network", "none", "-v", f"{tmp_path}:/docker_path", "busybox", "/bin/sh")
    t.send(b"cat /docker_path/shared.txt; echo back > /docker_path/back.txt; exit\n")
    t.expect(b"from the host")
    assert t.wait() == 0 and (tmp_path / "back.txt").read_text() == "back\n"
    # 暂时离开 Ctrl-P + Ctrl-Q, 重新回来 attach
    t = w.pty("run", "-i", "-t", "--name", "itshell", "--network", "none", "busybox", "/bin/sh")
    t.send(b"echo fir''st\n")
    t.expect(b"first\r\n/ # ")
    t.send(b"\x10\x11")  # Ctrl-P Ctrl-Q
    assert t.wait() == 0
    assert w.inspect("itshell")["State"]["Running"] is True
    t = w.pty("attach", w.inspect("itshell")["Id"][:12])  # docker attach docker_id
    t.send(b"echo seco''nd; exit 3\n")
    t.expect(b"second")
    assert t.wait() == 3
    until(lambda: w.inspect("itshell")["State"]["Status"] == "exited")
    # 在容器中安装新的程序 ("apt-get install -y app_name"): the container stops, the change stays
    w("run", "--name", "installer", "busybox", "sh", "-c",
      "mkdir -p /usr/local/bin && cp /bin/busybox /usr/local/bin/app_name && echo installed")
    st = w.inspect("installer")["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 0
    changes = w.out("container", "diff", "installer").splitlines()
    assert "A /usr/local/bin/app_name" in changes
    assert not [c for c in changes if c.startswith(("A /etc", "C /etc"))]  # the /etc/hosts mount points: as docker


# ------------------------------------------------------------------ 查看容器（ps）, 保存对容器的修改（commit）


def test_ps_and_commit(w):
    w("run", "-d", "--name", "running1", "--network", "none", "busybox", "sleep", "60")
    w("run", "--name", "stopped1", "--network", "none", "busybox", "sh", "-c", "echo v2 > /version")
    running = w.out("ps")
    assert "running1" in running and "stopped1" not in running
    assert "stopped1" in w.out("ps", "-a")
    latest = w.out("ps", "-l").splitlines()
    assert len(latest) == 2 and "stopped1" in latest[1]
    iid = w.out("commit", "-a", "Victor", "-m", "adds /version", "stopped1", "new_image_name").strip()
    assert iid.startswith("sha256:")
    img = w.inspect("new_image_name")
    assert img["Author"] == "Victor" and img["Comment"] == "adds /version"
    assert w.out("run", "--rm", "--network", "none", "new_image_name", "cat", "/version") == "v2\n"
    assert "adds /version" in w.out("history", "new_image_name")
    archive = tarfile.open(fileobj=io.BytesIO(w("save", "new_image_name").stdout))
    top = json.load(archive.extractfile("manifest.json"))[0]["Layers"][-1]
    assert tarfile.open(fileobj=archive.extractfile(top)).getnames() == ["version"]  # no /etc/hosts mount points
    w("commit", "--pause=false", "running1", "new_image_name:live")  # docker's -p, --pause=true
    w("rm", "-f", "running1", "stopped1")


# ------------------------------------------------------------------ 对容器的操作（rm、stop、start、kill、logs、diff、top、cp、restart、attach）


def test_container_operations(w, tmp_path):
    for n in ("a", "b"):
        w("run", "--name", f"del-{n}", "--network", "none", "busybox", "true")
    # 删除所有容器: docker rm `docker ps -a -q`
    p = w(f"{WHARF} rm `{WHARF} ps -a -q`", shell=True, check=False)
    assert b"del-" not in w("ps", "-a").stdout
    assert p.returncode == 0 or all(b"cannot remove a running container" in line or b"hint:" in line
                                    for line in p.stderr.splitlines()), p.stderr  # as docker: running ones stay
    # rm -f -v Name/ID; -l (legacy links) says in one line that Wharf has none
    cid = w.out("run", "-d", "--network", "none", "-v", "/anon", "busybox", "sleep", "60").strip()
    w("rm", "-f", "-v", cid[:12])
    p = w("rm", "-l", "nolinks", check=False)
    assert p.returncode == 1 and len(p.stderr.decode().splitlines()) <= 2 and b"link" in p.stderr
    # stop / start / kill
    w("run", "-d", "--name", "svc", "--network", "none", "busybox", "sh", "-c",
      "trap 'exit 0' TERM; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
    w("stop", "-t", "5", "svc")
    assert w.inspect("svc")["State"]["Status"] == "exited"
    w("start", "svc")
    assert w.inspect("svc")["State"]["Running"] is True
    w("kill", "svc")
    until(lambda: not w.inspect("svc")["State"]["Running"])
    w("start", "svc")
    until(lambda: "tick 2" in w.out("logs", "svc"))
    # logs, -t, -f
    stamped = w.out("logs", "-t", "svc").splitlines()[0]
    assert stamped[:4].isdigit() and stamped.split(" ", 1)[0].endswith("Z")
    n = w.out("logs", "svc").count("\n")
    follow = subprocess.Popen([WHARF, "logs", "-f", "svc"], stdout=subprocess.PIPE, env=w.env)
    try:
        for _ in range(n + 3):  # what was logged, then new lines as they come
            assert follow.stdout.readline().startswith(b"tick ")
    finally:
        follow.kill()
        follow.wait()
    # diff: A C D
    w("exec", "svc", "sh", "-c", "echo new > /added; echo x >> /etc/passwd; rm /etc/group")
    changes = w.out("diff", "svc").splitlines()
    assert {"A /added", "C /etc/passwd", "D /etc/group"} <= set(changes), changes
    assert changes == w.out("container", "diff", "svc").splitlines()
    # top
    top = w.out("top", "svc")
    assert "PID" in top.splitlines()[0] and "while true" in top
    # cp Name:/container_path to_path, and ID:/container_path
    w("cp", "svc:/added", str(tmp_path / "by-name"))
    svc_id = w.inspect("svc")["Id"]
    w("cp", f"{svc_id}:/etc/passwd", str(tmp_path / "by-id"))
    assert (tmp_path / "by-name").read_text() == "new\n" and (tmp_path / "by-id").read_text().endswith("x\n")
    # restart -t
    pid = w.inspect("svc")["State"]["Pid"]
    w("restart", "-t", "1", "svc")
    st = w.inspect("svc")["State"]
    assert st["Running"] and st["Pid"] != pid
    # attach (twice at the same time), --no-stdin; with --sig-proxy=false Ctrl-C (SIGINT) leaves the
    # container running, by default it is passed on to the container
    one = w.pty("attach", "--no-stdin", "svc")
    two = w.pty("attach", "--sig-proxy=false", "svc")
    one.expect(b"tick ")
    two.expect(b"tick ")
    os.kill(two.pid, signal.SIGINT)
    assert two.wait() == 130
    assert w.inspect("svc")["State"]["Running"] is True
    one.buf = b""
    one.expect(b"tick ")  # still attached
    os.kill(one.pid, signal.SIGINT)
    assert one.wait() == 130
    until(lambda: w.inspect("svc")["State"]["Status"] == "exited")
    w("rm", "svc")


def test_the_rest_of_the_command_list(w):
    """Commands of the document's list without a section of their own: create, start, pause, unpause,
    exec, wait, inspect, events, export, import, tag."""
    since = str(int(time.time()) - 1)
    cid = w.out("create", "--name", "lister", "--network", "none", "busybox", "sh", "-c",
                "trap 'exit 7' TERM; sleep 60 & wait").strip()
    w("start", "lister")
    w("pause", "lister")
    assert w.inspect(cid[:12])["State"]["Status"] == "paused"
    w("unpause", "lister")
    assert w.out("exec", "lister", "echo", "inside") == "inside\n"
    w("kill", "-s", "TERM", "lister")
    assert w.out("wait", "lister") == "7\n"
    events = w.out("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
                   f"container={cid}")
    for action in ("create", "start", "pause", "unpause", "die"):
        assert f"container {action} {cid}" in events, events
    w(f"{WHARF} export lister | {WHARF} import - imported:1", shell=True)
    w("tag", "imported:1", "imported:2")
    assert w.out("run", "--rm", "--network", "none", "imported:2", "/bin/busybox", "echo", "ok") == "ok\n"
    w("rm", "lister")
    w("rmi", "imported:1", "imported:2")


# ------------------------------------------------------------------ 保存和加载镜像（save、load）


def test_save_and_load(w, tmp_path):
    w("tag", "busybox", "to-move:1")
    w("save", "to-move:1", "-o", str(tmp_path / "a.tar"))  # the document's order: image first, then -o
    w(f"{WHARF} save to-move:1 > {tmp_path / 'save.tar'}", shell=True)
    assert tarfile.open(tmp_path / "a.tar").getnames() and tarfile.open(tmp_path / "save.tar").getnames()
    w("rmi", "to-move:1")
    assert "Loaded image: to-move:1" in w.out("load", "-i", str(tmp_path / "a.tar"))
    w("rmi", "to-move:1")
    assert "Loaded image: to-move:1" in w(f"{WHARF} load < {tmp_path / 'save.tar'}", shell=True).stdout.decode()
    w("rmi", "to-move:1")


# ------------------------------------------------------------------ 登录 registry server（login）, 发布 image（push）


def test_login_push_logout(w, registry):
    _, reg = registry
    # interactive `docker login`: prompts on a terminal
    t = w.pty("login", reg)
    t.expect(b"Username")
    t.send(b"alice\n")
    t.expect(b"Password: ")  # getpass prints the space once echo is off
    t.send(b"s3cret\n")
    t.expect(b"Login Succeeded")
    assert t.wait() == 0
    config = json.loads((Path(w.env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert reg in config["auths"]
    p = w("login", "-e", "alice@example.com", "-u", "alice", "-p", "s3cret", reg)  # -e, --email: ignored
    assert b"Login Succeeded" in p.stdout
    w("tag", "busybox", f"{reg}/new_image_name")
    p = w("push", f"{reg}/new_image_name")  # docker push {私有源}/new_image_name
    assert b"digest: sha256:" in p.stdout + p.stderr
    w("rmi", f"{reg}/new_image_name")
    w("pull", f"{reg}/new_image_name")
    w("logout", reg)
    p = w("pull", f"{reg}/new_image_name", check=False)
    assert p.returncode == 1 and b"login" in p.stderr
    p = w("login", "-u", "alice", "-p", "wrong", reg, check=False)
    assert p.returncode == 1 and b"Traceback" not in p.stderr
    w("rmi", f"{reg}/new_image_name")


# ------------------------------------------------------------------ 根据 Dockerfile 构建出一个容器（build）


def test_build_flags(w, tmp_path):
    ctx = tmp_path / "Dockerfile_path"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built\nCMD [\"cat\", \"/built\"]\n")
    out = w.out("build", "-t", "image_name", str(ctx))
    assert "Successfully built" in out and w.out("run", "--rm", "--network", "none", "image_name") == "built\n"
    assert "Using cache" in w.out("build", "-t", "image_name", str(ctx))
    assert "Using cache" not in w.out("build", "--no-cache=true", "-t", "image_name", str(ctx))
    assert "Using cache" not in w.out("build", "--no-cache", "-t", "image_name", str(ctx))
    quiet = w.out("build", "-q", "--rm=true", "-t", "image_name", str(ctx)).split()
    assert len(quiet) == 1 and quiet[0].startswith("sha256:")
    w("build", "--rm", "--force-rm", "-t", "image_name", str(ctx))
    p = w("build", "--rm=false", str(ctx), check=False)
    assert p.returncode == 1 and len(p.stderr.decode().splitlines()) <= 2 and b"--rm" in p.stderr
    assert w.out("ps", "-a", "-q") == w.out("ps", "-a", "-q")  # no intermediate containers are left
    w("rmi", "image_name")


# ------------------------------------------------------------------ 端口映射


def _udp_echo(pid: int) -> subprocess.Popen:
    """A UDP echo on 5353 in the container's network namespace (Debian's busybox nc has no -u)."""
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353))\n"
            "while True:\n    d, p = s.recvfrom(100); s.sendto(b'echo ' + d, p)")
    return subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code])


def test_port_mapping(w):
    # docker run -t -P --expose 22 --name server ubuntu:14.04
    w("run", "-d", "-t", "-P", "--expose", "22", "--name", "server", "busybox")
    host22 = w.out("port", "server", "22").strip()
    assert host22.startswith("0.0.0.0:") and int(host22.rsplit(":", 1)[1]) > 0
    assert w.out("port", "server").startswith("22/tcp -> 0.0.0.0:")
    # -p 127.0.0.1::8080: TCP on a free port of 127.0.0.1
    w("run", "-d", "--name", "tcp8080", "-p", "127.0.0.1::8080", "busybox", "sh", "-c",
      "while true; do echo tcp-ok | nc -l -p 8080; done")
    bound = w.out("port", "tcp8080", "8080/tcp").strip()
    assert bound.startswith("127.0.0.1:")
    port = int(bound.rsplit(":", 1)[1])

    def tcp_reply() -> bytes:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                return s.recv(100)
        except OSError:
            return b""
    assert until(tcp_reply) == b"tcp-ok\n"
    # -p 127.0.0.1:53:5353/udp
    w("run", "-d", "--name", "udp53", "-p", "127.0.0.1:53:5353/udp", "busybox", "sleep", "60")
    assert w.out("port", "udp53") == "5353/udp -> 127.0.0.1:53\n"
    assert w.out("port", "udp53", "5353/udp") == "127.0.0.1:53\n"
    echo = _udp_echo(w.inspect("udp53")["State"]["Pid"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)

            def udp_reply() -> bytes:
                s.sendto(b"ping", ("127.0.0.1", 53))
                try:
                    return s.recv(100)
                except OSError:
                    return b""
            assert until(udp_reply) == b"echo ping"
    finally:
        echo.kill()
        echo.wait()
    ps = w.out("ps")
    assert "0.0.0.0:" + host22.rsplit(":", 1)[1] + "->22/tcp" in ps and "127.0.0.1:53->5353/udp" in ps
    w("rm", "-f", "server", "tcp8080", "udp53")


# ------------------------------------------------------------------ 网络配置: --net bridge|host|container:NAME|none


def _links(text: str) -> list[str]:
    return [line.split(":")[1].strip().split("@")[0] for line in text.splitlines() if ": " in line]


def test_network_modes(w):
    host_ns = os.readlink("/proc/self/ns/net")
    # bridge (the default): own netns, eth0 with an address on the default bridge
    w("run", "-d", "--name", "netowner", "--net=bridge", "busybox", "sleep", "60")
    owner = w.inspect("netowner")
    ip = owner["NetworkSettings"]["IPAddress"]
    assert ip and os.readlink(f"/proc/{owner['State']['Pid']}/ns/net") != host_ns
    assert f"inet {ip}/" in w.out("exec", "netowner", "ip", "-o", "-4", "addr", "show", "eth0")
    bridge = w.env["WHARF_BRIDGE"]
    assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
    assert w.out("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", ip).count("1 packets received") == 1
    # host: the host's namespace, its interfaces
    cid = w.out("run", "-d", "--net=host", "busybox", "sleep", "60").strip()
    assert os.readlink(f"/proc/{w.inspect(cid)['State']['Pid']}/ns/net") == host_ns
    assert bridge in w.out("exec", cid, "ip", "-o", "link")
    w("rm", "-f", cid)
    # container:NAME: the owner's namespace (same IP, lo reaches its ports), everything else separate
    w("exec", "-d", "netowner", "sh", "-c", "while true; do echo via-lo | nc -l -p 7000; done")
    joined = w.out("run", "--rm", "--net=container:netowner", "busybox", "sh", "-c",
                   "ip -o -4 addr show eth0; hostname; until nc 127.0.0.1 7000; do sleep 0.1; done")
    assert f"inet {ip}/" in joined and "via-lo" in joined and owner["Config"]["Hostname"] not in joined
    by_id = w.out("run", "--rm", f"--net=container:{owner['Id'][:12]}", "busybox", "ip", "-o", "-4", "addr")
    assert f"inet {ip}/" in by_id  # --net=container:NAMEorID
    # none: own netns with only lo
    assert _links(w.out("run", "--rm", "--net=none", "busybox", "ip", "-o", "link")) == ["lo"]
    w("rm", "-f", "netowner")


# ------------------------------------------------------------------ 命名空间「Namespaces」, 资源配额「cgroups」


def test_namespaces_and_cgroups(w):
    cid = w.out("run", "-d", "--network", "none", "-m", "64m", "--cpu-shares", "512", "--pids-limit", "50",
                "busybox", "sleep", "60").strip()
    pid = w.inspect(cid)["State"]["Pid"]
    for ns in ("pid", "mnt", "net", "uts", "ipc"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.readlink(f"/proc/{pid}/ns/user") == os.readlink("/proc/self/ns/user")
    assert w.out("exec", cid, "sh", "-c", "echo $$") != str(pid)  # its own pid numbers
    cgroups = {}  # v1 controller -> (hierarchy directory name, path)
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(","):
            cgroups[name] = (names, path)

    def ctrl(name: str, file: str) -> str:
        hierarchy, path = cgroups[name]
        return Path(f"/sys/fs/cgroup/{hierarchy}{path}/{file}").read_text().strip()
    assert ctrl("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert ctrl("cpu", "cpu.shares") == "512"
    assert ctrl("pids", "pids.max") == "50"
    assert "Total" in ctrl("blkio", "blkio.throttle.io_service_bytes")  # block IO statistics
    assert "a *:* rwm" not in ctrl("devices", "devices.list")  # devices: an allowlist
    p = w("exec", cid, "sh", "-c", "mknod /tmp/sda b 8 0 && head -c 1 /tmp/sda", check=False)
    assert p.returncode != 0
    stats = w.out("stats", "--no-stream", cid)
    assert "64MiB" in stats and "BLOCK I/O" in stats
    w("rm", "-f", cid)


def test_cgroups_blkio_limits_and_devices(w):
    """The document's "读写速度限制" (block IO throttling) and "设备权限限制" on `run`: docker's
    --device-read-bps/--device-write-iops and --device HOST:CONTAINER:PERMS (no write to the disk is tried)."""
    disk = next((f"/dev/{d}" for d in sorted(os.listdir("/sys/block")) if not d.startswith(("loop", "ram", "zram"))
                 and os.path.exists(f"/dev/{d}")), None)
    if disk is None:
        pytest.skip("no block device to throttle")
    cid = w.out("run", "-d", "--network", "none", "--device-read-bps", f"{disk}:1mb", "--device-write-iops",
                f"{disk}:10", "--device", "/dev/null:/dev/mynull", "--device", "/dev/kmsg:/dev/mykmsg:r",
                "busybox", "sleep", "60").strip()
    try:
        path = Path(f"/proc/{w.inspect(cid)['State']['Pid']}/cgroup").read_text()
        blkio = next(line.split(":", 2)[2] for line in path.splitlines() if ":blkio:" in line)
        rdev = os.stat(disk).st_rdev
        dev = f"{os.major(rdev)}:{os.minor(rdev)}"
        base = Path("/sys/fs/cgroup/blkio" + blkio)
        assert f"{dev} 1048576" in (base / "blkio.throttle.read_bps_device").read_text()
        assert f"{dev} 10" in (base / "blkio.throttle.write_iops_device").read_text()
        assert w.out("exec", cid, "sh", "-c", "echo x > /dev/mynull && ls -l /dev/mykmsg").startswith("c")
        devices = Path("/sys/fs/cgroup/devices" + blkio.replace("blkio", "devices"), "devices.list").read_text()
        # kmsg allowed (as with runc, a linux.devices node gets rwm whatever --device's permissions say)
        assert "c 1:11 r" in devices and "a *:* rwm" not in devices
        hc = w.inspect(cid)["HostConfig"]
        assert hc["BlkioDeviceReadBps"] == [{"Path": disk, "Rate": 1048576}]
        assert {"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/mykmsg", "CgroupPermissions": "r"} in hc["Devices"]
    finally:
        w("rm", "-f", cid)
    p = w("run", "--rm", "--device-read-bps", "/dev/nonexistent:1mb", "busybox", "true", check=False)
    assert p.returncode == 125 and b"/dev/nonexistent" in p.stderr and len(p.stderr.splitlines()) <= 2, p.stderr


# ------------------------------------------------------------------ Dockerfile


DOCKERFILE_REFERENCE = """\
# Firefox over VNC
#
# VERSION 0.3
FROM busybox
MAINTAINER Victor Vieux <victor@docker.com>
# Install vnc, xvfb in order to create a 'fake' display and firefox (offline: files instead)
RUN mkdir -p /usr/bin && echo '#!/bin/sh' > /usr/bin/x11vnc && chmod +x /usr/bin/x11vnc
RUN mkdir ~/.vnc
# Setup a password
RUN echo 1234 > ~/.vnc/passwd
# Autostart firefox (might not be the best way, but it does the trick)
RUN sh -c 'echo "firefox" >> /.bashrc'
RUN ["sh", "-c", "echo exec-form > /exec-form"]
EXPOSE 5900 5901
ENV HOME_DIR /root
ENV A=1 B=2
ADD add.txt /added/
COPY add.txt /copied/
VOLUME ["/data"]
WORKDIR /path
WORKDIR to/workdir
RUN pwd > /workdir.txt
USER daemon
RUN id -un > /tmp/user.txt
ONBUILD RUN echo triggered > /tmp/onbuild
ENTRYPOINT ["echo", "entry"]
CMD ["x11vnc", "-forever", "-usepw", "-create"]
"""


def test_dockerfile_instructions_and_examples(w, tmp_path):
    ctx = tmp_path / "vnc"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE_REFERENCE)
    (ctx / "add.txt").write_text("added\n")
    (ctx / "secret.txt").write_text("not sent\n")
    (ctx / ".dockerignore").write_text("secret.txt\n")
    w("build", "-t", "vnc", str(ctx))
    img = w.inspect("vnc")
    cfg = img["Config"]
    assert img["Author"] == "Victor Vieux <victor@docker.com>"
    assert cfg["Cmd"] == ["x11vnc", "-forever", "-usepw", "-create"] and cfg["Entrypoint"] == ["echo", "entry"]
    assert set(cfg["ExposedPorts"]) == {"5900/tcp", "5901/tcp"} and set(cfg["Volumes"]) == {"/data"}
    assert {"HOME_DIR=/root", "A=1", "B=2"} <= set(cfg["Env"]) and cfg["User"] == "daemon"
    assert cfg["WorkingDir"] == "/path/to/workdir" and cfg["OnBuild"] == ["RUN echo triggered > /tmp/onbuild"]
    assert w.out("run", "--rm", "--network", "none", "vnc") == "entry x11vnc -forever -usepw -create\n"
    got = w.out("run", "--rm", "--network", "none", "--entrypoint", "sh", "vnc", "-c",
                "id -un; pwd; cat /.bashrc /exec-form /added/add.txt /copied/add.txt /workdir.txt /tmp/user.txt; "
                "ls /secret.txt 2>&1; test -x /usr/bin/x11vnc && echo x11vnc")
    assert got.splitlines() == ["daemon", "/path/to/workdir", "firefox", "exec-form", "added", "added",
                                "/path/to/workdir", "daemon", "ls: /secret.txt: No such file or directory",
                                "x11vnc"]
    assert w.out("run", "--rm", "--network", "none", "-u", "root", "--entrypoint", "cat", "vnc",
                 "/root/.vnc/passwd") == "1234\n"  # ~ of the RUN steps before USER daemon
    # ONBUILD runs in the image built FROM this one
    w("build", "-t", "vnc-child", "-", input=b"FROM vnc\n")
    assert w.out("run", "--rm", "--network", "none", "--entrypoint", "cat", "vnc-child", "/tmp/onbuild") == \
        "triggered\n"
    # Multiple images example: two FROMs, two images (the last one tagged; the first kept as a stage)
    multi = tmp_path / "multi"
    multi.mkdir()
    (multi / "Dockerfile").write_text("# Multiple images example\n#\n# VERSION 0.1\nFROM busybox\n"
                                      "RUN echo foo > bar\n# Will output something like ===> 907ad6c2736f\n"
                                      "FROM busybox\nRUN echo moo > oink\n"
                                      "# Will output something like ===> 695d7793cbe4\n")
    w("build", "-t", "multi", str(multi))
    assert w.out("run", "--rm", "--network", "none", "multi", "cat", "/oink") == "moo\n"
    # the shell forms of CMD and ENTRYPOINT; ENV used by a later RUN
    shell = tmp_path / "shell"
    shell.mkdir()
    (shell / "Dockerfile").write_text("FROM busybox\nENV WHO world\nRUN echo \"hello $WHO\" > /greeting\n"
                                      "CMD cat /greeting; echo cmd-shell $WHO\n")
    w("build", "-t", "shellform", str(shell))
    assert w.out("run", "--rm", "--network", "none", "shellform") == "hello world\ncmd-shell world\n"
    (shell / "Dockerfile").write_text("FROM shellform\nENTRYPOINT echo ep-shell $WHO\n")
    w("build", "-t", "shellform:ep", str(shell))
    assert w.out("run", "--rm", "--network", "none", "shellform:ep", "ignored") == "ep-shell world\n"
    w("rmi", "vnc-child", "vnc", "multi", "shellform:ep", "shellform")


# ------------------------------------------------------------------ 守护进程: the `docker` usage's daemon options


def _unix_get(sock: Path, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    import http.client

    class Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(str(sock))

    c = Conn("localhost", timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_daemon_options(w, tmp_path):
    """Each daemon option of the document's usage on `wharf serve`: accepted (and doing what it says),
    or refused in one line where it does not apply."""
    env = {**w.env, "WHARF_BRIDGE": "whd" + secrets.token_hex(4)}

    def serve(*args: str, ok: bool, check=None) -> str:
        sock = tmp_path / f"d{secrets.token_hex(3)}.sock"
        proc = subprocess.Popen([WHARF, "serve", "-H", f"unix://{sock}", *args], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            until(lambda: proc.poll() is not None or sock.exists(), timeout=20)
            if ok:
                assert proc.poll() is None, proc.stderr.read().decode()
                if check:
                    check(sock)
                return ""
            assert proc.wait(10) == 1
            err = proc.stderr.read().decode()
            assert len(err.splitlines()) <= 2 and "Traceback" not in err, err
            return err
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
            proc.stdout.close()
            proc.stderr.close()

    pidfile = tmp_path / "wharf.pid"

    def works(sock: Path) -> None:
        assert int(pidfile.read_text()) > 0  # -p, --pidfile
        status, headers, _ = _unix_get(sock, "/_ping")  # --api-enable-cors
        assert status == 200 and headers["access-control-allow-origin"] == "*"
        assert _unix_get(sock, "/containers/json", "OPTIONS")[0] == 200
        resolv = subprocess.run([WHARF, "--host", f"unix://{sock}", "run", "--rm", "--network", "none", "busybox",
                                 "cat", "/etc/resolv.conf"], env=env, capture_output=True, text=True, timeout=60)
        assert "search example.test" in resolv.stdout and "nameserver 127.0.0.1" in resolv.stdout, resolv.stderr

    serve("-D", "--debug=false", "-d", "--daemon=true", "--api-enable-cors=true", "-G", "", "--icc=true",
          "--ip-forward=true", "--ip-masq=true", "--iptables=true", "--mtu", "1500", "-p", str(pidfile),
          "--selinux-enabled=false", "--tls=false", "--tlsverify=false", "-e", "native", "--exec-driver=native",
          "-s", "overlay2", "--dns", "127.0.0.1", "--dns-search", "example.test", "--insecure-registry",
          "127.0.0.1:5000", "--registry-mirror", "http://127.0.0.1:5000", "-b", env["WHARF_BRIDGE"],
          "--fixed-cidr", "", "--ip", "0.0.0.0", ok=True, check=works)
    graph = tmp_path / "graph"

    def graph_root(sock: Path) -> None:  # -g, --graph: the root directory
        assert json.loads(_unix_get(sock, "/info")[2])["DockerRootDir"] == str(graph)
    serve("-g", str(graph), ok=True, check=graph_root)
    assert "--bip" in serve("-b", "somebridge", "--bip", "10.99.0.1/24", ok=False)
    assert "lxc" in serve("--exec-driver", "lxc", ok=False)
    assert "SELinux" in serve("--selinux-enabled", ok=False)
    assert "overlay2" in serve("-s", "devicemapper", ok=False)
    assert "--storage-opt" in serve("--storage-opt", "dm.basesize=20G", ok=False)
    assert "nftables" in serve("--iptables=false", ok=False)
    certs = tmp_path / "no-certs"
    env["DOCKER_CERT_PATH"] = str(certs)  # --tlscacert/--tlscert/--tlskey default to ~/.docker/*.pem
    assert str(certs) in serve("--tlsverify", ok=False)
    for flag in ("-v", "--version"):
        v = subprocess.run([WHARF, "serve", flag], env=env, capture_output=True, text=True)
        assert v.returncode == 0 and v.stdout.startswith("Wharf "), v.stderr
