"""Resource limits enforced through the runtime's cgroups, read back with CgroupManager.stats();
the same bundles under runc give the same verdicts."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid

import pytest

from runtime.linux.cgroups import oom_kills, open_cgroup
from runtime.oci.bundle import write_bundle
from runtime.oci.runtimes import runtime_argv

pytestmark = pytest.mark.root
RUNTIMES = ["builtin"] + (["runc"] if shutil.which("runc") else [])


@pytest.fixture(params=RUNTIMES)
def limited(request, tmp_path, busybox_rootfs):
    """run(script, resources) -> (stdout, CgroupStats read after the process exited)."""
    argv = [*runtime_argv(request.param), "--root", str(tmp_path / "state")]
    made: list[str] = []

    def run(script: str, resources: dict) -> tuple[str, object]:
        cid = "t" + uuid.uuid4().hex[:12]
        cg_path = f"/wharf/{cid}"
        b = tmp_path / cid
        write_bundle(b, busybox_rootfs, ["sh", "-c", script],
                     {"linux": {"cgroupsPath": cg_path, "resources": resources}})
        out = tmp_path / f"{cid}.out"
        with open(out, "w") as f:
            subprocess.run([*argv, "create", "--bundle", str(b), cid], stdout=f, stderr=f, check=True, timeout=30)
        made.append(cid)
        subprocess.run([*argv, "start", cid], check=True, timeout=30)
        deadline = time.monotonic() + 30
        while json.loads(subprocess.run([*argv, "state", cid], capture_output=True, check=True).stdout)[
                "status"] != "stopped":
            assert time.monotonic() < deadline, "container did not stop"
            time.sleep(0.02)
        stats = open_cgroup(cg_path).stats()
        stats.oom_kills_cheap = oom_kills(cg_path)
        subprocess.run([*argv, "delete", cid], check=True, timeout=30)
        made.remove(cid)
        assert not open_cgroup(cg_path).exists()
        return out.read_text(), stats

    yield run
    for cid in made:
        subprocess.run([*argv, "delete", "--force", cid], timeout=30)


def test_memory_limit_oom_kills(limited):
    mb = 1024 * 1024
    out, st = limited("echo start; tail /dev/zero; echo survived", {"memory": {"limit": 24 * mb, "swap": 24 * mb}})
    assert "start" in out and "survived" in out  # sh itself lives on; its child was OOM-killed
    assert st.oom_kills >= 1
    assert st.oom_kills_cheap == st.oom_kills
    assert st.memory_limit == 24 * mb
    assert st.memory_max_usage >= 20 * mb


def test_pids_limit_stops_fork_bomb(limited):
    # ash gives up on the first failed fork: bomb from a subshell, count from the main shell
    script = ("(i=0; while [ $i -lt 40 ]; do sleep 2 & i=$((i+1)); done) 2>/dev/null; "
              "set -- /proc/[0-9]*; echo procs=$#")  # glob + builtins: no fork needed to count
    out, st = limited(script, {"pids": {"limit": 10}})
    procs = int(out.split("procs=")[1].split()[0])
    assert 2 <= procs <= 10
    assert st.pids_limit == 10


def test_cpu_quota_throttles(limited):
    out, st = limited("timeout 1 sh -c 'while :; do :; done'; echo done",
                      {"cpu": {"quota": 10000, "period": 100000}})
    assert "done" in out
    assert st.cpu_throttled_periods >= 3
    assert st.cpu_throttled_ns > 0
    assert st.cpu_usage_ns < 0.5e9  # 10% of one second, with slack
