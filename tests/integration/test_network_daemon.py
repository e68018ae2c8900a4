"""`wharf serve` network flags end to end: --bip, --fixed-cidr, --mtu, --icc=false, --ip, --dns."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.integration.test_api_daemon import api, start_daemon, stop_daemon
from tests.integration.test_network_manager import free_subnet

pytestmark = [pytest.mark.root, pytest.mark.network]

BB = "/bin/busybox"


def test_daemon_flags_shape_the_default_bridge(busybox_image, wharf_net, tmp_path):
    from runtime.local_engine import LocalEngine

    subnet = free_subnet(60)
    base = str(subnet.network_address)[:-1]
    sock = tmp_path / "d.sock"
    d = start_daemon(sock, tmp_path, "--bip", f"{base}1/24", "--fixed-cidr", f"{base}128/25", "--mtu", "1400",
                     "--no-icc", "--ip", "127.0.0.1", "--dns", "10.9.9.9")
    cs = LocalEngine().containers
    try:
        for name, cmd, ports in (("web", ["httpd", "-f", "-p", "80", "-h", "/etc"], {"80/tcp": [{"HostPort": ""}]}),
                                 ("cli", ["sleep", "300"], {})):
            status, out = api(sock, "POST", f"/containers/create?name={name}",
                              {"Image": "busybox", "Cmd": cmd, "HostConfig": {"PortBindings": ports}})
            assert status == 201, out
            assert api(sock, "POST", f"/containers/{name}/start")[0] == 204
        web = api(sock, "GET", "/containers/web/json")[1]
        cli = api(sock, "GET", "/containers/cli/json")[1]
        ip = web["NetworkSettings"]["IPAddress"]
        assert ip.startswith(base) and int(ip.rsplit(".", 1)[1]) > 128  # --fixed-cidr
        assert web["NetworkSettings"]["Gateway"] == f"{base}1"  # --bip
        binding = web["NetworkSettings"]["Ports"]["80/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"  # --ip
        netns = f"/proc/{cli['State']['Pid']}/ns/net"
        assert "mtu 1400" in subprocess.run(["nsenter", f"--net={netns}", "ip", "link", "show", "eth0"],
                                            capture_output=True, text=True).stdout
        with open(f"/proc/{cli['State']['Pid']}/root/etc/resolv.conf") as f:
            assert "nameserver 10.9.9.9" in f.read()  # --dns
        url = f"http://127.0.0.1:{binding['HostPort']}/hostname"
        deadline = time.monotonic() + 10
        # (Debian's busybox wget crashes with -T)
        while (page := subprocess.run([BB, "wget", "-qO-", url], capture_output=True, text=True, timeout=10)).returncode:
            assert time.monotonic() < deadline, page.stderr  # httpd is starting
            time.sleep(0.05)
        assert page.stdout.strip() == web["Config"]["Hostname"]  # the published port works
        blocked = subprocess.run(["nsenter", f"--net={netns}", BB, "nc", "-w", "1", ip, "80"], capture_output=True,
                                 text=True, input="GET /hostname HTTP/1.0\r\n\r\n", timeout=10)
        assert web["Config"]["Hostname"] not in blocked.stdout  # --icc=false
    finally:
        stop_daemon(d)
        for c in cs.list(all=True):
            cs.remove(c.id, force=True)
