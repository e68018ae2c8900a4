"""End to end, as root, with real containers: apply / diff / no-op / drift / down, and
kill -9 of apply midway then apply converges with nothing leaked."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wharf(*args: str, check: bool = False, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "reconciler.cli.app", *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def until(cond, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def base_engine(wharf_root: Path, wharf_net):
    """The embedded engine with busybox bootstrapped; afterwards every container of the private root is
    removed and `wharf_net` tears down its bridges, veths, netns, nft tables and DNS daemon."""
    wharf("image", "bootstrap", "busybox", check=True)
    from reconciler.engine_guard import connect

    e = connect()
    yield e
    for c in e.containers.list(all=True):
        try:
            e.containers.remove(c.id, force=True, volumes=True)
        except Exception:  # already gone: best effort, the test's own assertions have run
            pass


@pytest.fixture
def engine(base_engine):
    return base_engine


def project_objects(e, project: str) -> tuple[list, list, list]:
    from reconciler.engine_guard import UNAVAILABLE

    flt = {"label": [f"io.wharf.project={project}"]}
    try:
        nets = e.networks.list(filters=flt)
    except UNAVAILABLE:
        nets = []
    return e.containers.list(all=True, filters=flt), nets, e.volumes.list(filters=flt)


STACK = """
name: {name}
services:
  init:
    image: busybox:latest
    command: ["sh", "-c", "echo hello-wharf > /site/index.html"]
    volumes: [site:/site]
  backend:
    image: busybox:latest
    command: ["sh", "-c", "mkdir -p /srv && echo from-backend > /srv/index.html && exec httpd -f -p 8080 -h /srv"]
    networks: [back]
    healthcheck: {{test: "wget -q -O /dev/null http://127.0.0.1:8080/", interval: 1s, retries: 20}}
    stop_grace_period: 1s
  web:
    image: busybox:latest
    command: ["httpd", "-f", "-p", "80", "-h", "/site"]
    ports: ["127.0.0.1:{port}:80"]
    volumes: [site:/site]
    networks: [back]
    stop_grace_period: 1s
    depends_on:
      init: {{condition: service_completed_successfully}}
      backend: {{condition: service_healthy}}
  worker:
    image: busybox:latest
    command: ["sleep", "100000"]
    deploy: {{replicas: 2}}
    stop_grace_period: 1s
networks:
  back: {{}}
volumes:
  site: {{}}
"""


def test_apply_noop_drift_down(engine, tmp_path: Path) -> None:
    name = "e2e" + secrets.token_hex(3)
    port = free_port()
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name, port=port))
    try:
        assert wharf("diff", "-f", str(f)).returncode == 2
        wharf("apply", "-f", str(f), "--wait", "--timeout", "120", "--progress", "plain", check=True)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        assert body == b"hello-wharf\n"
        web = engine.containers.inspect(f"{name}-web-1")
        out = engine.containers.exec(web.id, ["wget", "-q", "-O", "-", "http://backend:8080/"])
        assert out.output.strip() == b"from-backend"  # by service name over the user network
        r = wharf("diff", "-f", str(f))
        assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout
        r = wharf("apply", "-f", str(f), check=True)
        assert "nothing to do" in r.stdout
        # drift: stopped and removed by hand
        engine.containers.stop(f"{name}-worker-1", timeout=1)
        engine.containers.remove(f"{name}-worker-2", force=True)
        r = wharf("diff", "-f", str(f))
        assert r.returncode == 2 and "drift" in r.stdout, r.stdout
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        until(lambda: all(c.state.running for c in project_objects(engine, name)[0]
                          if c.labels["io.wharf.service"] != "init"), what="healed")
        assert wharf("diff", "-f", str(f)).returncode == 0
        # a change recreates just that service, keeping its name
        f.write_text(STACK.format(name=name, port=port).replace('"100000"]', '"100001"]'))
        r = wharf("diff", "-f", str(f))
        assert r.returncode == 2 and "because: command changed" in r.stdout
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        assert sorted(c.name for c in project_objects(engine, name)[0]) == sorted(
            f"{name}-{s}" for s in ("backend-1", "init-1", "web-1", "worker-1", "worker-2"))
    finally:
        r = wharf("down", "-f", str(f), "-v", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert project_objects(engine, name) == ([], [], [])


def test_kill9_midway_then_apply_converges(base_engine, tmp_path: Path) -> None:
    engine = base_engine
    name = "k9" + secrets.token_hex(3)
    svcs = "".join(f"  s{i}:\n    image: busybox:latest\n    command: [sleep, '100000']\n    stop_grace_period: 1s\n"
                   f"    network_mode: none\n" for i in range(8))
    f = tmp_path / "compose.yaml"
    f.write_text(f"name: {name}\nservices:\n{svcs}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "apply", "-f", str(f), "--parallel", "2"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(lambda: len(project_objects(engine, name)[0]) >= 2 or p.poll() is not None, what="first containers")
        p.send_signal(signal.SIGKILL)
        p.wait()
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        cs = project_objects(engine, name)[0]
        assert sorted(c.name for c in cs) == sorted(f"{name}-s{i}-1" for i in range(8))
        assert all(c.state.running for c in cs)
        assert wharf("diff", "-f", str(f)).returncode == 0
    finally:
        wharf("down", "-f", str(f), "-t", "1")
    assert project_objects(engine, name) == ([], [], [])


NONET = """
name: {name}
services:
  init:
    image: busybox:latest
    network_mode: none
    command: ["sh", "-c", "echo ready > /data/flag"]
    volumes: [data:/data]
  app:
    image: busybox:latest
    network_mode: none
    command: ["sh", "-c", "test -f /data/flag && exec sleep 100000"]
    volumes: [data:/data]
    healthcheck: {{test: "test -f /data/flag", interval: 1s, retries: 20}}
    deploy: {{replicas: 2}}
    stop_grace_period: 1s
    depends_on:
      init: {{condition: service_completed_successfully}}
  after:
    image: busybox:latest
    network_mode: none
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    depends_on:
      app: {{condition: service_healthy}}
volumes:
  data: {{}}
"""


def test_apply_noop_drift_down_without_networks(base_engine, tmp_path: Path) -> None:
    """One-shot, volume, health-gated depends_on, replicas, drift and recreate on real containers."""
    engine = base_engine
    name = "nn" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    f.write_text(NONET.format(name=name))
    try:
        wharf("apply", "-f", str(f), "--wait", "--timeout", "60", "--progress", "plain", check=True)
        cs = {c.name: c for c in project_objects(engine, name)[0]}
        assert cs[f"{name}-init-1"].state.status == "exited" and cs[f"{name}-init-1"].state.exit_code == 0
        assert all(cs[f"{name}-{s}"].state.running for s in ("app-1", "app-2", "after-1"))
        assert cs[f"{name}-app-1"].state.health.status == "healthy"
        r = wharf("apply", "-f", str(f), check=True)
        assert "nothing to do" in r.stdout
        engine.containers.stop(f"{name}-app-2", timeout=1)
        engine.containers.remove(f"{name}-after-1", force=True)
        r = wharf("diff", "-f", str(f))
        assert r.returncode == 2 and "drift: exited" in r.stdout and "container:after:1" in r.stdout, r.stdout
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        assert wharf("diff", "-f", str(f)).returncode == 0
        f.write_text(NONET.format(name=name).replace("deploy: {replicas: 2}", "deploy: {replicas: 3}")
                     .replace('["sleep", "100000"]', '["sleep", "100001"]'))
        r = wharf("diff", "-f", str(f))
        assert "+ create" in r.stdout and "container:app:3" in r.stdout and "because: command changed" in r.stdout
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        names = sorted(c.name for c in project_objects(engine, name)[0])
        assert names == sorted(f"{name}-{s}" for s in ("init-1", "app-1", "app-2", "app-3", "after-1"))
        assert wharf("diff", "-f", str(f)).returncode == 0
    finally:
        r = wharf("down", "-f", str(f), "-v", "-t", "1")
    assert r.returncode == 0, r.stderr
    assert project_objects(engine, name)[0] == [] and project_objects(engine, name)[2] == []


def test_watch_applies_on_save_and_stops_on_ctrl_c(base_engine, tmp_path: Path) -> None:
    engine = base_engine
    name = "wa" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    spec = (f"name: {name}\nservices:\n  clock:\n    image: busybox:latest\n    network_mode: none\n"
            "    env_file: msg.env\n    command: [sleep, '100000']\n    stop_grace_period: 1s\n")
    f.write_text(spec)
    (tmp_path / "msg.env").write_text("MESSAGE=one\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "watch", "-f", str(f), "--interval", "1"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def env_of() -> list[str]:
        cs = [c for c in project_objects(engine, name)[0] if c.state.running and c.name == f"{name}-clock-1"]
        return cs[0].spec.env if cs else []

    try:
        until(lambda: "MESSAGE=one" in env_of(), 60, "first apply")
        (tmp_path / "msg.env").write_text("MESSAGE=two\n")
        until(lambda: "MESSAGE=two" in env_of(), 30, "re-apply after the env file was saved")
        f.write_text(spec + "    ports: ['bad:port']\n")
        time.sleep(1.5)
        assert "MESSAGE=two" in env_of()  # the invalid edit left the stack alone
        engine.containers.stop(f"{name}-clock-1", timeout=0)
        until(lambda: "MESSAGE=two" in env_of(), 30, "drift healed by --interval")
    finally:
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=30)
        f.write_text(spec)
        wharf("down", "-f", str(f), "-t", "0")
    assert "invalid spec" in out and "watch stopped" in out, out
    assert project_objects(engine, name)[0] == []
