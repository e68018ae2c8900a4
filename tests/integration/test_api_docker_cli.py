"""The official docker CLI against `wharf serve` (DOCKER_HOST=unix://<private socket>)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]

DOCKER = shutil.which("docker")


@pytest.fixture
def docker(wharf_daemon, tmp_path):
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed (apt-get install docker.io)")
    env = {**os.environ, "DOCKER_HOST": f"unix://{wharf_daemon}", "DOCKER_CONFIG": str(tmp_path / "dcfg"),
           "DOCKER_BUILDKIT": "0"}

    def run(*args: str, input: bytes | None = None, check: bool = True, timeout: float = 60):
        p = subprocess.run([DOCKER, *args], env=env, input=input, capture_output=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
        return p

    run.env = env
    return run


def test_version_info_ps_images(docker):
    v = json.loads(docker("version", "--format", "{{json .}}").stdout)
    assert v["Server"]["ApiVersion"] == "1.41"
    assert "Containers:" in docker("info").stdout.decode()
    assert docker("ps", "-a").stdout.decode().startswith("CONTAINER ID")
    assert "busybox" in docker("images").stdout.decode()


def test_run_rm_attached_output_and_exit_code(docker):
    p = docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert p.returncode == 3
    assert p.stdout == b"out\n" and p.stderr == b"err\n"
    assert docker("ps", "-aq").stdout.strip() == b""  # --rm removed it


def test_run_with_stdin(docker):
    p = docker("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input=b"hello\n")
    assert p.stdout == b"HELLO\n"


def test_detached_logs_exec_cp_stop_rm(docker, tmp_path):
    cid = docker("run", "-d", "--name", "apid", "-l", "k=v", "busybox", "sh", "-c",
                 "echo started; exec sleep 60").stdout.decode().strip()
    logs = docker("logs", "apid").stdout
    assert logs in (b"", b"started\n")
    out = docker("exec", "apid", "sh", "-c", "echo in-exec; exit 5", check=False)
    assert out.returncode == 5 and out.stdout == b"in-exec\n"
    assert docker("exec", "-i", "apid", "cat", input=b"piped").stdout == b"piped"
    src = tmp_path / "f.txt"
    src.write_text("copied")
    docker("cp", str(src), "apid:/tmp/")
    assert docker("exec", "apid", "cat", "/tmp/f.txt").stdout == b"copied"
    docker("cp", "apid:/tmp/f.txt", str(tmp_path / "back.txt"))
    assert (tmp_path / "back.txt").read_text() == "copied"
    info = json.loads(docker("inspect", "apid").stdout)[0]
    assert info["Id"] == cid and info["State"]["Running"] and info["Config"]["Labels"] == {"k": "v"}
    assert docker("ps", "--filter", "label=k=v", "-q").stdout.decode().strip() == cid[:12]
    docker("stop", "-t", "1", "apid")
    assert json.loads(docker("inspect", "apid").stdout)[0]["State"]["Status"] == "exited"
    docker("rm", "apid")
    p = docker("inspect", "apid", check=False)
    assert p.returncode == 1 and b"No such" in p.stderr or b"no such" in p.stderr


def test_logs_follow_ends_with_the_container(docker):
    docker("run", "-d", "--name", "apif", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done")
    p = docker("logs", "-f", "apif", timeout=30)
    assert p.stdout == b"1\n2\n3\n"
    docker("rm", "-f", "apif")


def test_volume_and_events(docker):
    import time

    since = str(int(time.time()) - 1)
    docker("volume", "create", "apivol")
    assert "apivol" in docker("volume", "ls", "-q").stdout.decode().split()
    docker("run", "--rm", "-v", "apivol:/data", "busybox", "sh", "-c", "echo x > /data/f")
    docker("volume", "rm", "apivol")
    ev = docker("events", "--since", since, "--until", str(int(time.time()) + 1), "--format", "{{json .}}",
                "--filter", "type=container")
    actions = [json.loads(line)["Action"] for line in ev.stdout.decode().splitlines()]
    assert "create" in actions and "start" in actions and "die" in actions


def test_build(docker, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hi from the context\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n")
    p = docker("build", "-t", "apibuilt:1", str(ctx), timeout=120)
    assert b"Successfully tagged apibuilt:1" in p.stdout
    assert docker("run", "--rm", "apibuilt:1").stdout == b"hi from the context\n"


def test_network_create_connect_rm(docker):
    docker("network", "create", "apinet")
    assert "apinet" in docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()
    docker("run", "-d", "--name", "apin", "busybox", "sleep", "30")
    docker("network", "connect", "apinet", "apin")
    nets = json.loads(docker("inspect", "apin").stdout)[0]["NetworkSettings"]["Networks"]
    assert "apinet" in nets
    docker("rm", "-f", "apin")
    docker("network", "rm", "apinet")


def test_run_it_through_a_pty(docker):
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:
        os.execve(DOCKER, [DOCKER, "run", "--rm", "-it", "busybox", "sh"], docker.env)
    out = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    return

    try:
        read_until(b"#")
        os.write(fd, b"tty; echo mark-$((6*7))\r")
        read_until(b"mark-42")
        assert b"/dev/pts/" in out and b"mark-42" in out
        os.write(fd, b"exit 7\r")
        read_until(b"\x00never", timeout=10)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 7


def test_push_and_pull_with_a_loopback_registry(docker, tmp_path):
    import signal
    import socket
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reg = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "registry", "serve", "--addr",
                            f"127.0.0.1:{port}", "--root", str(tmp_path / "reg")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and reg.poll() is None
                time.sleep(0.05)
        ref = f"127.0.0.1:{port}/apibb:1"
        docker("tag", "busybox", ref)
        assert b"digest: sha256:" in docker("push", ref).stdout
        docker("rmi", ref)
        docker("rmi", "busybox")
        assert b"Downloaded newer image" in docker("pull", ref).stdout
        assert docker("run", "--rm", ref, "echo", "pulled").stdout == b"pulled\n"
    finally:
        reg.send_signal(signal.SIGTERM)
        reg.wait(10)


def test_top_stats_pause_rename_diff_export_prune(docker, tmp_path):
    docker("run", "-d", "--name", "apim", "--network", "none", "busybox", "sh", "-c", "touch /made; exec sleep 60")
    assert b"sleep 60" in docker("top", "apim").stdout
    stats = json.loads(docker("stats", "--no-stream", "--format", "{{json .}}", "apim").stdout)
    assert stats["Name"] == "apim"
    docker("pause", "apim")
    assert json.loads(docker("inspect", "apim").stdout)[0]["State"]["Paused"] is True
    docker("unpause", "apim")
    docker("rename", "apim", "apim2")
    assert b"A /made" in docker("diff", "apim2").stdout
    docker("export", "-o", str(tmp_path / "fs.tar"), "apim2")
    import tarfile

    with tarfile.open(tmp_path / "fs.tar") as tar:
        assert "made" in tar.getnames()
    docker("rm", "-f", "apim2")
    docker("create", "--name", "apiprune", "busybox")
    out = docker("container", "prune", "-f").stdout
    assert b"Deleted Containers" in out
    assert docker("ps", "-aq").stdout.strip() == b""


def test_image_save_load_history_and_start_attach(docker, tmp_path):
    docker("save", "-o", str(tmp_path / "bb.tar"), "busybox")
    docker("rmi", "busybox")
    assert b"Loaded image" in docker("load", "-i", str(tmp_path / "bb.tar")).stdout
    assert b"busybox" in docker("history", "busybox").stdout
    assert json.loads(docker("image", "inspect", "busybox").stdout)[0]["Config"]["Cmd"] == ["sh"]
    docker("create", "--name", "apia", "--network", "none", "busybox", "sh", "-c", "echo attached; exit 4")
    p = docker("start", "-a", "apia", check=False)
    assert p.returncode == 4 and p.stdout == b"attached\n"
    docker("rm", "apia")


def test_system_df_prunes_logs_tail_and_attach(docker):
    assert b"Images" in docker("system", "df").stdout
    docker("volume", "create", "apiprv")
    docker("volume", "prune", "-f")
    assert b"apiprv" not in docker("volume", "ls", "-q").stdout
    docker("network", "create", "apiprn")
    docker("network", "prune", "-f")
    assert b"apiprn" not in docker("network", "ls").stdout
    docker("image", "prune", "-f")
    docker("run", "-d", "--name", "apil", "--network", "none", "-i", "busybox", "sh", "-c",
           "echo a; echo b; echo c; exec cat")
    import time

    deadline = time.monotonic() + 10
    while docker("logs", "apil").stdout != b"a\nb\nc\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert docker("logs", "--tail", "1", "apil").stdout == b"c\n"
    p = docker("attach", "apil", input=b"echoed\n", check=False, timeout=30)
    assert b"echoed" in p.stdout
    docker("rm", "-f", "apil")


def test_published_port(docker):
    import time
    import urllib.request

    docker("run", "-d", "--name", "apip", "-p", "127.0.0.1::80", "busybox", "sh", "-c",
           "mkdir -p /w && echo served > /w/index.html && exec httpd -f -p 80 -h /w")
    port = docker("port", "apip", "80/tcp").stdout.decode().strip().rsplit(":", 1)[1]
    deadline = time.monotonic() + 15
    body = b""
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    assert body == b"served\n"
    assert f"127.0.0.1:{port}->80/tcp" in docker("ps", "--format", "{{.Ports}}").stdout.decode()
    docker("rm", "-f", "apip")


def test_login_push_pull_with_basic_auth_through_x_registry_auth(docker, tmp_path):
    """`docker login` checks the credentials through POST /auth and keeps them on the client side;
    push and pull hand them to the daemon in X-Registry-Auth (the daemon has none of its own)."""
    import bcrypt

    from runtime.registry.server import RegistryServer

    hashed = bcrypt.hashpw(b"d0ck3r", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$")
    (tmp_path / "htpasswd").write_text(f"dave:{hashed}\n")
    server = RegistryServer(tmp_path / "areg", "127.0.0.1:0", htpasswd=tmp_path / "htpasswd").start()
    try:
        addr = server.address
        ref = f"{addr}/private/bb:1"
        docker("tag", "busybox", ref)
        refused = docker("push", ref, check=False)
        assert refused.returncode != 0 and b"auth" in refused.stderr.lower()
        bad = docker("login", "-u", "dave", "--password-stdin", addr, input=b"wrong\n", check=False)
        assert bad.returncode != 0
        assert b"Login Succeeded" in docker("login", "-u", "dave", "--password-stdin", addr, input=b"d0ck3r\n").stdout
        assert b"digest: sha256:" in docker("push", ref).stdout
        docker("rmi", ref)
        pulled = docker("pull", ref).stdout
        assert b"Pulling from" in pulled and b"Digest: sha256:" in pulled
        assert ref.encode() in docker("image", "inspect", "--format", "{{.RepoTags}}", ref).stdout
        docker("rmi", ref)
        docker("logout", addr)
        denied = docker("pull", ref, check=False)
        assert denied.returncode != 0 and b"auth" in denied.stderr.lower()
    finally:
        server.stop()
