"""The one supervisor per state root (runtime/containers/supervisord.py): shared by all containers,
started once under concurrency, gone when idle or when its root is removed, and handing its
containers over to a fresh image of itself (SIGHUP / supervision.restart) without losing a log line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.test_containers_lifecycle import WHARF, until, wharf
from tests.integration.test_containers_lifecycle import env as lifecycle_env  # noqa: F401 - a fixture

pytestmark = pytest.mark.root

COUNTER = "trap 'exit 7' TERM; i=0; while true; do echo $i; i=$((i+1)); sleep 0.01; done"


@pytest.fixture
def env(lifecycle_env):  # noqa: F811
    """A private root (its containers removed afterwards); its supervisor must then go by itself."""
    yield lifecycle_env
    pid = supervisor_pid()
    if pid:
        try:
            until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15)
        except AssertionError:
            raise AssertionError(f"the supervisor is still there:\n{supervisor_stacks(pid)}") from None


def supervisor_stacks(pid: int) -> str:
    """Its threads' stacks (SIGUSR2: faulthandler) and its log."""
    from runtime import paths

    log = paths.run_dir() / "supervisor.log"
    os.kill(pid, signal.SIGUSR2)
    time.sleep(0.5)
    return log.read_text(errors="replace")[-20000:]


def run_d(rootfs: str, *args: str, opts: tuple[str, ...] = ()) -> str:
    """`run -d` of the command `args` with `opts` (the image is "-": --rootfs gives the root)."""
    return wharf("run", "--rootfs", rootfs, "--network", "none", "-d", *opts, "-", *args).stdout.decode().strip()


def state(cid: str) -> dict:
    from runtime import paths

    return json.loads((paths.root() / "containers" / cid / "state.json").read_text())


def supervisor_pid() -> int:
    from runtime import paths

    try:
        pid = int((paths.run_dir() / "supervisor.pid").read_text())
    except (OSError, ValueError):
        return 0
    return pid if os.path.exists(f"/proc/{pid}") else 0


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def counted(cid: str) -> list[int]:
    lines = wharf("logs", cid).stdout.decode().split()
    return [int(x) for x in lines]


def test_one_supervisor_for_all_started_once_and_gone_when_idle(env):
    from runtime.containers import supervision

    with ThreadPoolExecutor(6) as ex:  # a cold root: six engines race to start the supervisor
        ids = list(ex.map(lambda i: run_d(env, "sleep", "60"), range(6)))
    pids = {state(c)["shim_pid"] for c in ids}
    assert len(pids) == 1
    sup = pids.pop()
    assert sup == supervisor_pid() and b"supervise.py" in cmdline(sup)
    assert sorted(supervision.ping()["containers"]) == sorted(ids)
    wharf("rm", "-f", *ids)
    until(lambda: not os.path.exists(f"/proc/{sup}"), timeout=15)  # idle for a few seconds: it exits
    assert supervision.ping() is None
    cid = run_d(env, "sleep", "60")  # and the next start brings up a new one
    assert state(cid)["shim_pid"] not in (0, sup)
    wharf("rm", "-f", cid)


def test_handoff_keeps_containers_running_logging_and_waitable(env):
    from runtime.containers import supervision
    from runtime.containers.manager import LocalContainers

    log = run_d(env, "sh", "-c", COUNTER, opts=("--name", "log"))
    tty = run_d(env, "sh", "-c", COUNTER, opts=("-t", "--name", "tty"))
    crash = run_d(env, "sh", "-c", "sleep 0.3; exit 3", opts=("--name", "crash", "--restart", "always"))
    hc = run_d(env, "sleep", "60", opts=("--name", "hc", "--health-cmd", "true", "--health-interval", "0.2s"))
    until(lambda: state(hc).get("health", {}).get("status") == "healthy")
    until(lambda: len(counted(log)) > 20)
    sup = supervisor_pid()
    waited: list[int] = []
    waiter = threading.Thread(target=lambda: waited.append(LocalContainers().wait(log)))
    waiter.start()
    time.sleep(0.2)  # the wait client is connected to the container's socket
    for how in ("signal", "request"):
        restarts = state(crash)["restart_count"]
        n = len(counted(log))
        if how == "signal":
            os.kill(sup, signal.SIGHUP)
        else:
            assert supervision.restart()["pid"] == sup
        until(lambda: b"--adopt" in cmdline(sup) and supervision.ping() is not None)
        assert supervisor_pid() == sup  # the same process, a new image
        until(lambda n=n: len(counted(log)) > n + 20)  # still logging
        # still restarting with its back-off (which doubles: 0.1 s, 0.2 s, ... so only one more here)
        until(lambda r=restarts: state(crash)["restart_count"] > r, timeout=30)
    assert state(log)["status"] == "running" and state(tty)["status"] == "running"
    probed = state(hc)["health"]["log"][-1]["End"]
    try:
        until(lambda: state(hc)["health"]["log"][-1]["End"] > probed, timeout=5)  # still probing
    except AssertionError:
        raise AssertionError(f"no health probe after the hand-off:\n{supervisor_stacks(sup)}") from None
    assert state(hc)["health"]["status"] == "healthy"
    for cid in (log, tty):  # no line lost, none written twice
        values = counted(cid)
        assert values == list(range(len(values))), values
    assert wharf("exec", "tty", "echo", "hi").stdout == b"hi\n"
    wharf("stop", "-t", "5", "log")
    waiter.join(10)
    assert waited == [7]
    assert json.loads(wharf("inspect", "log").stdout)[0]["State"]["ExitCode"] == 7
    wharf("rm", "-f", log, tty, crash, hc)



def test_removed_root_makes_the_supervisor_go(env):
    from runtime import paths

    cid = run_d(env, "sleep", "60")
    pid, sup = state(cid)["pid"], supervisor_pid()
    os.unlink(paths.run_dir() / "supervisor.sock")  # what deleting a test's tmp root does
    until(lambda: not os.path.exists(f"/proc/{sup}"), timeout=15)
    assert not os.path.exists(f"/proc/{pid}")  # it did not leave its container running unsupervised
    assert json.loads(wharf("inspect", cid).stdout)[0]["State"]["Running"] is False
    wharf("rm", cid)


def test_killed_supervisor_neither_hangs_nor_lies(env):
    cid = run_d(env, "sleep", "60")
    st = state(cid)
    os.kill(st["shim_pid"], signal.SIGKILL)
    until(lambda: not os.path.exists(f"/proc/{st['shim_pid']}"))
    assert wharf("wait", cid, timeout=20).stdout.strip() == b"255"
    doc = json.loads(wharf("inspect", cid).stdout)[0]
    assert doc["State"]["Status"] == "exited" and "supervisor" in doc["State"]["Error"]
    until(lambda: not os.path.exists(f"/proc/{st['pid']}"))
    wharf("stop", cid, timeout=20)
    wharf("rm", cid)


@pytest.fixture
def image_env(busybox_image, env):
    """busybox:latest in the private root: `wharf run busybox ...` takes the lean path, done by a
    worker the supervisor forks (runtime/containers/supervisord.py: run_worker)."""
    yield env


def test_run_in_a_worker_streams_passes_signals_and_survives_a_handoff(image_env, tmp_path):
    p = wharf("run", "--rm", "--network", "none", "-e", "A=1", "busybox", "sh", "-c",
              "echo out $A; echo err >&2; exit 3", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, b"out 1\n", b"err\n")
    # Ctrl-C reaches the container through the client, the worker and the supervisor
    proc = subprocess.Popen([WHARF, "run", "--rm", "--network", "none", "busybox", "sh", "-c",
                             "trap 'exit 9' INT; i=0; while true; do echo $i; i=$((i+1)); sleep 0.02; done"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"0\n"
    sup = supervisor_pid()
    names = {open(f"/proc/{p}/comm").read().strip() for p in children_of(sup)}
    assert "wharf-run" in names  # ps/top tell the supervisor's processes apart
    assert open(f"/proc/{sup}/comm").read().strip() == "wharf-supervise"
    os.kill(sup, signal.SIGHUP)  # a hand-off while the worker runs: the client is not disturbed
    until(lambda: b"--adopt" in cmdline(sup))
    lines = [proc.stdout.readline() for _ in range(30)]
    assert lines == [b"%d\n" % i for i in range(1, 31)]
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)
    assert proc.returncode == 9
    # a killed client takes its worker along, not its container (as a killed CLI did)
    proc = subprocess.Popen([WHARF, "run", "--name", "fg", "--network", "none", "busybox", "sh", "-c",
                             "echo ready; sleep 60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    proc.kill()
    proc.wait()
    time.sleep(0.3)
    assert json.loads(wharf("inspect", "fg").stdout)[0]["State"]["Running"] is True
    assert wharf("ps", "-q").stdout.split() == [state_id("fg")[:12].encode()]
    wharf("rm", "-f", "fg")


def children_of(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            continue
    return out


def state_id(name: str) -> str:
    return json.loads(wharf("inspect", name).stdout)[0]["Id"]
