"""Daemon lifecycle: live restore (containers outlive the daemon) and restart policies at start-up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]


def api(sock, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock))
    data = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(rest) if rest.strip().startswith((b"{", b"[")) else rest


def start_daemon(sock, tmp_path, *extra: str) -> subprocess.Popen:
    if sock.exists():
        sock.unlink()
    p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "serve", "-H", f"unix://{sock}", *extra],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert p.poll() is None and time.monotonic() < deadline, "wharf serve did not start"
        time.sleep(0.02)
    return p


def stop_daemon(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGTERM)
    p.wait(10)


def test_live_restore_and_restart_policy(busybox_image, wharf_net, tmp_path):
    from runtime.local_engine import LocalEngine

    sock = tmp_path / "d.sock"
    cfg = tmp_path / "daemon.json"
    cfg.write_text(json.dumps({"debug": True, "pidfile": str(tmp_path / "d.pid")}))
    d = start_daemon(sock, tmp_path, "--config-file", str(cfg))
    cs = LocalEngine().containers
    try:
        assert (tmp_path / "d.pid").read_text().strip() == str(d.pid)
        for name, policy in (("keep", "no"), ("always", "always")):
            status, out = api(sock, "POST", f"/containers/create?name={name}",
                              {"Image": "busybox", "Cmd": ["sleep", "300"], "HostConfig": {
                                  "NetworkMode": "none", "RestartPolicy": {"Name": policy}}})
            assert status == 201, out
            assert api(sock, "POST", f"/containers/{name}/start")[0] == 204
        stop_daemon(d)
        assert not (tmp_path / "d.pid").exists() and not sock.exists()
        # the daemon is gone; its containers are not
        assert all(c.state.status == "running" for c in cs.list(all=True))
        # a "reboot": supervisors and containers die without the daemon noticing
        states = [cs.store.load_state(c.id) for c in cs.list(all=True)]
        (sup,) = {st["shim_pid"] for st in states}  # the one supervisor of this root
        os.kill(sup, signal.SIGKILL)
        for st in states:
            os.kill(st["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(c.state.status == "running" for c in cs.list(all=True)) and time.monotonic() < deadline:
            time.sleep(0.05)
        d = start_daemon(sock, tmp_path, "--config-file", str(cfg))
        status, info = api(sock, "GET", "/containers/always/json")
        assert status == 200 and info["State"]["Running"], info["State"]
        assert api(sock, "GET", "/containers/keep/json")[1]["State"]["Running"] is False
        # a flag given twice (flag and config file) is refused, as dockerd does
        r = subprocess.run([sys.executable, "-m", "reconciler.cli.app", "serve", "-H", f"unix://{tmp_path}/x.sock",
                            "--config-file", str(cfg), "-D"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "debug" in r.stderr
    finally:
        stop_daemon(d)
        for c in cs.list(all=True):
            cs.remove(c.id, force=True)
