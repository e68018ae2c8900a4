"""Every container verb as a user runs it, on the bootstrapped busybox image (root, real kernel)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

WHARF = str(Path(sys.executable).with_name("wharf"))
pytestmark = pytest.mark.root


def wharf(*args: str, check: bool = True, input: bytes | None = None, timeout: float = 60):
    p = subprocess.run([WHARF, *args], capture_output=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def out(*args: str) -> str:
    return wharf(*args).stdout.decode()


def until(pred, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def state(ref: str) -> dict:
    return json.loads(out("inspect", ref))[0]["State"]


@pytest.fixture
def bb(wharf_root):
    """busybox:latest in a private root; all containers force-removed afterwards."""
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    bootstrap_busybox(ImageStore())
    yield "busybox"
    from runtime.containers.manager import LocalContainers

    cs = LocalContainers()
    for info in cs.list(all=True):
        try:
            cs.remove(info.id, force=True, volumes=True)
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def detached(*args: str) -> str:
    return out("run", "-d", "--network", "none", *args).strip()


def test_image_config_env_and_hostname(bb):
    env = out("run", "--rm", "--network", "none", "--hostname", "box", "-e", "X=1", bb, "env")
    assert "PATH=/usr/local/sbin" in env and "HOSTNAME=box" in env and "X=1" in env
    assert out("run", "--rm", "--network", "none", "-w", "/tmp", bb, "pwd") == "/tmp\n"
    assert out("run", "--rm", "--network", "none", "-u", "65534", bb, "id", "-u") == "65534\n"
    p = wharf("run", "--rm", "--network", "none", "--entrypoint", "echo", bb, "a", "b")
    assert p.stdout == b"a b\n"


def test_exec_user_workdir_env_detach(bb):
    detached("--name", "ex", bb, "sleep", "60")
    assert out("exec", "-u", "nobody", "ex", "id", "-u") == "65534\n"
    assert out("exec", "-w", "/tmp", "-e", "Y=2", "ex", "sh", "-c", "pwd; echo $Y") == "/tmp\n2\n"
    wharf("exec", "-d", "ex", "sh", "-c", "echo bg > /tmp/bg")
    until(lambda: wharf("exec", "ex", "cat", "/tmp/bg", check=False).stdout == b"bg\n")
    assert wharf("exec", "-i", "ex", "cat", input=b"piped").stdout == b"piped"
    assert wharf("exec", "ex", "nosuchcmd", check=False).returncode == 127
    assert wharf("exec", "ex", "sh", "-c", "exit 7", check=False).returncode == 7
    cgroup = out("exec", "ex", "cat", "/proc/self/cgroup")
    assert "/wharf/" in cgroup


def test_cp_both_ways_and_tar_stream(bb, tmp_path):
    detached("--name", "cpc", bb, "sleep", "60")
    (tmp_path / "f.txt").write_text("hello")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "inner").write_text("in")
    wharf("cp", str(tmp_path / "f.txt"), "cpc:/tmp/")
    wharf("cp", str(tmp_path / "d"), "cpc:/tmp/d2")
    assert out("exec", "cpc", "cat", "/tmp/f.txt", "/tmp/d2/inner") == "helloin"
    wharf("cp", "cpc:/etc/passwd", str(tmp_path / "pw"))
    assert (tmp_path / "pw").read_text().startswith("root:")
    wharf("cp", "cpc:/tmp/d2", str(tmp_path / "back"))
    assert (tmp_path / "back" / "inner").read_text() == "in"
    tar = wharf("cp", "cpc:/tmp/d2", "-").stdout
    names = tarfile.open(fileobj=io.BytesIO(tar)).getnames()
    assert "d2/inner" in names
    p = wharf("cp", "cpc:/nope", str(tmp_path / "x"), check=False)
    assert p.returncode == 1 and b"/nope" in p.stderr


def test_diff_commit_export(bb, tmp_path):
    wharf("run", "--name", "chg", "--network", "none", bb, "sh", "-c", "echo x > /newfile; rm /etc/group")
    lines = out("container", "diff", "chg").splitlines()
    assert "A /newfile" in lines and "D /etc/group" in lines
    out("commit", "-c", 'CMD ["cat", "/newfile"]', "-m", "msg", "-a", "me", "chg", "mine:1")
    assert out("run", "--rm", "--network", "none", "mine:1") == "x\n"
    wharf("export", "-o", str(tmp_path / "fs.tar"), "chg")
    names = tarfile.open(tmp_path / "fs.tar").getnames()
    assert "newfile" in names and "bin/busybox" in names and "etc/group" not in names
    detached("--name", "live", bb, "sh", "-c", "echo y > /live; exec sleep 60")
    until(lambda: wharf("exec", "live", "cat", "/live", check=False).stdout == b"y\n")
    wharf("export", "-o", str(tmp_path / "live.tar"), "live")
    names = tarfile.open(tmp_path / "live.tar").getnames()
    assert "live" in names and not [n for n in names if n.startswith("proc/") or n.startswith("sys/")]


def test_pause_unpause_top_stats_update_rename(bb):
    cid = detached("--name", "pz", "-m", "64m", bb, "sleep", "60")
    assert "sleep 60" in out("top", "pz")
    wharf("pause", "pz")
    assert state("pz")["Status"] == "paused" and state("pz")["Paused"] is True
    assert wharf("exec", "pz", "true", check=False).returncode == 1
    wharf("unpause", "pz")
    assert state("pz")["Status"] == "running"
    st = json.loads(out("stats", "--no-stream", "--format", "json", "pz").splitlines()[0])
    assert st["MemUsage"] > 0 and st["MemLimit"] == 64 << 20 and st["PIDs"] >= 1 and st["CPUPerc"] >= 0
    assert "CPU %" in out("stats", "--no-stream", "pz")
    wharf("update", "-m", "128m", "--restart", "always", "pz")
    doc = json.loads(out("inspect", "pz"))[0]
    assert doc["HostConfig"]["Memory"] == 128 << 20 and doc["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert json.loads(out("stats", "--no-stream", "--format", "json", "pz"))["MemLimit"] == 128 << 20
    wharf("rename", "pz", "pz2")
    assert out("inspect", "--format", "{{.Name}}", cid) == "/pz2\n"
    assert "pz2" in out("ps")


def test_kill_signal_wait_restart_and_start_attach(bb):
    detached("--name", "tr", bb, "sh", "-c", "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done")
    time.sleep(0.3)
    wharf("kill", "-s", "USR1", "tr")
    until(lambda: b"got-usr1" in wharf("logs", "tr").stdout)
    wharf("kill", "tr")
    assert out("wait", "tr") == "137\n"
    wharf("run", "--name", "once", "--network", "none", bb, "sh", "-c", "echo run; exit 2", check=False)
    p = wharf("start", "-a", "once", check=False)
    assert p.returncode == 2 and p.stdout == b"run\n"
    detached("--name", "rs", bb, "sleep", "60")
    pid = state("rs")["Pid"]
    wharf("restart", "-t", "0", "rs")
    assert state("rs")["Running"] and state("rs")["Pid"] != pid


def test_attach_streams_output(bb):
    detached("--name", "at", bb, "sh", "-c", "while true; do echo tick; sleep 0.1; done")
    p = subprocess.Popen([WHARF, "attach", "--no-stdin", "at"], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"tick\n"
    finally:
        p.kill()
        p.wait()
    assert state("at")["Running"]


def test_logs_tail_since_follow_and_rotation(bb):
    detached("--name", "lg", bb, "sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; sleep 1; echo late")
    until(lambda: b"line5" in wharf("logs", "lg").stdout)
    assert out("logs", "--tail", "2", "lg") == "line4\nline5\n"
    assert out("logs", "--since", "1h", "lg").startswith("line1")
    assert out("logs", "--until", "2000-01-01T00:00:00Z", "lg") == ""
    p = subprocess.run([WHARF, "logs", "-f", "lg"], capture_output=True, timeout=20)
    assert p.stdout.decode().splitlines()[-1] == "late"
    cid = detached("--log-opt", "max-size=1k", "--log-opt", "max-file=2", bb, "sh", "-c",
                   "i=0; while [ $i -lt 200 ]; do echo xxxxxxxxxxxxxxxxxxxx$i; i=$((i+1)); done")
    assert out("wait", cid) == "0\n"
    from runtime import paths

    logs = list((paths.root() / "containers" / cid).glob("*-json.log*"))
    assert len(logs) == 2 and all(f.stat().st_size <= 1024 for f in logs)


def test_events_since_until(bb):
    t0 = time.time() - 1
    wharf("run", "--rm", "--name", "evt", "--network", "none", bb, "true")
    ev = out("events", "--since", str(t0), "--until", str(time.time() + 0.5), "--filter", "container=evt",
             "--format", "json")
    actions = [json.loads(x)["Action"] for x in ev.splitlines()]
    assert actions[:2] == ["create", "start"] and "die" in actions and actions[-1] == "destroy"


def test_volumes_seeding_tmpfs_readonly_init_ulimit(bb):
    wharf("volume", "create", "--label", "a=b", "etcvol")
    vols = json.loads(out("volume", "inspect", "etcvol"))
    assert vols[0]["Labels"] == {"a": "b"} and vols[0]["Driver"] == "local"
    assert "root:" in out("run", "--rm", "--network", "none", "-v", "etcvol:/etc", bb, "cat", "/etc/passwd")
    assert Path(vols[0]["Mountpoint"], "passwd").exists()
    p = wharf("volume", "rm", "etcvol")
    assert p.returncode == 0
    script = "touch /t/x && echo tmpfs-ok; touch /x 2>/dev/null || echo ro-ok; ulimit -n; cat /proc/1/cmdline"
    o = out("run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/t", "--init", "--ulimit",
            "nofile=100:200", bb, "sh", "-c", script)
    assert "tmpfs-ok" in o and "ro-ok" in o and "\n100\n" in o and "docker-init" in o
    out("run", "--network", "none", "--name", "anon", "-v", "/data", bb, "true")
    assert len(out("volume", "ls", "-q").split()) == 1
    wharf("rm", "-v", "anon")
    assert out("volume", "ls", "-q") == ""


def test_oom_kill_recorded(bb):
    wharf("run", "--name", "oom", "--network", "none", "-m", "8m", "--memory-swap", "8m", bb, "sh", "-c",
          "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done", check=False, timeout=60)
    st = state("oom")
    assert st["OOMKilled"] is True and st["ExitCode"] == 137


def test_prune_info_version_df(bb):
    wharf("run", "--network", "none", "--name", "dead", bb, "true")
    detached("--name", "alive", bb, "sleep", "60")
    assert "dead" in out("container", "prune", "-f") or True
    names = out("ps", "-a", "--format", "{{.Names}}").split()
    assert names == ["alive"]
    info = json.loads(out("info", "--format", "json"))
    assert info["ContainersRunning"] == 1 and info["Images"] >= 1
    assert "Wharf" in out("version")
    assert "Containers" in out("system", "df")


def test_ps_listing_flags(bb):
    a = detached("--label", "app=x", bb, "sleep", "60")
    b = out("create", "--network", "none", "--name", "made", bb, "true").strip()
    assert out("ps", "-q").split() == [a[:12]]
    assert out("ps", "-aq", "--no-trunc").split() == [b, a]
    assert out("ps", "-l", "-q").split() == [b[:12]]
    assert out("ps", "-n", "2", "-q").split() == [b[:12], a[:12]]
    assert out("ps", "-a", "-q", "--filter", "status=created").split() == [b[:12]]
    assert out("ps", "-q", "--filter", "label=app=x").split() == [a[:12]]
    rows = [json.loads(x) for x in out("ps", "-a", "--format", "json").splitlines()]
    assert {r["State"] for r in rows} == {"running", "created"}
    head = out("ps").splitlines()[0].split()
    assert head[:2] == ["CONTAINER", "ID"] and "NAMES" in head


def test_binds_and_exit_codes(bb, tmp_path):
    (tmp_path / "in.txt").write_text("bound")
    o = out("run", "--rm", "--network", "none", "-v", f"{tmp_path}:/h:ro", bb, "sh", "-c",
            "cat /h/in.txt; touch /h/x 2>/dev/null || echo ro")
    assert o == "boundro\n"
    out("run", "--rm", "--network", "none", "--mount", f"type=bind,source={tmp_path},target=/h", bb,
        "touch", "/h/new")
    assert (tmp_path / "new").exists()
    assert wharf("run", "--rm", "--network", "none", bb, "/etc/passwd", check=False).returncode == 126
    assert wharf("run", "--rm", "--network", "none", bb, "nosuch", check=False).returncode == 127
    assert wharf("run", "--rm", "--network", "none", "--cpus", "abc", bb, "true", check=False).returncode == 125
    assert out("ps", "-aq") == ""


def test_run_stdin_and_detached_rm(bb):
    p = wharf("run", "-i", "--rm", "--network", "none", bb, "sh", "-c", "cat; echo; echo done", input=b"piped")
    assert p.stdout == b"piped\ndone\n"
    cid = out("run", "-d", "--rm", "--network", "none", bb, "sh", "-c", "exit 0").strip()
    wharf("wait", "--condition", "removed", cid, check=False)
    until(lambda: wharf("inspect", cid, check=False).returncode == 1)
    assert out("ps", "-aq") == ""


@pytest.mark.parametrize("runtime", ["builtin", "runc", "crun"])
def test_runtime_flag(bb, runtime):
    import shutil

    if runtime != "builtin" and not shutil.which(runtime):
        pytest.skip(f"{runtime} is not installed")
    p = wharf("run", "--rm", "--network", "none", "--runtime", runtime, bb, "sh", "-c", "echo $HOSTNAME; exit 4",
              check=False)
    if runtime == "crun" and p.returncode == 125:
        pytest.skip(f"crun cannot run here: {p.stderr.decode().strip()}")
    assert p.returncode == 4 and len(p.stdout.strip()) == 12
    cid = out("create", "--network", "none", "--runtime", runtime, bb, "true").strip()
    assert json.loads(out("inspect", cid))[0]["HostConfig"]["Runtime"] == runtime
    p = wharf("run", "--rm", "--network", "none", "--runtime", "nosuchruntime", bb, "true", check=False)
    assert p.returncode == 125 and b"nosuchruntime" in p.stderr


def test_run_pulls_a_missing_image_from_a_named_registry(bb, tmp_path):
    from runtime.images.store import ImageStore
    from runtime.registry.client import push
    from runtime.registry.server import RegistryServer

    srv = RegistryServer(tmp_path / "reg", "127.0.0.1:0").start()
    try:
        ref = f"{srv.address}/bb:1"
        store = ImageStore()
        store.tag("busybox", ref)
        push(store, ref)
        store.remove(ref)
        store.remove("busybox")
        p = wharf("run", "--rm", "--network", "none", ref, "echo", "pulled")
        assert p.stdout == b"pulled\n" and b"Unable to find image" in p.stderr
        p = wharf("run", "--rm", "--network", "none", "busybox", "true", check=False)
        assert p.returncode == 125 and b"unable to find image" in p.stderr  # never Docker Hub
    finally:
        srv.stop()


def test_caps_privileged_limits_and_stop_signal(bb):
    eff = out("run", "--rm", "--network", "none", "--cap-drop", "ALL", bb, "grep", "CapEff", "/proc/self/status")
    assert eff.split()[1] == "0000000000000000"
    eff = out("run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", bb, "grep", "CapEff", "/proc/self/status")
    assert int(eff.split()[1], 16) & (1 << 12)  # CAP_NET_ADMIN
    eff = out("run", "--rm", "--network", "none", "--privileged", bb, "grep", "CapEff", "/proc/self/status")
    assert int(eff.split()[1], 16) & (1 << 21)  # CAP_SYS_ADMIN
    cid = detached("--pids-limit", "50", "--cpuset-cpus", "0", "--cpus", "0.5", "--stop-signal", "SIGUSR1",
                   "--stop-timeout", "1", bb, "sh", "-c", "trap 'exit 7' USR1; while true; do sleep 0.1; done")
    assert Path(f"/sys/fs/cgroup/pids/wharf/{cid}/pids.max").read_text().strip() == "50"
    assert Path(f"/sys/fs/cgroup/cpuset/wharf/{cid}/cpuset.cpus").read_text().strip() == "0"
    assert Path(f"/sys/fs/cgroup/cpu/wharf/{cid}/cpu.cfs_quota_us").read_text().strip() == "50000"
    time.sleep(0.3)
    wharf("stop", cid)
    assert state(cid)["ExitCode"] == 7  # the stop signal reached the trap, no SIGKILL needed
