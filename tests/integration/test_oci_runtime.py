"""The built-in OCI runtime on a real kernel; the same bundles under runc as the oracle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from runtime.linux.mount import mountpoints
from runtime.oci.bundle import write_bundle
from runtime.oci.runtimes import runtime_argv

pytestmark = pytest.mark.root
RUNTIMES = ["builtin"] + (["runc"] if shutil.which("runc") else [])


class RT:
    """One runtime binary with a private --root."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.argv = [*runtime_argv(name), "--root", str(root)]

    def __call__(self, *args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        p = subprocess.run([*self.argv, *args], text=True, timeout=60, **kw)
        if check and p.returncode != 0:
            raise AssertionError(f"{self.name} {' '.join(args)} -> {p.returncode}: {p.stderr}")
        return p

    def run(self, bundle: Path, check: bool = True) -> subprocess.CompletedProcess:
        return self("run", "--bundle", str(bundle), new_id(), check=check)

    def state(self, cid: str) -> dict:
        return json.loads(self("state", cid).stdout)


def new_id() -> str:
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture(params=RUNTIMES)
def rt(request, tmp_path):
    r = RT(request.param, tmp_path / f"state-{request.param}")
    yield r
    for cid in os.listdir(r.root) if r.root.exists() else []:
        r("delete", "--force", cid, check=False)


@pytest.fixture
def builtin(tmp_path):
    r = RT("builtin", tmp_path / "state-builtin")
    yield r
    for cid in os.listdir(r.root) if r.root.exists() else []:
        r("delete", "--force", cid, check=False)


def bundle(tmp_path: Path, rootfs: Path, script: str, changes: dict | None = None) -> Path:
    b = tmp_path / ("bundle-" + uuid.uuid4().hex[:6])
    write_bundle(b, rootfs, ["sh", "-c", script], changes)
    return b


def test_isolation_inside(rt, tmp_path, busybox_rootfs):
    script = ("echo pid=$$; hostname; ps -o pid= | wc -l; "
              "grep -c . /proc/self/mountinfo >/dev/null && cut -d' ' -f5 /proc/self/mountinfo | sort | tr '\\n' ' '")
    out = rt.run(bundle(tmp_path, busybox_rootfs, script, {"hostname": "box1"})).stdout.splitlines()
    assert out[0] == "pid=1"
    assert out[1] == "box1"
    assert int(out[2]) <= 3  # sh, ps, wc: no host process is visible
    points = out[3].split()
    assert "/" in points and "/proc" in points and "/dev/pts" in points
    host_only = {p for p in mountpoints() if p.startswith(("/work", "/home", "/var/lib"))}
    assert not host_only & set(points)


def test_proc_sys_readonly_masked_paths_and_caps(rt, tmp_path, busybox_rootfs):
    script = ("echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo sysw=yes || echo sysw=no; "
              "echo masked=$(cat /proc/timer_list 2>/dev/null | wc -c); "
              "echo sysfs=$(touch /sys/x 2>/dev/null && echo rw || echo ro); "
              "grep CapEff /proc/self/status; "
              "mkdir -p /mnt; mount -t tmpfs none /mnt 2>/dev/null && echo mount=yes || echo mount=no; "
              "ls /dev | tr '\\n' ' '")
    out = rt.run(bundle(tmp_path, busybox_rootfs, script)).stdout.splitlines()
    assert out[0] == "sysw=no"
    assert out[1] == "masked=0"
    assert out[2] == "sysfs=ro"
    eff = int(out[3].split()[1], 16)
    assert not eff & (1 << 21)  # CAP_SYS_ADMIN
    assert eff == 0xA80425FB  # exactly Docker's default set
    assert out[4] == "mount=no"
    assert set(out[5].split()) >= {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "ptmx"}


@pytest.fixture
def open_tmp():
    """A directory every uid can traverse (pytest's tmp_path is 0700: a mapped root could not enter it)."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="wharf-oci-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_user_namespace_maps_root(rt, open_tmp, tmp_path):
    from tests.conftest import make_busybox_rootfs

    busybox_rootfs = make_busybox_rootfs(open_tmp / "rootfs")
    host_uid = 200000 + (os.getpid() % 1000) * 100
    changes = {"linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "network",
                                                               "cgroup")],
                         "uidMappings": [{"containerID": 0, "hostID": host_uid, "size": 65536}],
                         "gidMappings": [{"containerID": 0, "hostID": host_uid, "size": 65536}]}}
    out = rt.run(bundle(open_tmp, busybox_rootfs, "id -u; cat /proc/self/uid_map; ls /dev/null; "
                                                  "touch /tmp/owned; ls /sys/fs/cgroup | grep -c .", changes))
    lines = out.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(host_uid), "65536"]
    assert lines[2] == "/dev/null"
    assert int(lines[3]) >= 1  # sysfs and the cgroup tree are mounted inside the user namespace too
    assert (busybox_rootfs / "tmp" / "owned").stat().st_uid == host_uid  # root inside is host_uid outside


def test_lifecycle_states_and_delete_leaves_nothing(rt, tmp_path, busybox_rootfs):
    b = bundle(tmp_path, busybox_rootfs, "sleep 30", {"linux": {"cgroupsPath": f"/wharf/{uuid.uuid4().hex[:10]}"}})
    cid = new_id()
    pidfile = tmp_path / "pid"
    with open(tmp_path / "out", "w") as out:
        rt("create", "--bundle", str(b), "--pid-file", str(pidfile), cid, stdout=out, stderr=out,
           capture_output=False)
    st = rt.state(cid)
    assert st["status"] == "created" and st["id"] == cid and st["bundle"] == str(b)
    assert st["pid"] == int(pidfile.read_text()) > 0
    pid = st["pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    cg_rel = json.loads((b / "config.json").read_text())["linux"]["cgroupsPath"]
    assert cg_rel in Path(f"/proc/{pid}/cgroup").read_text()
    rt("start", cid)
    assert rt.state(cid)["status"] == "running"
    again = rt("start", cid, check=False)
    assert again.returncode == 1
    rt("kill", cid, "KILL")
    deadline = time.monotonic() + 10
    while rt.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    rt("delete", cid)
    assert rt("state", cid, check=False).returncode == 1
    assert not (rt.root / cid).exists()
    assert not [p for p in Path("/sys/fs/cgroup").glob("*" + cg_rel)]
    assert not [m for m in mountpoints() if str(busybox_rootfs) in m]


def test_hooks_run_in_order_with_state(builtin, tmp_path, busybox_rootfs):
    log = tmp_path / "hooks"
    log.mkdir()
    os.chmod(tmp_path, 0o755)

    def hook(name: str, path: str = str(log)) -> dict:
        return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {path}/{name}.json; echo {name} >> {path}/order"]}

    changes = {"hooks": {"prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")],
                         "createContainer": [hook("createContainer")],
                         "startContainer": [hook("startContainer", "/hooks")],
                         "poststart": [hook("poststart")], "poststop": [hook("poststop")]},
               "mounts": [*write_bundle(tmp_path / "x", busybox_rootfs, ["true"])["mounts"],
                          {"destination": "/hooks", "type": "bind", "source": str(log), "options": ["rbind"]}]}
    b = bundle(tmp_path, busybox_rootfs, "echo main >> /hooks/order", changes)
    builtin.run(b)
    order = (log / "order").read_text().split()
    # the process runs concurrently with poststart: only its place after startContainer is fixed
    assert order.index("main") > order.index("startContainer")
    assert [h for h in order if h != "main"] == [
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    st = json.loads((log / "createRuntime.json").read_text())
    assert st["status"] == "creating" and st["pid"] > 0 and st["bundle"] == str(b)
    assert json.loads((log / "poststop.json").read_text())["status"] == "stopped"


def test_console_socket_receives_pty_master(rt, tmp_path, busybox_rootfs):
    import socket

    sock_path = str(tmp_path / "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    b = bundle(tmp_path, busybox_rootfs, "tty; echo hello-from-tty", {"process": {"terminal": True}})
    cid = new_id()
    rt("create", "--bundle", str(b), "--console-socket", sock_path, cid, stdout=subprocess.DEVNULL,
       stderr=subprocess.DEVNULL, capture_output=False)
    conn, _ = srv.accept()
    _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
    conn.close()
    srv.close()
    master = fds[0]
    rt("start", cid)
    data = b""
    while b"hello-from-tty" not in data:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(master)
    assert b"/dev/pts/0" in data and b"hello-from-tty" in data
    rt("delete", "--force", cid)


@pytest.mark.parametrize("what", ["json", "field", "rootfs", "nstype", "duplicate"])
def test_bad_input_one_clear_error_nothing_left(builtin, tmp_path, busybox_rootfs, what):
    b = bundle(tmp_path, busybox_rootfs, "sleep 10")
    cfg = b / "config.json"
    spec = json.loads(cfg.read_text())
    expect = {"json": "not valid JSON", "field": "process.cwd", "rootfs": "root.path",
              "nstype": "linux.namespaces[6].type", "duplicate": "already exists"}[what]
    cid = new_id()
    if what == "json":
        cfg.write_text(cfg.read_text()[:-5])
    elif what == "field":
        del spec["process"]["cwd"]
    elif what == "rootfs":
        spec["root"]["path"] = str(tmp_path / "nope")
    elif what == "nstype":
        spec["linux"]["namespaces"].append({"type": "bogus"})
    if what not in ("json", "duplicate"):
        cfg.write_text(json.dumps(spec))
    if what == "duplicate":
        builtin("create", "--bundle", str(b), cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                capture_output=False)
    p = builtin("create", "--bundle", str(b), cid, check=False)
    assert p.returncode == 1
    assert expect in p.stderr and len(p.stderr.strip().splitlines()) <= 2 and "Traceback" not in p.stderr
    assert not [m for m in mountpoints() if m.startswith(str(tmp_path))]  # (others' tests mount too)
    if what != "duplicate":
        assert not (builtin.root / cid).exists()
        assert not list(Path("/sys/fs/cgroup").glob(f"*/wharf/{cid}"))
    else:
        assert builtin.state(cid)["status"] == "created"


def test_start_on_running_is_a_clear_error(builtin, tmp_path, busybox_rootfs):
    b = bundle(tmp_path, busybox_rootfs, "sleep 30")
    cid = new_id()
    builtin("run", "--detach", "--bundle", str(b), cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            capture_output=False)
    p = builtin("start", cid, check=False)
    assert p.returncode == 1 and "is running, not created" in p.stderr
    p = builtin("delete", cid, check=False)
    assert p.returncode == 1 and "--force" in p.stderr
    builtin("delete", "--force", cid)
    assert builtin("list", "--format", "json").stdout.strip() == "[]"


def test_exec_failure_reported_by_create(builtin, tmp_path, busybox_rootfs):
    b = tmp_path / "b"
    write_bundle(b, busybox_rootfs, ["/no/such/binary"])
    p = builtin("create", "--bundle", str(b), new_id(), check=False)
    assert p.returncode == 1 and "process.args[0]" in p.stderr and "not found" in p.stderr
    assert os.listdir(builtin.root) == [".seccomp"]  # only the cache of compiled seccomp filters


PROBE = r"""
echo pid=$$; hostname; id; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status
ls -l /dev | awk '{print $1, $3, $4, $5, $6, $NF}' | sort
cut -d' ' -f5,6 /proc/self/mountinfo | sort; cat /proc/self/cgroup; ulimit -n; ulimit -Hn; umask; pwd
cat /proc/kcore 2>&1 | wc -c; echo 1 > /proc/sys/vm/overcommit_memory 2>&1; mount -t tmpfs x /mnt 2>&1
cat /proc/keys | wc -c; env | sort
"""


@pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
def test_differential_same_bundle_same_view_as_runc(tmp_path, busybox_rootfs):
    """Identity, capabilities, seccomp, /dev, mount table, cgroups, limits, env: byte for byte runc's."""
    (busybox_rootfs / "mnt").mkdir(exist_ok=True)
    b = bundle(tmp_path, busybox_rootfs, PROBE)
    outs = {}
    for name in ("builtin", "runc"):
        p = RT(name, tmp_path / f"st-{name}").run(b, check=False)
        outs[name] = p.stdout + p.stderr
    assert "pid=1" in outs["builtin"]
    assert outs["builtin"] == outs["runc"]


def test_only_stdio_reaches_the_container(rt, tmp_path, busybox_rootfs):
    """A supervisor's pipes leaked into `create` must not live on in the container (its reader
    would never see EOF)."""
    r, w = os.pipe()
    try:
        b = bundle(tmp_path, busybox_rootfs, "set -- /proc/self/fd/*; echo $#")
        out = rt("run", "--bundle", str(b), new_id(), pass_fds=(w,)).stdout
    finally:
        os.close(r)
        os.close(w)
    assert out.strip() == "4"  # 0, 1, 2 and the directory fd of the glob itself


@pytest.mark.network
def test_joins_a_network_namespace_by_path(rt, tmp_path, busybox_rootfs):
    """linux.namespaces[].path: the engine creates the netns first, the runtime joins it."""
    name = "wo" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "wva0", "type", "veth", "peer", "name", "wvb0"],
                       check=True)
        nss = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
            {"type": "network", "path": f"/var/run/netns/{name}"}]
        b = bundle(tmp_path, busybox_rootfs, "readlink /proc/self/ns/net; ls /sys/class/net | tr '\\n' ' '",
                   {"linux": {"namespaces": nss}})
        out = rt.run(b).stdout.splitlines()
        inode = os.stat(f"/var/run/netns/{name}").st_ino
        assert out[0] == f"net:[{inode}]"
        assert {"lo", "wva0", "wvb0"} <= set(out[1].split())
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


LO_PROBE = "cat /sys/class/net/lo/flags; ip -o addr show lo | awk '{print $4}'; ping -c1 -W1 127.0.0.1 >/dev/null && echo ping"


def test_a_network_namespace_of_its_own_has_lo_up(rt, tmp_path, busybox_rootfs):
    """As runc (libcontainer's "loopback" network for a netns without a path): lo is up, 127.0.0.1 answers."""
    out = rt.run(bundle(tmp_path, busybox_rootfs, LO_PROBE)).stdout.split()
    assert int(out[0], 16) & 0x1 and out[1:] == ["127.0.0.1/8", "::1/128", "ping"]


@pytest.mark.network
def test_a_joined_network_namespace_keeps_lo_as_it_is(rt, tmp_path, busybox_rootfs):
    """A netns given by path belongs to whoever made it (the engine brings its lo up): neither runc nor we touch it."""
    name = "wl" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        nss = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
            {"type": "network", "path": f"/var/run/netns/{name}"}]
        out = rt.run(bundle(tmp_path, busybox_rootfs, "cat /sys/class/net/lo/flags",
                            {"linux": {"namespaces": nss}})).stdout.split()
        assert not int(out[0], 16) & 0x1
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_without_mount_namespace_delete_unmounts(builtin, tmp_path, busybox_rootfs):
    """No "mount" namespace: the container mounts in the host's (chroot, as runc); delete undoes it."""
    b = bundle(tmp_path, busybox_rootfs, "ls /proc/1/ns >/dev/null && echo ok",
               {"linux": {"namespaces": [{"type": "pid"}], "maskedPaths": [], "readonlyPaths": []},
                "hostname": None})
    cid = new_id()
    with open(tmp_path / "out", "w") as f:
        builtin("create", "--bundle", str(b), cid, stdout=f, stderr=f, capture_output=False)
    assert [p for p in mountpoints() if p.startswith(str(busybox_rootfs))]
    builtin("start", cid)
    deadline = time.monotonic() + 10
    while builtin.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    builtin("delete", cid)
    assert (tmp_path / "out").read_text().strip() == "ok"
    assert not [p for p in mountpoints() if p.startswith(str(busybox_rootfs))]


def test_pause_resume_ps(rt, tmp_path, busybox_rootfs):
    b = bundle(tmp_path, busybox_rootfs, "sleep 30")
    cid = new_id()
    rt("run", "--detach", "--bundle", str(b), cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
       capture_output=False)
    pid = rt.state(cid)["pid"]
    rt("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    assert open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] in ("D", "S")
    rt("resume", cid)
    assert rt.state(cid)["status"] == "running"
    assert str(pid) in rt("ps", cid).stdout.split()
    rt("delete", "--force", cid)


def test_relative_bind_source_resolves_against_the_bundle(rt, tmp_path, busybox_rootfs):
    b = tmp_path / "bundle-rel"
    spec = write_bundle(b, busybox_rootfs, ["cat", "/data/hello"])
    (b / "data").mkdir()
    (b / "data" / "hello").write_text("from the bundle\n")
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]})
    (b / "config.json").write_text(json.dumps(spec))
    assert rt.run(b).stdout == "from the bundle\n"


def test_update_changes_resources_of_a_running_container(rt, tmp_path, busybox_rootfs):
    from runtime.linux.cgroups import open_cgroup

    cg_path = f"/wharf/{uuid.uuid4().hex[:10]}"
    b = bundle(tmp_path, busybox_rootfs, "sleep 30", {"linux": {"cgroupsPath": cg_path,
                                                                "resources": {"pids": {"limit": 50}}}})
    cid = new_id()
    rt("run", "--detach", "--bundle", str(b), cid, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
       capture_output=False)
    rt("update", "--memory", str(64 << 20), "--memory-swap", str(128 << 20), "--pids-limit", "7", cid)
    st = open_cgroup(cg_path).stats()
    assert (st.memory_limit, st.pids_limit) == (64 << 20, 7)
    rt("update", "-r", "-", cid, input='{"pids": {"limit": 9}}')
    assert open_cgroup(cg_path).stats().pids_limit == 9
    if rt.name == "builtin":
        p = rt("update", "-r", "-", cid, input='{"memory": {"limit": "lots"}}', check=False)
        assert p.returncode == 1 and "linux.resources.memory.limit: must be an integer" in p.stderr
    rt("delete", "--force", cid)
