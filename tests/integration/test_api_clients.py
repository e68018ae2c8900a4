"""Other real clients against `wharf serve`: RemoteEngine, docker-py, docker-compose v1, TLS."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]


def test_remote_engine_flow(wharf_daemon):
    from runtime.api.remote import RemoteEngine
    from runtime.engine import ContainerSpec, connect
    from runtime.errors import Conflict, NotFound

    eng = RemoteEngine(f"unix://{wharf_daemon}")
    assert eng.ping() == "OK" and eng.info()["OSType"] == "linux"
    c = eng.containers.create(ContainerSpec(image="busybox", name="rem1", labels={"io.wharf.project": "p"},
                                            command=["sh", "-c", "echo out; echo err >&2; exit 4"]))
    assert c.name == "rem1" and c.state.status == "created" and c.labels == {"io.wharf.project": "p"}
    eng.containers.start(c.id)
    assert eng.containers.wait(c.id) == 4
    assert list(eng.containers.logs(c.id)) == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert [i.name for i in eng.containers.list(all=True, filters={"label": ["io.wharf.project=p"]})] == ["rem1"]
    with pytest.raises(Conflict):
        eng.containers.create(ContainerSpec(image="busybox", name="rem1"))
    d = eng.containers.create(ContainerSpec(image="busybox", command=["sleep", "30"]))
    eng.containers.start(d.id)
    r = eng.containers.exec(d.id, ["sh", "-c", "echo hi; exit 2"])
    assert (r.exit_code, r.output) == (2, b"hi\n")
    eng.containers.remove(d.id, force=True)
    eng.containers.remove("rem1")
    with pytest.raises(NotFound):
        eng.containers.inspect("rem1")
    assert "busybox:latest" in [t for i in eng.images.list() for t in i.repo_tags]
    v = eng.volumes.create("remvol", labels={"a": "b"})
    assert v.labels == {"a": "b"} and "remvol" in [x.name for x in eng.volumes.list()]
    eng.volumes.remove("remvol")
    os.environ["WHARF_HOST"] = f"unix://{wharf_daemon}"
    try:
        assert type(connect()).__name__ == "RemoteEngine"
    finally:
        del os.environ["WHARF_HOST"]


def test_docker_py_flows(wharf_daemon):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"unix://{wharf_daemon}", version="1.41")
    assert client.ping()
    out = client.containers.run("busybox", ["sh", "-c", "echo from-docker-py"], remove=True)
    assert out == b"from-docker-py\n"
    c = client.containers.run("busybox", ["sh", "-c", "echo ready; sleep 30"], detach=True, name="dpy",
                              labels={"t": "1"})
    deadline = time.monotonic() + 10
    while b"ready" not in c.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.logs() == b"ready\n"
    code, output = c.exec_run(["sh", "-c", "echo in; exit 3"])
    assert (code, output) == (3, b"in\n")
    assert [x.name for x in client.containers.list(filters={"label": "t=1"})] == ["dpy"]
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    c.remove()
    img = client.images.get("busybox:latest")
    img.tag("dpy/busy", "v1")
    assert "dpy/busy:v1" in client.images.get("dpy/busy:v1").tags
    client.images.remove("dpy/busy:v1")
    vol = client.volumes.create("dpyvol")
    assert client.volumes.get("dpyvol").name == "dpyvol"
    vol.remove()
    net = client.networks.create("dpynet")
    assert client.networks.get(net.id).name == "dpynet"
    net.remove()
    client.close()


COMPOSE = """\
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo web-up; exec sleep 60"]
    labels: {tier: front}
  worker:
    image: busybox
    command: ["sh", "-c", "echo worker-up; exec sleep 60"]
"""


def test_docker_compose_v1(wharf_daemon, tmp_path):
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.skip("docker-compose v1 is not installed (apt-get install docker-compose)")
    (tmp_path / "docker-compose.yml").write_text(COMPOSE)
    env = {**os.environ, "DOCKER_HOST": f"unix://{wharf_daemon}", "COMPOSE_INTERACTIVE_NO_CLI": "1"}
    proj = "apic" + os.urandom(2).hex()

    def dc(*args: str) -> subprocess.CompletedProcess:
        p = subprocess.run([exe, "-p", proj, *args], cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        return p

    try:
        dc("up", "-d")
        ps = dc("ps").stdout.decode()
        assert f"{proj}_web_1" in ps and f"{proj}_worker_1" in ps and "Up" in ps
        deadline = time.monotonic() + 10
        logs = ""
        while ("web-up" not in logs or "worker-up" not in logs) and time.monotonic() < deadline:
            logs = dc("logs", "--no-color").stdout.decode()
            time.sleep(0.1)
        assert "web-up" in logs and "worker-up" in logs
    finally:
        dc("down", "-t", "1")
    from runtime.local_engine import LocalEngine

    assert LocalEngine().containers.list(all=True, filters={"label": [f"com.docker.compose.project={proj}"]}) == []


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certs(d) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=d)
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    (d / "client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for name, ext in (("server", "san.cnf"), ("client", "client.cnf")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}-key.pem",
                 "-out", f"{name}.csr", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-days", "1", "-extfile", ext, "-out", f"{name}.pem", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rogue",
             "-keyout", "rogue-key.pem", "-out", "rogue.pem", cwd=d)


def test_tls_requires_a_client_certificate_signed_by_the_ca(wharf_root, tmp_path):
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    _certs(tmp_path)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "serve", "-H", f"tcp://127.0.0.1:{port}",
                             "--tlsverify", "--tlscacert", str(tmp_path / "ca.pem"),
                             "--tlscert", str(tmp_path / "server.pem"), "--tlskey", str(tmp_path / "server-key.pem")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)

        def ping(cert: str | None) -> bytes:
            ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            if cert:
                ctx.load_cert_chain(str(tmp_path / f"{cert}.pem"), str(tmp_path / f"{cert}-key.pem"))
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := tls.recv(4096):
                    data += chunk
                return data

        assert ping("client").startswith(b"HTTP/1.1 200")
        for bad in (None, "rogue"):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                ping(bad)
        assert ping("client").startswith(b"HTTP/1.1 200")  # still serving
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


STACK = """\
name: {name}
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /s && echo hi > /s/index.html && exec httpd -f -p 80 -h /s"]
    networks: [back]
    volumes: [data:/data]
    stop_grace_period: 1s
  worker:
    image: busybox:latest
    command: ["sleep", "100000"]
    deploy: {{replicas: 2}}
    stop_grace_period: 1s
networks:
  back: {{}}
volumes:
  data: {{}}
"""


def test_reconciler_through_remote_engine(wharf_daemon, tmp_path):
    """`wharf --host` apply/diff/down of a stack through the daemon gives what the embedded engine has."""
    from runtime.local_engine import LocalEngine

    name = "rem" + os.urandom(3).hex()
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name))

    def wharf(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reconciler.cli.app", "--host", f"unix://{wharf_daemon}", *args],
                              capture_output=True, text=True, timeout=120)

    r = wharf("apply", "-f", str(f), "--progress", "plain")
    assert r.returncode == 0, r.stdout + r.stderr
    local = LocalEngine()
    flt = {"label": [f"io.wharf.project={name}"]}
    names = sorted(c.name for c in local.containers.list(all=True, filters=flt))
    assert names == [f"{name}-web-1", f"{name}-worker-1", f"{name}-worker-2"]
    assert all(c.state.status == "running" for c in local.containers.list(filters=flt))
    assert [v.name for v in local.volumes.list(filters=flt)] == [f"{name}_data"]
    assert wharf("diff", "-f", str(f)).returncode == 0  # converged: nothing to do
    r = wharf("down", "-f", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    assert local.containers.list(all=True, filters=flt) == []


def test_docker_py_push_and_pull_with_auth_config(wharf_daemon, tmp_path):
    """docker-py's auth_config travels in X-Registry-Auth (its own base64 flavour) to a basic-auth registry."""
    docker = pytest.importorskip("docker")
    import bcrypt

    from runtime.registry.server import RegistryServer

    hashed = bcrypt.hashpw(b"pyp4ss", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$")
    (tmp_path / "htpasswd").write_text(f"pia:{hashed}\n")
    server = RegistryServer(tmp_path / "preg", "127.0.0.1:0", htpasswd=tmp_path / "htpasswd").start()
    client = docker.DockerClient(base_url=f"unix://{wharf_daemon}", version="1.41")
    try:
        repo = f"{server.address}/py/bb"
        assert client.images.get("busybox").tag(repo, "2")
        denied = client.images.push(repo, "2", auth_config={"username": "pia", "password": "nope"})
        assert "incorrect user name or password" in denied
        pushed = client.images.push(repo, "2", auth_config={"username": "pia", "password": "pyp4ss"})
        assert "digest: sha256:" in pushed and "error" not in pushed
        client.images.remove(f"{repo}:2")
        img = client.images.pull(repo, "2", auth_config={"username": "pia", "password": "pyp4ss"})
        assert f"{repo}:2" in img.tags
        with pytest.raises(docker.errors.APIError):
            client.images.pull(repo, "3", auth_config={"username": "pia", "password": "pyp4ss"})
    finally:
        client.close()
        server.stop()
