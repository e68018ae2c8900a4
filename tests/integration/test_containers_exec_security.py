"""`wharf exec` runs with the container's process settings (as runc/docker exec): capabilities,
seccomp filter, no_new_privileges, rlimits; `--privileged` gives every capability. Real containers (root)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

WHARF = str(Path(sys.executable).with_name("wharf"))
pytestmark = pytest.mark.root


def wharf(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([WHARF, *args], capture_output=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def host_caps() -> int:
    with open("/proc/self/status") as f:
        return int(status(f.read())["CapBnd"], 16)


@pytest.fixture
def box(wharf_root, busybox_rootfs):
    """start(name, *run flags): a detached `sleep` container; all are force-removed afterwards."""
    names: list[str] = []

    def start(*flags: str) -> str:
        name = f"ex{uuid.uuid4().hex[:8]}"
        wharf("run", "-d", "--name", name, "--rootfs", str(busybox_rootfs), "--network", "none", *flags,
              "-", "sleep", "600")
        names.append(name)
        return name

    yield start
    for n in names:
        wharf("rm", "-f", n, check=False)


def exec_status(name: str, *flags: str) -> tuple[dict[str, str], dict[str, str]]:
    """(/proc/self/status of the exec'd process, /proc/1/status of the container's init)."""
    out = wharf("exec", *flags, name, "sh", "-c", "cat /proc/self/status; echo ===; cat /proc/1/status")
    mine, init = out.stdout.decode().split("===\n")
    return status(mine), status(init)


def test_exec_gets_the_init_caps_and_seccomp_filter(box):
    c = box()
    mine, init = exec_status(c)
    for k in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb", "NoNewPrivs"):
        assert mine[k] == init[k], k
    assert int(mine["CapEff"], 16) != host_caps()  # the default set, not the host's
    assert mine["Seccomp"].strip() == "2" and init["Seccomp"].strip() == "2"
    p = wharf("exec", c, "unshare", "-n", "true", check=False)
    assert p.returncode != 0 and b"not permitted" in p.stderr


def test_privileged_exec_gets_every_capability(box):
    c = box()
    mine, _ = exec_status(c, "--privileged")
    assert int(mine["CapEff"], 16) == int(mine["CapBnd"], 16) == host_caps()
    # as docker exec --privileged: the container's seccomp filter still applies (it denies unshare
    # because the container has no CAP_SYS_ADMIN)
    assert mine["Seccomp"].strip() == "2"
    assert wharf("exec", "--privileged", c, "unshare", "-n", "true", check=False).returncode != 0


def test_unconfined_container_caps_decide_unshare(box):
    c = box("--security-opt", "seccomp=unconfined")
    mine, _ = exec_status(c)
    assert mine["Seccomp"].strip() == "0"
    assert wharf("exec", c, "unshare", "-n", "true", check=False).returncode != 0
    assert wharf("exec", "--privileged", c, "unshare", "-n", "true").returncode == 0


def test_cap_add_no_new_privileges_and_rlimits_are_visible_in_exec(box):
    from runtime.linux import caps

    c = box("--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN", "--security-opt", "no-new-privileges",
            "--ulimit", "nofile=123:456")
    mine, init = exec_status(c)
    eff = int(mine["CapEff"], 16)
    assert eff >> caps.number("NET_ADMIN") & 1 and not eff >> caps.number("CHOWN") & 1
    assert mine["CapEff"] == init["CapEff"]
    assert mine["NoNewPrivs"].strip() == "1" and mine["Seccomp"].strip() == "2"
    out = wharf("exec", c, "sh", "-c", "ulimit -Sn; ulimit -Hn").stdout.decode().split()
    assert out == ["123", "456"]


def test_exec_as_user_drops_caps_like_the_init_would(box):
    c = box()
    mine, init = exec_status(c, "-u", "65534")
    assert mine["Uid"].split()[0] == "65534"
    assert mine["CapBnd"] == init["CapBnd"] and mine["Seccomp"].strip() == "2"


def test_spawn_without_config_reads_the_bundle(box):
    """Health checks call nsexec.spawn without a config: it comes from the container's bundle."""
    from runtime.containers import nsexec
    from runtime.containers.manager import LocalContainers

    c = box("--cap-add", "NET_ADMIN")
    info = LocalContainers().inspect(c)
    r, w = os.pipe()
    pid = nsexec.spawn(info.state.pid, ["cat", "/proc/self/status"], ["PATH=/bin"], f"/wharf/{info.id}",
                       stdio=(0, w, w))
    os.close(w)
    with os.fdopen(r) as f:
        out = status(f.read())
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert out["Seccomp"].strip() == "2" and int(out["CapEff"], 16) >> 12 & 1


def test_health_check_runs_under_the_container_filter(box):
    c = box("--health-cmd", "grep -q 'Seccomp:.2' /proc/self/status", "--health-interval", "0.2s")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        out = wharf("inspect", "-f", "{{.State.Health.Status}}", c).stdout.decode().strip()
        if out in ("healthy", "unhealthy"):
            break
        time.sleep(0.1)
    assert out == "healthy"


def test_missing_bundle_config_fails_closed(box, wharf_root):
    from runtime.containers import nsexec
    from runtime.containers.manager import LocalContainers

    c = box()
    info = LocalContainers().inspect(c)
    r, w = os.pipe()
    pid = nsexec.spawn(info.state.pid, ["true"], [], "/wharf/nosuchcontainer", stdio=(0, w, w))
    os.close(w)
    with os.fdopen(r) as f:
        err = f.read()
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 126
    assert "config.json" in err


@pytest.mark.network
def test_privileged_exec_through_the_api(wharf_daemon, busybox_rootfs):
    """`exec --privileged` against `wharf serve` (Privileged in the exec create body) gets every cap."""
    name = f"ex{uuid.uuid4().hex[:8]}"
    wharf("run", "-d", "--name", name, "--rootfs", str(busybox_rootfs), "--network", "none", "-", "sleep", "600")
    remote = {**os.environ, "WHARF_HOST": f"unix://{wharf_daemon}"}
    try:
        got = {}
        for flags in ((), ("--privileged",)):
            p = subprocess.run([WHARF, "exec", *flags, name, "cat", "/proc/self/status"], env=remote,
                               capture_output=True, timeout=60)
            assert p.returncode == 0, p.stderr
            got[flags] = int(status(p.stdout.decode())["CapEff"], 16)
        assert got[()] != host_caps() and got[("--privileged",)] == host_caps()
    finally:
        wharf("rm", "-f", name, check=False)


def test_preload_imports_what_the_helper_needs():
    import sys as _sys

    from runtime.containers import nsexec

    nsexec.preload()
    for mod in ("runtime.linux.seccomp", "runtime.oci.init", "runtime.linux.rlimits", "runtime.oci.fastjson",
                "runtime.linux.cgroups", "runtime.linux.ns"):
        assert mod in _sys.modules


def test_container_and_exec_processes_start_with_default_signals(box, busybox_rootfs):
    """Nothing ignored or blocked (as under Docker): the Python processes they descend from ignore
    SIGPIPE, and an inherited SIG_IGN would turn `yes | head -1` into a "Broken pipe" error."""
    c = box()
    mine, init = exec_status(c)
    for st in (mine, init):
        assert int(st["SigIgn"], 16) == 0 and int(st["SigBlk"], 16) == 0, st["SigIgn"]
    for argv in (["exec", c], ["run", "--rm", "--network", "none", "--rootfs", str(busybox_rootfs), "-"]):
        p = wharf(*argv, "sh", "-c", "yes | head -1")
        assert (p.stdout, p.stderr) == (b"y\n", b"")


def test_groups_and_netns_sysctls_as_docker(box, busybox_rootfs):
    """As Docker: the primary gid is among the supplementary groups (exec too), `--group-add` adds gids
    or image groups; a container's own netns lets any user bind ports < 1024 and ping (not --network
    host, not over a --sysctl the user gave)."""
    def run(*flags: str, cmd: str) -> str:
        return wharf("run", "--rm", *flags, "--rootfs", str(busybox_rootfs), "-", "sh", "-c", cmd).stdout.decode()

    probe = "id; cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/ipv4/ping_group_range"
    assert run("--network", "none", cmd=probe) == "uid=0(root) gid=0(root) groups=0(root)\n0\n0\t2147483647\n"
    assert run("--network", "none", "-u", "1:1", "--group-add", "root", "--group-add", "77", cmd="id") \
        == "uid=1 gid=1 groups=0(root),1,77\n"  # (the kernel sorts them)
    host = open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()
    assert run("--network", "host", cmd="cat /proc/sys/net/ipv4/ip_unprivileged_port_start") == host
    assert run("--network", "none", "--sysctl", "net.ipv4.ip_unprivileged_port_start=80",
               cmd="cat /proc/sys/net/ipv4/ip_unprivileged_port_start") == "80\n"
    p = wharf("run", "--rm", "--group-add", "nosuch", "--rootfs", str(busybox_rootfs), "-", "true", check=False)
    assert p.returncode == 125 and b"unable to find group nosuch" in p.stderr
    c = box()
    assert wharf("exec", "-u", "1:1", c, "id").stdout == b"uid=1 gid=1 groups=1\n"


def test_device_permissions_hold_as_runc_s(busybox_rootfs, wharf_root, tmp_path):
    """`--device HOST:CONTAINER:r` gives a node the container may open for reading only (the node to
    create grants nothing by itself; the cgroup rule has the access asked for), as runc."""
    node = tmp_path / "lc"
    os.mknod(node, 0o600 | 0o020000, os.makedev(10, 237))  # loop-control: harmless to open
    for rt in ("builtin", "runc"):
        if rt == "runc" and not shutil.which("runc"):
            continue
        script = ": < /dev/xd && echo read; : > /dev/xd && echo write"
        p = wharf("run", "--rm", "--runtime", rt, "--device", f"{node}:/dev/xd:r", "--network", "none",
                  "--rootfs", str(busybox_rootfs), "-", "sh", "-c", script, check=False)
        assert p.stdout == b"read\n" and b"Operation not permitted" in p.stderr, (rt, p.stderr)
        p = wharf("run", "--rm", "--runtime", rt, "--device", f"{node}:/dev/xd", "--network", "none",
                  "--rootfs", str(busybox_rootfs), "-", "sh", "-c", script, check=False)
        assert p.stdout == b"read\nwrite\n", (rt, p.stderr)
