"""Containers on the default bridge: an address, published ports, `port`, and nothing left after rm."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

WHARF = str(Path(sys.executable).with_name("wharf"))
pytestmark = [pytest.mark.root, pytest.mark.network]


def wharf(*args: str, check: bool = True):
    p = subprocess.run([WHARF, *args], capture_output=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def netenv(wharf_root, monkeypatch):
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    monkeypatch.setenv("WHARF_BRIDGE", "wc" + secrets.token_hex(4))
    bootstrap_busybox(ImageStore())
    yield
    from runtime.containers.manager import LocalContainers
    from runtime.network.manager import NetworkManager

    cs = LocalContainers()
    for info in cs.list(all=True):
        try:
            cs.remove(info.id, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass
    NetworkManager().teardown()


def test_bridge_address_published_port_and_release(netenv):
    port = free_port()
    cid = wharf("run", "-d", "--name", "web", "-p", f"127.0.0.1:{port}:80", "busybox",
                "httpd", "-f", "-p", "80", "-h", "/etc").stdout.decode().strip()
    doc = json.loads(wharf("inspect", "web").stdout)[0]
    ip = doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    assert ip and doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"] == str(port)
    assert wharf("port", "web", "80").stdout.decode().strip() == f"127.0.0.1:{port}"
    assert f"127.0.0.1:{port}->80/tcp" in wharf("ps").stdout.decode()
    deadline = time.monotonic() + 10
    body = b""
    while time.monotonic() < deadline:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=2).read()
            break
        except OSError:
            time.sleep(0.1)
    assert body.strip() == cid[:12].encode()
    hosts = wharf("exec", "web", "cat", "/etc/hosts").stdout.decode()
    assert f"{ip}\t{cid[:12]}" in hosts
    netns = doc["NetworkSettings"]["SandboxKey"]
    wharf("rm", "-f", "web")
    assert not os.path.exists(netns)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the host port is free again


def test_run_rm_on_bridge_releases_and_bad_port(netenv):
    out = wharf("run", "--rm", "busybox", "sh", "-c", "ip -4 -o addr show eth0").stdout.decode()
    assert "inet " in out
    assert wharf("ps", "-aq").stdout == b""
    p = wharf("run", "-p", "abc", "busybox", "true", check=False)
    assert p.returncode == 125 and b"abc" in p.stderr
    from runtime.network.manager import NetworkManager

    assert NetworkManager().inspect("bridge").containers == {}


def test_publish_all_user_network_ip_and_alias(netenv):
    net = "wn" + secrets.token_hex(3)
    third = 100 + secrets.randbelow(100)
    wharf("network", "create", "--subnet", f"10.{third}.{secrets.randbelow(250)}.0/24", net)
    try:
        subnet = json.loads(wharf("network", "inspect", net).stdout)[0]
        prefix = (subnet.get("subnet") or subnet["IPAM"]["Config"][0]["Subnet"]).rsplit(".", 1)[0]
        wharf("run", "-d", "--name", "srv", "--network", net, "--ip", f"{prefix}.50", "--network-alias", "svc",
              "-P", "--expose", "80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
        doc = json.loads(wharf("inspect", "srv").stdout)[0]
        assert doc["NetworkSettings"]["Networks"][net]["IPAddress"] == f"{prefix}.50"
        assert int(doc["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]) > 0
        body = wharf("run", "--rm", "--network", net, "busybox", "wget", "-q", "-O", "-",
                     "http://svc/hostname").stdout
        assert body.strip() == doc["Id"][:12].encode()
    finally:
        wharf("rm", "-f", "srv", check=False)
        wharf("network", "rm", net, check=False)
