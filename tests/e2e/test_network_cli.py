"""`wharf network ...` and container networking as a user runs it (root, real bridges and netns)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

WHARF = str(Path(sys.executable).with_name("wharf"))
pytestmark = [pytest.mark.root, pytest.mark.network]


def wharf(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    p = subprocess.run([WHARF, *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr}")
    return p


def out(*args: str) -> str:
    return wharf(*args).stdout


@pytest.fixture
def net_env(wharf_root, monkeypatch):
    """Private root + default bridge; afterwards containers, networks, DNS daemon and rules are gone."""
    monkeypatch.setenv("WHARF_BRIDGE", "whe" + secrets.token_hex(4))
    yield
    from runtime.containers.manager import LocalContainers
    from runtime.network import dnsctl, nft
    from runtime.network.firewall import network_table
    from runtime.network.manager import NetworkManager

    cs = LocalContainers()
    for info in cs.list(all=True):
        try:
            cs.remove(info.id, force=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup, checked below
            pass
    nm = NetworkManager()
    nets = nm.store.networks()
    nm.teardown()
    assert not any(os.path.exists(f"/sys/class/net/{n['bridge']}") for n in nets)
    assert not {network_table(n["id"]) for n in nets} & set(nft.tables())
    assert dnsctl.daemon_pid(dnsctl.state_dir()) is None


@pytest.fixture
def bb(net_env):
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    bootstrap_busybox(ImageStore())
    return "busybox"


def test_network_verbs(net_env):
    name = "cli" + secrets.token_hex(3)
    br = "whc" + secrets.token_hex(4)
    nid = out("network", "create", "--label", "team=a", "-o", f"com.docker.network.bridge.name={br}",
              "-o", "com.docker.network.driver.mtu=1450", "--internal", name).strip()
    assert len(nid) == 64
    assert Path(f"/sys/class/net/{br}/mtu").read_text().strip() == "1450"
    table = out("network", "ls")
    assert name in table and "NETWORK ID" in table
    docs = [json.loads(line) for line in out("network", "ls", "--format", "json").splitlines()]
    assert [d["Name"] for d in docs] == [name] and docs[0]["Internal"] is True
    assert out("network", "ls", "-q", "--filter", "label=team=a").split() == [nid[:12]]
    assert out("network", "ls", "-q", "--filter", "label=team=b") == ""
    doc = json.loads(out("network", "inspect", name))[0]
    assert doc["Id"] == nid and doc["Labels"] == {"team": "a"} and doc["IPAM"]["Config"][0]["Subnet"]
    assert out("network", "inspect", "-f", "{{.Name}}", nid[:12]).strip() == name
    other = "cli" + secrets.token_hex(3)
    out("network", "create", "-o", "com.docker.network.bridge.enable_icc=false", other)
    assert json.loads(out("network", "inspect", other))[0]["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert out("network", "rm", name).strip() == name
    assert out("network", "prune", "-f").split() == ["Deleted", "Networks:", other]
    assert out("network", "ls", "-q") == ""


@pytest.mark.parametrize("args,msg", [
    (["network", "create", "--subnet", "10.0.0.0/33", "x"], "invalid CIDR"),
    (["network", "create", "--subnet", "10.0.0.1/24", "x"], "host bits"),
    (["network", "create", "-o", "com.docker.network.driver.mtu=abc", "x"], "MTU"),
    (["network", "create", "-o", "com.docker.network.bridge.enable_icc=maybe", "x"], "true or false"),
    (["network", "inspect", "nosuchnet"], "not found"),
    (["network", "rm", "nosuchnet"], "not found"),
    (["network", "rm", "bridge"], "not found"),
])
def test_bad_input_is_one_clear_line(net_env, args, msg):
    p = wharf(*args, check=False)
    assert p.returncode == 1 and msg in p.stderr and "Traceback" not in p.stderr
    assert out("network", "ls", "-q") == ""  # nothing half-created


def test_overlapping_subnet_and_busy_network(net_env, bb):
    a = "ov" + secrets.token_hex(3)
    out("network", "create", a)
    subnet = json.loads(out("network", "inspect", a))[0]["IPAM"]["Config"][0]["Subnet"]
    p = wharf("network", "create", "--subnet", subnet, "ov2", check=False)
    assert p.returncode == 1 and "overlaps" in p.stderr
    out("run", "-d", "--name", "busy", "--network", a, bb, "sleep", "60")
    p = wharf("network", "rm", a, check=False)
    assert p.returncode == 1 and "active endpoints (busy)" in p.stderr
    out("rm", "-f", "busy")
    out("network", "rm", a)


RETRY = "for i in $(seq 100); do {cmd} && exit 0; sleep 0.1; done; exit 1"


def test_containers_reach_each_other_by_name_and_alias(net_env, bb):
    net = "app" + secrets.token_hex(3)
    out("network", "create", net)
    out("run", "-d", "--name", "web", "--network", net, "--network-alias", "webby", bb,
        "httpd", "-f", "-p", "80", "-h", "/etc")
    for target in ("web", "webby"):
        o = out("run", "--rm", "--network", net, bb, "sh", "-c",
                RETRY.format(cmd=f"wget -qO- http://{target}/hostname"))
        assert o.strip() == json.loads(out("inspect", "web"))[0]["Id"][:12]
    resolv = out("run", "--rm", "--network", net, bb, "cat", "/etc/resolv.conf")
    gateway = json.loads(out("network", "inspect", net))[0]["IPAM"]["Config"][0]["Gateway"]
    assert resolv.startswith(f"nameserver {gateway}\n")
    # another network cannot reach it, neither by name nor by address
    other = "oth" + secrets.token_hex(3)
    out("network", "create", other)
    ip = json.loads(out("inspect", "web"))[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
    p = wharf("run", "--rm", "--network", other, bb, "sh", "-c", f"nc -w 1 {ip} 80 </dev/null; nslookup web",
              check=False)
    assert p.returncode != 0
    # connect at runtime: now it can; disconnect: it cannot any more
    out("run", "-d", "--name", "cli", "--network", other, bb, "sleep", "60")
    out("network", "connect", "--alias", "fetcher", net, "cli")
    assert out("exec", "cli", "sh", "-c", RETRY.format(cmd="wget -qO- http://webby/hostname")).strip()
    out("network", "disconnect", net, "cli")
    assert wharf("exec", "cli", "wget", "-qO-", "-T", "1", "http://webby/hostname", check=False).returncode != 0


def test_published_port_on_localhost(net_env, bb):
    out("run", "-d", "--name", "pub", "-p", "127.0.0.1::80", bb, "httpd", "-f", "-p", "80", "-h", "/etc")
    mapping = out("port", "pub").strip()
    assert mapping.startswith("80/tcp -> 127.0.0.1:")
    port = int(mapping.rsplit(":", 1)[1])
    deadline, body = time.monotonic() + 10, b""
    while time.monotonic() < deadline and not body:
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=2).read()
        except OSError:
            time.sleep(0.05)
    assert b"root:" in body
    p = wharf("run", "-d", "--name", "clash", "-p", f"127.0.0.1:{port}:80", bb, "sleep", "60", check=False)
    assert p.returncode != 0 and "already published" in p.stderr
    out("rm", "-f", "pub")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/passwd", timeout=1)


def test_none_host_and_container_modes(net_env, bb):
    links = out("run", "--rm", "--network", "none", bb, "ip", "-o", "link")
    assert [ln.split(":")[1].strip() for ln in links.splitlines()] == ["lo"]
    host = out("run", "--rm", "--network", "host", bb, "ip", "-o", "link")
    assert "eth0" in host or len(host.splitlines()) > 1
    out("run", "-d", "--name", "srv", "--network", "none", bb, "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc")
    o = out("run", "--rm", "--network", "container:srv", bb, "sh", "-c",
            RETRY.format(cmd="wget -qO- http://127.0.0.1:8080/group"))
    assert "root:" in o
