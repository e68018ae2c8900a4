"""Container lifecycle through LocalEngine and the `wharf` CLI, on real runc/kernel (root)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

WHARF = str(Path(sys.executable).with_name("wharf"))
pytestmark = pytest.mark.root


def wharf(*args: str, check: bool = True, input: bytes | None = None, timeout: float = 60):
    p = subprocess.run([WHARF, *args], capture_output=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def until(pred, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def env(wharf_root, busybox_rootfs):
    """A private engine root; every container it made is force-removed afterwards."""
    from runtime.containers.manager import LocalContainers

    yield str(busybox_rootfs)
    cs = LocalContainers()
    for info in cs.list(all=True):
        try:
            cs.remove(info.id, force=True, volumes=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup of a failed test
            pass


def run_args(rootfs: str, *extra: str) -> list[str]:
    return ["run", "--rootfs", rootfs, "--network", "none", *extra]


def inspect(ref: str) -> dict:
    return json.loads(wharf("inspect", ref).stdout)[0]


def test_run_foreground_streams_and_returns_exit_code(env):
    p = wharf(*run_args(env, "--rm", "-"), "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert p.returncode == 3
    assert p.stdout == b"out\n" and p.stderr == b"err\n"
    assert wharf("ps", "-aq").stdout == b""


def test_detached_lifecycle_ps_logs_exec_stop_rm(env):
    cid = wharf(*run_args(env, "-d", "--name", "web", "-e", "A=1", "--label", "k=v", "-"),
                "sh", "-c", "echo started; exec sleep 60").stdout.decode().strip()
    assert len(cid) == 64
    assert "web" in wharf("ps").stdout.decode()
    rows = [json.loads(x) for x in wharf("ps", "--format", "json", "--filter", "label=k=v").stdout.splitlines()]
    assert [r["Names"] for r in rows] == ["web"] and rows[0]["State"] == "running"
    until(lambda: b"started" in wharf("logs", "web").stdout)
    ts = wharf("logs", "-t", "web").stdout.decode().split(" ", 1)[0]
    assert ts.endswith("Z") and "T" in ts
    ex = wharf("exec", "web", "sh", "-c", "echo $A; ps -o pid,comm")
    lines = ex.stdout.decode().splitlines()
    assert lines[0] == "1" and any(ln.split() == ["1", "sleep"] for ln in lines)
    assert wharf("exec", "web", "cat", "/etc/hostname").stdout.decode().strip() == cid[:12]
    doc = inspect("web")
    assert doc["Id"] == cid and doc["Name"] == "/web" and doc["State"]["Running"] is True
    assert doc["Config"]["Labels"] == {"k": "v"} and doc["State"]["Pid"] > 0
    wharf("stop", "-t", "1", "web")
    doc = inspect("web")
    assert doc["State"]["Status"] == "exited" and doc["State"]["ExitCode"] == 137
    wharf("start", "web")
    assert inspect("web")["State"]["Running"] is True
    wharf("rm", "-f", "web")
    assert wharf("ps", "-aq").stdout == b""


def test_detached_container_survives_killed_cli(env):
    proc = subprocess.Popen([WHARF, *run_args(env, "--name", "fg", "-"), "sleep", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    until(lambda: b"fg" in wharf("ps").stdout)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    assert inspect("fg")["State"]["Running"] is True
    assert wharf("exec", "fg", "true").returncode == 0


def test_restart_on_failure_with_backoff_and_unless_stopped(env):
    t0 = time.time()
    cid = wharf(*run_args(env, "-d", "--name", "crash", "--restart", "on-failure:3", "-"),
                "sh", "-c", "exit 4").stdout.decode().strip()
    until(lambda: inspect("crash")["State"]["Status"] == "exited" and inspect("crash")["RestartCount"] == 3)
    assert inspect("crash")["State"]["ExitCode"] == 4
    evs = [json.loads(x) for x in wharf("events", "--since", str(t0), "--until", str(time.time()),
                                         "--filter", f"container={cid}", "--format", "json").stdout.splitlines()]
    starts = [e["timeNano"] / 1e9 for e in evs if e["Action"] == "start"]
    dies = [e["timeNano"] / 1e9 for e in evs if e["Action"] == "die"]
    assert len(starts) == 4 and len(dies) == 4
    gaps = [s - d for d, s in zip(dies, starts[1:], strict=False)]  # Docker's back-off: 0.1, 0.2, 0.4 s
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2 and gaps[2] >= 0.4 and gaps[2] > gaps[0]
    wharf(*run_args(env, "-d", "--name", "us", "--restart", "unless-stopped", "-"), "sleep", "60")
    wharf("stop", "-t", "0", "us")
    time.sleep(0.5)
    assert inspect("us")["State"]["Status"] == "exited"


def test_health_starting_healthy_unhealthy(env):
    wharf(*run_args(env, "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "0.2s",
                    "--health-retries", "2", "--health-start-period", "20s", "--health-start-interval", "0.2s",
                    "-"), "sleep", "60")
    time.sleep(0.5)  # failing probes inside the start period keep it "starting"
    assert inspect("hc")["State"]["Health"]["Status"] == "starting"
    wharf("exec", "hc", "touch", "/tmp/ok")
    until(lambda: inspect("hc")["State"]["Health"]["Status"] == "healthy")
    wharf("exec", "hc", "rm", "/tmp/ok")
    until(lambda: inspect("hc")["State"]["Health"]["Status"] == "unhealthy")
    assert "(unhealthy)" in wharf("ps").stdout.decode()


def test_bad_input_is_clear_and_creates_nothing(env):
    p = wharf(*run_args(env, "-m", "12XB", "-"), "true", check=False)
    assert p.returncode == 125 and b"--memory" in p.stderr and b"Traceback" not in p.stderr
    p = wharf(*run_args(env, "-p", "abc", "-"), "true", check=False)
    assert p.returncode == 125 and b"abc" in p.stderr
    p = wharf(*run_args(env, "--rm", "-"), "/nonexistent", check=False)
    assert p.returncode == 127, p.stderr
    assert wharf("ps", "-aq").stdout == b""
    p = wharf("run", "no-such-image:1", "true", check=False)
    assert p.returncode == 125 and b"no-such-image" in p.stderr
    wharf(*run_args(env, "-d", "--name", "dup", "-"), "sleep", "60")
    p = wharf(*run_args(env, "-d", "--name", "dup", "-"), "true", check=False)
    assert p.returncode == 125 and b"already in use" in p.stderr
    p = wharf("rm", "dup", check=False)
    assert p.returncode == 1 and b"rm -f" in p.stderr
    wharf("stop", "-t", "0", "dup")
    p = wharf("exec", "dup", "true", check=False)
    assert p.returncode == 1 and b"not running" in p.stderr
    assert len(wharf("ps", "-aq").stdout.splitlines()) == 1


def test_named_volume_survives_rm_and_is_reused(env):
    wharf(*run_args(env, "--rm", "-v", "data:/data", "-"), "sh", "-c", "echo keep > /data/f")
    assert "data" in wharf("volume", "ls", "-q").stdout.decode().split()
    p = wharf(*run_args(env, "--rm", "-v", "data:/data:ro", "-"), "cat", "/data/f")
    assert p.stdout == b"keep\n"
    p = wharf("volume", "rm", "data")
    assert wharf("volume", "ls", "-q").stdout == b""


def test_parallel_runs_give_distinct_healthy_containers(env):
    def one(i: int) -> str:
        return wharf(*run_args(env, "-d", "--name", f"p{i}", "--health-cmd", "true", "--health-interval", "0.2s",
                               "-"), "sleep", "60").stdout.decode().strip()

    with ThreadPoolExecutor(10) as ex:
        ids = list(ex.map(one, range(10)))
    assert len(set(ids)) == 10
    assert len(wharf("ps", "-q").stdout.splitlines()) == 10
    until(lambda: len(wharf("ps", "-q", "--filter", "health=healthy").stdout.splitlines()) == 10, timeout=30)
    pids = {inspect(i)["State"]["Pid"] for i in ids}
    assert len(pids) == 10


def test_pty_session_echoes_and_resizes(env):
    import fcntl
    import pty
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        os.execv(WHARF, [WHARF, *run_args(env, "-it", "--rm", "-"), "sh"])
    buf = b""

    def read_until(token: bytes) -> bytes:
        nonlocal buf
        deadline = time.monotonic() + 10
        while token not in buf and time.monotonic() < deadline:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
        assert token in buf, buf
        return buf

    try:
        os.write(fd, b"stty size; echo hel''lo\n")
        read_until(b"hello")
        assert b"30 100" in buf
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        deadline = time.monotonic() + 10
        while b"40 120" not in buf and time.monotonic() < deadline:  # the resize travels via the shim
            os.write(fd, b"stty size\n")
            time.sleep(0.2)
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
        assert b"40 120" in buf
        os.write(fd, b"exit 5\n")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 5
    finally:
        os.close(fd)


def test_rm_f_everything_leaves_nothing(env):
    from runtime import paths
    from runtime.linux.mount import mountpoints

    ids = [wharf(*run_args(env, "-d", "-"), "sleep", "60").stdout.decode().strip() for _ in range(3)]
    pids = [inspect(i)["State"]["Pid"] for i in ids]
    wharf("rm", "-f", *ids)
    root = str(paths.root())
    assert not [m for m in mountpoints() if m.startswith(root)]
    for cid in ids:
        assert not os.path.exists(f"/sys/fs/cgroup/memory/wharf/{cid}")
        assert not os.path.exists(f"/sys/fs/cgroup/pids/wharf/{cid}")
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}")


def test_attach_detach_keys_and_exec_tty(env):
    import pty

    cid = wharf(*run_args(env, "-d", "-it", "--name", "tty", "-"), "sh").stdout.decode().strip()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(WHARF, [WHARF, "attach", "tty"])
    buf = b""
    try:
        os.write(fd, b"echo attach''ed\n")
        deadline = time.monotonic() + 10
        while b"attached" not in buf and time.monotonic() < deadline:
            buf += os.read(fd, 4096)
        assert b"attached" in buf
        os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        os.close(fd)
    assert inspect(cid)["State"]["Running"] is True
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(WHARF, [WHARF, "exec", "-it", "tty", "sh", "-c", "tty; exit 3"])
    buf = b""
    try:
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert b"/dev/pts/" in buf and os.waitstatus_to_exitcode(status) == 3


def test_run_it_detach_leaves_the_container_running(env):
    """`run -it` then Ctrl-P Ctrl-Q: the client leaves, the shell keeps running (its stdin is not
    closed: StdinOnce does not apply to a tty), and a new attach reaches the same shell."""
    import pty

    def session(argv: list[str], send: bytes, want: bytes, detach: bool) -> int:
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(WHARF, [WHARF, *argv])
        buf = b""
        try:
            os.write(fd, send)
            deadline = time.monotonic() + 15
            while want not in buf and time.monotonic() < deadline:
                try:
                    buf += os.read(fd, 4096)
                except OSError:
                    break
            assert want in buf, buf
            if detach:
                os.write(fd, b"\x10\x11")  # ctrl-p ctrl-q
            _, status = os.waitpid(pid, 0)
        finally:
            os.close(fd)
        return os.waitstatus_to_exitcode(status)

    assert session([*run_args(env, "-it", "--name", "itd", "-"), "sh"], b"echo fir''st\n", b"first", True) == 0
    assert inspect("itd")["State"]["Running"] is True
    assert session(["attach", "itd"], b"echo seco''nd; exit 4\n", b"second", False) == 4
    until(lambda: inspect("itd")["State"]["Running"] is False)
    assert inspect("itd")["State"]["ExitCode"] == 4
    wharf("rm", "itd")


def test_killed_shim_is_repaired(env):
    from runtime import paths
    from runtime.linux.mount import mountpoints

    cid = wharf(*run_args(env, "-d", "-"), "sleep", "60").stdout.decode().strip()
    st = json.loads((paths.root() / "containers" / cid / "state.json").read_text())
    os.kill(st["shim_pid"], signal.SIGKILL)
    until(lambda: not os.path.exists(f"/proc/{st['shim_pid']}"))
    doc = inspect(cid)
    assert doc["State"]["Status"] == "exited" and "supervisor" in doc["State"]["Error"]
    until(lambda: not os.path.exists(f"/proc/{st['pid']}"))
    assert not [m for m in mountpoints() if m.startswith(str(paths.root()))]
    wharf("start", cid)
    assert inspect(cid)["State"]["Running"] is True
    wharf("rm", "-f", cid)


def test_restore_restarts_always_containers_after_lost_shims(env):
    from runtime import paths
    from runtime.containers.manager import LocalContainers

    always = wharf(*run_args(env, "-d", "--restart", "always", "-"), "sleep", "60").stdout.decode().strip()
    plain = wharf(*run_args(env, "-d", "-"), "sleep", "60").stdout.decode().strip()
    # one supervisor for the root: killing it loses the supervision of both
    sups = {json.loads((paths.root() / "containers" / cid / "state.json").read_text())["shim_pid"]
            for cid in (always, plain)}
    assert len(sups) == 1
    sup = sups.pop()
    os.kill(sup, signal.SIGKILL)
    until(lambda: not os.path.exists(f"/proc/{sup}"))
    assert LocalContainers().restore() == [always]
    assert inspect(always)["State"]["Running"] is True and inspect(plain)["State"]["Running"] is False


def test_rm_container_is_removed_when_its_run_was_killed(env):
    proc = subprocess.Popen([WHARF, *run_args(env, "--rm", "--name", "gone", "-"), "sleep", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    until(lambda: b"gone" in wharf("ps").stdout)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    until(lambda: wharf("inspect", "gone", check=False).returncode == 1, timeout=15)
    assert wharf("ps", "-aq").stdout == b""


def test_rename_racing_remove_leaves_no_name_reserved(env, busybox_image):
    """rm -f and rename of one container at once: whichever goes first, no name stays reserved for
    a container that is gone (the reconciler's interrupted recreate met exactly this)."""
    from runtime import paths
    from runtime.engine import ContainerSpec
    from runtime.errors import WharfError
    from runtime.local_engine import LocalEngine

    cs = LocalEngine().containers
    names = Path(paths.root()) / "containers" / "names"
    for i in range(12):
        c = cs.create(ContainerSpec(image="busybox:latest", name=f"race{i}-tmp", command=["true"],
                                    network_mode="none"))

        def rename(cid=c.id, i=i):
            try:
                cs.rename(cid, f"race{i}")
            except WharfError:
                pass  # removed first: nothing to rename

        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(cs.remove, c.id, True), pool.submit(rename)]
            for f in futures:
                f.result()
        assert not [n for n in os.listdir(names) if n.startswith(f"race{i}")]
        cs.remove(cs.create(ContainerSpec(image="busybox:latest", name=f"race{i}", command=["true"],
                                          network_mode="none")).id, True)
