"""Shared fixtures: root detection, a private WHARF_ROOT, a busybox rootfs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BUSYBOX = "/bin/busybox"


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups)")
    for item in items:
        if "root" in item.keywords or "network" in item.keywords:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """Once every worker is done (the xdist controller, or a plain run): remove the shared, now empty
    /wharf parent cgroups the containers of the tests lived in (rmdir fails while one is in use)."""
    if os.geteuid() != 0 or hasattr(session.config, "workerinput"):
        return
    import glob

    for parent in glob.glob("/sys/fs/cgroup/*/wharf") + glob.glob("/sys/fs/cgroup/unified/wharf"):
        try:
            os.rmdir(parent)
        except OSError:
            pass


def make_busybox_rootfs(dest: Path) -> Path:
    """A minimal rootfs: static busybox, one symlink per applet, /etc/passwd and /etc/group."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (make install)")
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "var/www"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        if name != "busybox" and not (dest / "bin" / name).exists():
            os.symlink("busybox", dest / "bin" / name)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest


@pytest.fixture
def busybox_rootfs(tmp_path: Path) -> Path:
    return make_busybox_rootfs(tmp_path / "rootfs")


@pytest.fixture
def wharf_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private WHARF_ROOT and WHARF_RUN for one test."""
    root = tmp_path / "wharf-root"
    run = tmp_path / "wharf-run"
    root.mkdir()
    run.mkdir()
    monkeypatch.setenv("WHARF_ROOT", str(root))
    monkeypatch.setenv("WHARF_RUN", str(run))
    return root


@pytest.fixture
def busybox_image(wharf_root: Path):
    """busybox:latest bootstrapped (from /bin/busybox) into the private WHARF_ROOT; returns the Image."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (make install)")
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    return bootstrap_busybox(ImageStore())


@pytest.fixture
def wharf_net(wharf_root: Path, monkeypatch: pytest.MonkeyPatch):
    """A private default bridge (WHARF_BRIDGE) for the private root; afterwards every bridge, veth, netns,
    nft table and the DNS daemon of that root are gone (NetworkManager.teardown)."""
    import secrets

    monkeypatch.setenv("WHARF_BRIDGE", "whd" + secrets.token_hex(4))
    yield
    from runtime.network.manager import NetworkManager

    NetworkManager().teardown()


def _accepts(sock: Path) -> bool:
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(sock))
        except OSError:
            return False
    return True


@pytest.fixture
def wharf_daemon(busybox_image, wharf_net, tmp_path: Path):
    """`wharf serve` on a private unix socket (WHARF_ROOT of wharf_root, busybox:latest in it);
    yields the socket path; the daemon is stopped (SIGTERM to its pid) afterwards."""
    import signal
    import sys
    import time

    sock = tmp_path / "api.sock"
    pidfile = tmp_path / "api.pid"
    log = open(tmp_path / "api.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "serve", "-H", f"unix://{sock}",
                             "-p", str(pidfile), "-D"], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not _accepts(sock):  # the socket file exists a moment before the daemon listens
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("wharf serve did not start: " + (tmp_path / "api.log").read_text())
            time.sleep(0.02)
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        from runtime.local_engine import LocalEngine

        cs = LocalEngine().containers
        for c in cs.list(all=True):  # what a failed test left behind
            try:
                cs.remove(c.id, force=True, volumes=True)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
